"""The extrapolation guard of the LAMMPS pair styles: the training range in a model's metadata
(``nequip_pol_max_field``, ``nequip_pol_min_distance``, written by ``nequip-compile`` for a
checkpoint with recorded ranges, see tests/test_ase_calculator.py) against the field and the
pair distances of every force call.

No extra compile: the session's test model of tests/test_lammps.py, copied with the guard's
metadata added (the plugin reads it from the package's metadata file). Two LAMMPS processes per
rank count (several runs in one input) and one per error case.
"""

import re
import shutil

import pytest

from test_lammps import (  # noqa: F401  (session fixture and helpers)
    _fake_package,
    lammps_setup,
    make_cell,
    run_lammps,
    write_data,
)

MAX_FIELD = 0.2  # V/A: the "trained" maximum written into the copies


def _minima(atoms):
    """Smallest distance per species pair of the cell (A), as nequip_pol.guards records it."""
    from nequip_pol.guards import data_ranges

    return data_ranges([atoms])["min_distance"]


def _metadata(minima, max_field=MAX_FIELD):
    return {
        "nequip_pol_max_field": repr(max_field),
        "nequip_pol_min_distance": " ".join(f"{k}:{v!r}" for k, v in minima.items()),
        "nequip_pol_distance_cutoff": "4.0",
    }


@pytest.fixture(scope="module")
def guard_models(lammps_setup, tmp_path_factory):
    """The cell and three packages: no ranges, ranges the cell satisfies (every recorded
    minimum 0.9 x the cell's), and ranges whose C-O minimum is 1.05 x the cell's."""
    atoms = make_cell()
    d = tmp_path_factory.mktemp("lmp_guard")
    write_data(atoms, d / "data.lmp")
    minima = _minima(atoms)
    assert "C-O" in minima
    inside = {k: 0.9 * v for k, v in minima.items()}
    close = dict(inside, **{"C-O": 1.05 * minima["C-O"]})
    models = {"plain": lammps_setup["model"]}
    for name, m in (("inside", inside), ("close", close)):
        models[name] = _fake_package(
            lammps_setup["model"],
            d / f"{name}.nequip.pt2",
            lambda meta, m=m: meta.update(_metadata(m)),
        )
    return atoms, d, models, minima


def _input(setup, body):
    return f"""units metal
atom_style atomic
atom_modify map array
boundary p p p
read_data data.lmp
plugin load {setup["plugin"]}
timestep 0.0005
fix nve all nve
thermo 1
{body}"""


def _counts(text):
    return [
        tuple(int(x) for x in m)
        for m in re.findall(
            r"extrapolation guard: (\d+) evaluations, outside the trained range: "
            r"field (\d+), distance (\d+)",
            text,
        )
    ]


@pytest.mark.parametrize("nprocs", [1, 2])
def test_guard_warns_once_per_run_and_counts(
    lammps_setup, guard_models, tmp_path, nprocs
):
    """Four runs in one input: a field ramp crossing 1.2 x the trained maximum (step 0 below,
    steps 1-3 above: one warning, three counted), a too-close C-O pair (every evaluation, one
    warning), `guard off` (nothing), and a model without ranges (one line, no counts)."""
    atoms, d, models, minima = guard_models
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    body = f"""variable ez equal 0.23+0.1*step
pair_style allegro/pol efield 0 0 v_ez
pair_coeff * * {models["inside"]} H C O
run 3
pair_style allegro/pol efield 0 0 0.1 guard_distance 1.0
pair_coeff * * {models["close"]} H C O
run 2
pair_style allegro/pol efield 0 0 5.0 guard off
run 1
pair_style allegro/pol efield 0 0 5.0
pair_coeff * * {models["plain"]} H C O
run 1
"""
    _, text = run_lammps(
        lammps_setup, tmp_path, _input(lammps_setup, body), nprocs=nprocs
    )
    warnings = [line for line in text.splitlines() if "extrapolating" in line]
    assert len(warnings) == 2, text[-4000:]
    # 1.2 x 0.2 = 0.24 V/A: 0.23 (step 0) passes, 0.33 (step 1) is the first case
    assert (
        "allegro/pol: extrapolation guard (warn): |E| above 1.2 x the trained maximum 0.2 V/A"
        in text
    )
    assert (
        "extrapolating on step 1: |E| = 0.33 V/A exceeds 1.2 x the trained maximum 0.2 V/A"
        in warnings[0]
    )
    assert "pair at" not in warnings[0]
    m = re.search(
        r"extrapolating on step 3: a C-O pair at ([0-9.]+) A, closer than 1 x the training "
        r"minimum ([0-9.]+) A",
        warnings[1],
    )
    assert m, warnings[1]
    assert float(m.group(1)) == pytest.approx(minima["C-O"], abs=2e-3)
    assert float(m.group(2)) == pytest.approx(1.05 * minima["C-O"], abs=1e-3)
    # counts at the end of each guarded run: evaluations = setup + steps
    assert _counts(text) == [(4, 3, 0), (3, 0, 3)], text[-4000:]
    assert "allegro/pol: extrapolation guard off (pair_style ... guard off)" in text
    assert (
        "has no recorded training range (nequip_pol_max_field in its metadata): the extrapolation guard is off"
        in text
    )
    assert "Segmentation" not in text


GUARD_ERRORS = {
    "error_mode": (
        "pair_style allegro/pol efield 0 0 0.3 guard error",
        "inside",
        "extrapolating on step 0: |E| = 0.3 V/A exceeds 1.2 x the trained maximum",
    ),
    "factor_below_one": (
        "pair_style allegro/pol efield 0 0 0.1 guard_field 0.5",
        "inside",
        "guard_field needs a factor >= 1",
    ),
    "bad_metadata": (
        "pair_style allegro/pol",
        "bad",
        "entry 'C-O=1.2'; expected A-B:distance entries",
    ),
}


@pytest.mark.parametrize("case", list(GUARD_ERRORS))
def test_guard_errors(lammps_setup, guard_models, tmp_path, case):
    """`guard error` stops the run at the first case; bad factors and unreadable ranges in
    the metadata are clear errors."""
    atoms, d, models, _ = guard_models
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    pair_style, model, message = GUARD_ERRORS[case]
    if model == "bad":
        model = _fake_package(
            lammps_setup["model"],
            tmp_path / "bad.nequip.pt2",
            lambda meta: meta.update(
                nequip_pol_max_field="0.2", nequip_pol_min_distance="C-O=1.2"
            ),
        )
    else:
        model = models[model]
    body = f"{pair_style}\npair_coeff * * {model} H C O\nrun 2\n"
    rc, text = run_lammps(
        lammps_setup, tmp_path, _input(lammps_setup, body), check=False
    )
    assert rc != 0 and "ERROR" in text and message in text, text[-3000:]
    assert "Segmentation" not in text and "terminate called" not in text
