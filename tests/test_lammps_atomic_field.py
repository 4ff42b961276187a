"""LAMMPS pair styles with a field that varies in space: atom-style variables as components of
``pair_style allegro/pol|nequip/pol efield ...``, the per-atom input ``atomic_electric_field``
of the ``*_atomic_field`` compile targets, and ``compute dipole/atom/pol`` (p_i = -dE/dE_i).

Reuses the session fixture of ``tests/test_lammps.py`` (plugin build, the plain Allegro test
model) and compiles the same small Allegro model once more for
``nequip_pol_pair_allegro_atomic_field`` (~1 min on 2 loaded cores; cached with
``NEQUIP_POL_LAMMPS_CACHE=dir``). The NequIP test compiles
``nequip_pol_pair_nequip_atomic_field`` and runs only with ``NEQUIP_POL_LAMMPS_NEQUIP=1``, as
the NequIP test of ``tests/test_lammps.py``. The eager reference is the model of the same config
and seed, evaluated with the per-atom field values that LAMMPS wrote out (``%.17g``: the same
doubles).
"""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from test_lammps import (  # noqa: F401  (lammps_setup: session fixture, shared build/compile)
    FIELD,
    TYPE_NAMES,
    _fake_package,
    compiled_model,
    cell_dir,
    eager_model,
    header,
    lammps_setup,
    make_cell,
    read_results,
    rel_err,
    run_lammps,
    write_data,
)
from test_lammps_scale import _hide_born

ALLEGRO_TARGET = "nequip_pol_pair_allegro_atomic_field"
NEQUIP_TARGET = "nequip_pol_pair_nequip_atomic_field"

# a field along z that varies along x (one period over the box) on top of a frame field, and a
# Gaussian 'tip' of all three components centred in the cell (atom-style variables; V/A, A)
SINE = {
    "variables": "variable ez atom 0.05*sin(2*PI*(x-xlo)/lx)\n",
    "efield": ["0.01", "-0.02", "v_ez"],
}
TIP = {
    "variables": (
        "variable tip atom 0.3*exp(-((x-xlo-0.5*lx)^2+(y-ylo-0.5*ly)^2+(z-zlo-0.5*lz)^2)/(2*3.0^2))\n"
        "variable tx atom 0.2*v_tip\n"
        "variable ty atom -0.1*v_tip\n"
        "variable tz atom v_tip\n"
    ),
    "efield": ["v_tx", "v_ty", "v_tz"],
}

# besides the results of test_lammps.RESULTS: p_i and the per-atom field LAMMPS gave the model
OUTPUTS = """compute P all pol/allegro
compute Z all born/atom
compute p all dipole/atom/pol
variable fx atom {fx}
variable fy atom {fy}
variable fz atom {fz}
thermo_style custom step pe vol pxx pyy pzz pxy pxz pyz c_P[*]
run 0
print "$(pe:%.17g) $(vol:%.17g) $(pxx:%.17g) $(pyy:%.17g) $(pzz:%.17g) $(pxy:%.17g) $(pxz:%.17g) $(pyz:%.17g)" file scalars.txt
print "$(c_P[1]:%.17g) $(c_P[2]:%.17g) $(c_P[3]:%.17g) $(c_P[4]:%.17g) $(c_P[5]:%.17g) $(c_P[6]:%.17g) $(c_P[7]:%.17g) $(c_P[8]:%.17g) $(c_P[9]:%.17g) $(c_P[10]:%.17g) $(c_P[11]:%.17g) $(c_P[12]:%.17g)" file response.txt
write_dump all custom atoms.dump id fx fy fz c_Z[*] modify sort id format float %.17g
write_dump all custom local.dump id c_p[*] v_fx v_fy v_fz modify sort id format float %.17g
"""


def outputs(efield):
    """OUTPUTS for the components ``efield`` (numbers: 0 per atom; atom-style: the values)."""
    per_atom = [c if c.startswith("v_") else "0.0" for c in efield]
    return OUTPUTS.format(fx=per_atom[0], fy=per_atom[1], fz=per_atom[2])


def frame_field(efield):
    """The frame field of ``efield``: its numbers, 0 for the atom-style components."""
    return [0.0 if c.startswith("v_") else float(c) for c in efield]


def read_all(workdir):
    """test_lammps.read_results plus p_i ('p', (N, 3), e*A) and the per-atom field
    ('atomic_field', (N, 3), V/A), sorted by atom ID."""
    res = read_results(workdir)
    local = np.loadtxt(Path(workdir) / "local.dump", skiprows=9)
    res["p"] = local[:, 1:4]
    res["atomic_field"] = local[:, 4:7]
    return res


def eager_eval_atomic(atoms, field, atomic_field, config="ALLEGRO_POL", model=None):
    """The eager model of ``config`` (or ``model``) at the frame field ``field`` (3,) plus the
    per-atom field ``atomic_field`` ((N, 3), V/A): E, F, virial, P, Z*, alpha and p_i."""
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )

    model = eager_model(config) if model is None else model
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(TYPE_NAMES)(data)
    data = NeighborListTransform(r_max=float(model.metadata["r_max"]))(data)
    data["electric_field"] = torch.as_tensor([field], dtype=torch.float64)
    data["atomic_electric_field"] = torch.as_tensor(atomic_field, dtype=torch.float64)
    out = model(data)

    def get(key):
        return out[key].detach().numpy()

    return {
        "energy": get(AtomicDataDict.TOTAL_ENERGY_KEY).item(),
        "forces": get(AtomicDataDict.FORCE_KEY),
        "virial": get(AtomicDataDict.VIRIAL_KEY).reshape(3, 3),
        "P": get("polarization").reshape(3),
        "Z": get("born_effective_charges").reshape(-1, 3, 3),
        "alpha": get("polarizability").reshape(3, 3),
        "p": get("atomic_dipoles").reshape(-1, 3),
    }


KEYS = ("energy", "forces", "virial", "P", "Z", "alpha", "p")


def errors_against(lmp, ref):
    """Max |difference| / max |reference| per quantity (LAMMPS' virial is the symmetric part)."""
    ref = dict(ref, virial=0.5 * (ref["virial"] + ref["virial"].T))
    return {key: rel_err(lmp[key], ref[key]) for key in KEYS}


@pytest.fixture(scope="module")
def atomic_model(lammps_setup):
    """The Allegro test model compiled for ``nequip_pol_pair_allegro_atomic_field``."""
    return compiled_model(
        "ALLEGRO_POL",
        ALLEGRO_TARGET,
        lammps_setup["cache"] / "allegro_pol_atomic_field.nequip.pt2",
    )


@pytest.fixture(scope="module")
def nequip_atomic_model(lammps_setup):
    import os

    if os.environ.get("NEQUIP_POL_LAMMPS_NEQUIP", "0") != "1":
        pytest.skip(
            "message-passing test needs a second compile: set NEQUIP_POL_LAMMPS_NEQUIP=1"
        )
    return compiled_model(
        "NEQUIP_POL",
        NEQUIP_TARGET,
        lammps_setup["cache"] / "nequip_pol_atomic_field.nequip.pt2",
    )


def run_case(setup, workdir, data, efield, variables="", nprocs=1, **opts):
    """`run 0` of the cell in ``data`` with the components ``efield``; the results (read_all)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(data, workdir / "data.lmp")
    script = header(setup, field=efield, extra=variables, **opts) + outputs(efield)
    run_lammps(setup, workdir, script, nprocs=nprocs)
    return read_all(workdir)


# ------------------------------------------------------------------ (a) uniform = frame field


def test_uniform_atom_style_field_equals_the_frame_field(
    lammps_setup, atomic_model, cell_dir, tmp_path
):
    """E given as three atom-style variables of constant value: the same numbers as E given as
    the frame field, bit for bit (same package: 0 + E_i = E + 0 in the model), and as the plain
    package compiled without the input (to round-off)."""
    atoms, d = cell_dir
    uniform = "variable ux atom {}\nvariable uy atom {}\nvariable uz atom {}\n".format(
        *FIELD
    )
    res = {
        "frame": run_case(
            lammps_setup,
            tmp_path / "frame",
            d / "data.lmp",
            [str(x) for x in FIELD],
            model=atomic_model,
        ),
        "atom": run_case(
            lammps_setup,
            tmp_path / "atom",
            d / "data.lmp",
            ["v_ux", "v_uy", "v_uz"],
            variables=uniform,
            model=atomic_model,
        ),
        "plain": run_case(
            lammps_setup,
            tmp_path / "plain",
            d / "data.lmp",
            [str(x) for x in FIELD],
        ),
    }
    np.testing.assert_array_equal(
        res["atom"]["atomic_field"], np.tile(FIELD, (len(atoms), 1))
    )
    for key in KEYS:
        np.testing.assert_array_equal(res["atom"][key], res["frame"][key], err_msg=key)
    errors = {key: rel_err(res["atom"][key], res["plain"][key]) for key in KEYS}
    print(
        "uniform atom-style field vs the plain package:",
        {k: f"{v:.1e}" for k, v in errors.items()},
    )
    assert max(errors.values()) < 1e-10, errors
    np.testing.assert_allclose(
        res["atom"]["p"].sum(0), res["atom"]["P"], rtol=0, atol=1e-12
    )


# ------------------------------------------------------------------ (b) non-uniform vs eager


@pytest.mark.parametrize(
    "profile, nprocs",
    [(SINE, 1), (TIP, 1), (TIP, 2)],
    ids=["sine", "tip", "tip-2ranks"],
)
def test_nonuniform_field_matches_eager(
    lammps_setup, atomic_model, cell_dir, tmp_path, profile, nprocs
):
    """E, F, virial, P, Z*, alpha and p_i of allegro/pol under a field that varies in space
    equal those of the eager model with the same per-atom values (relative 1e-8)."""
    atoms, d = cell_dir
    lmp = run_case(
        lammps_setup,
        tmp_path,
        d / "data.lmp",
        profile["efield"],
        variables=profile["variables"],
        nprocs=nprocs,
        model=atomic_model,
    )
    values = lmp["atomic_field"]
    assert np.ptp(values, axis=0).max() > 0.02, "the field barely varies: test is weak"
    ref = eager_eval_atomic(atoms, frame_field(profile["efield"]), values)
    errors = errors_against(lmp, ref)
    print("relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-8, errors
    np.testing.assert_allclose(lmp["p"].sum(0), lmp["P"], rtol=0, atol=1e-12)
    # the field varies: the result differs from the one at the mean field
    mean = eager_eval_atomic(
        atoms, frame_field(profile["efield"]), np.tile(values.mean(0), (len(atoms), 1))
    )
    assert rel_err(lmp["forces"], mean["forces"]) > 1e-6


def test_polarization_offset_under_a_nonuniform_field(
    lammps_setup, atomic_model, cell_dir, tmp_path
):
    """A polarization offset P0 = f @ cell (metadata; added by allegro/pol, whose graph has no
    cell) is charged to the atoms as in the model: p_i += P0/N, enthalpy -(P0/N).(E + E_i) per
    atom, the virial from the strain of P0; on 2 ranks, against the eager model built with f."""
    from nequip_pol.lammps.tools.compile_model import build_model

    atoms, d = cell_dir
    f = [0.5, 0.0, 0.5]
    model = _fake_package(
        atomic_model,
        tmp_path / "offset.nequip.pt2",
        lambda m: m.update(polarization_offset_fractional="0.5 0.0 0.5"),
    )
    lmp = run_case(
        lammps_setup,
        tmp_path / "run",
        d / "data.lmp",
        SINE["efield"],
        variables=SINE["variables"],
        nprocs=2,
        model=model,
    )
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        eager = build_model("ALLEGRO_POL", {"polarization_offset_fractional": f})
    finally:
        torch.set_default_dtype(old)
    ref = eager_eval_atomic(
        atoms, frame_field(SINE["efield"]), lmp["atomic_field"], model=eager
    )
    p0 = np.asarray(f) @ np.asarray(atoms.cell)
    assert (
        np.abs(
            ref["P"]
            - eager_eval_atomic(
                atoms, frame_field(SINE["efield"]), lmp["atomic_field"]
            )["P"]
            - p0
        ).max()
        < 1e-10
    ), "the eager model does not apply the offset"
    errors = errors_against(lmp, ref)
    print("relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-8, errors


def test_nequip_pol_nonuniform_field_matches_eager(
    lammps_setup, nequip_atomic_model, tmp_path
):
    """nequip/pol (one rank, every neighbor mapped to its local atom) under the sine profile."""
    atoms = make_cell(
        repeat=(2, 2, 2), seed=3
    )  # box shorter than 2 r_max: several images
    write_data(atoms, tmp_path / "data.lmp")
    lmp = run_case(
        lammps_setup,
        tmp_path / "run",
        tmp_path / "data.lmp",
        SINE["efield"],
        variables=SINE["variables"],
        pair="nequip/pol",
        model=nequip_atomic_model,
    )
    ref = eager_eval_atomic(
        atoms, frame_field(SINE["efield"]), lmp["atomic_field"], config="NEQUIP_POL"
    )
    errors = errors_against(lmp, ref)
    print("relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-8, errors
    np.testing.assert_allclose(lmp["p"].sum(0), lmp["P"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_nequip_pol_offset_applied_once(lammps_setup, tmp_path):
    """A NequIP model compiled with a polarization offset applies P0 itself (its target has the
    cell input): nequip/pol must not add it again. Compiles its own model (~2 min)."""
    from nequip_pol.lammps.tools.compile_model import build_model

    f = [0.5, 0.0, 0.0]
    model = compiled_model(
        "NEQUIP_POL",
        NEQUIP_TARGET,
        lammps_setup["cache"] / "nequip_pol_offset_atomic_field.nequip.pt2",
        f"polarization_offset_fractional={f}",
    )
    atoms = make_cell(repeat=(2, 2, 2), seed=3)
    write_data(atoms, tmp_path / "data.lmp")
    lmp = run_case(
        lammps_setup,
        tmp_path / "run",
        tmp_path / "data.lmp",
        SINE["efield"],
        variables=SINE["variables"],
        pair="nequip/pol",
        model=str(model),
    )
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        eager = build_model("NEQUIP_POL", {"polarization_offset_fractional": f})
    finally:
        torch.set_default_dtype(old)
    ref = eager_eval_atomic(
        atoms, frame_field(SINE["efield"]), lmp["atomic_field"], model=eager
    )
    errors = errors_against(lmp, ref)
    print("relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-8, errors


# ------------------------------------------------------------------ (c) MD: 1 and 2 ranks


def test_nve_under_a_tip_field_same_on_one_and_two_ranks(
    lammps_setup, atomic_model, cell_dir, tmp_path
):
    """20 NVE steps under the Gaussian tip: positions on 2 ranks equal those on 1 rank (the
    per-atom field is evaluated where the atoms are, on whichever rank owns them, and reaches
    the ghosts); the noborn variant (here: the same package with its Z* hidden) gives the same
    trajectory bit for bit."""
    atoms, d = cell_dir
    hidden = _fake_package(atomic_model, tmp_path / "hidden.nequip.pt2", _hide_born)
    md = """mass * 16.0
velocity all create 300.0 4 loop geom
timestep 0.001
fix nve all nve
thermo 10
write_dump all custom start.dump id xu yu zu modify sort id format float %.17g
run 20
write_dump all custom final.dump id xu yu zu modify sort id format float %.17g
"""
    final, counts = {}, {}
    for name, nprocs, pair in (
        ("np1", 1, "allegro/pol"),
        ("np2", 2, "allegro/pol"),
        ("noborn", 1, f"allegro/pol noborn {hidden}"),
    ):
        w = tmp_path / name
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        script = (
            header(
                lammps_setup,
                pair=pair,
                field=TIP["efield"],
                extra=TIP["variables"],
                model=atomic_model,
            )
            + md
        )
        _, text = run_lammps(lammps_setup, w, script, nprocs=nprocs)
        final[name] = np.loadtxt(w / "final.dump", skiprows=9)[:, 1:4]
        counts[name] = re.findall(
            r"(\d+) model evaluations with Born charges, (\d+) without", text
        )
    start = np.loadtxt(tmp_path / "np1" / "start.dump", skiprows=9)[:, 1:4]
    moved = np.abs(final["np1"] - start).max()
    diff = np.abs(final["np2"] - final["np1"]).max()
    print(f"max displacement {moved:.3f} A; 2 ranks vs 1 rank: max |dx| = {diff:.1e} A")
    assert moved > 1e-3
    assert diff < 1e-9
    np.testing.assert_array_equal(final["noborn"], final["np1"])
    # the variant ran on every step (nothing asked for Z*), with the per-atom field
    assert counts["noborn"] and counts["noborn"][-1] == ("0", "21"), counts["noborn"]


# ------------------------------------------------------------------ (d) errors


ERRORS = {
    # an atom-style component and a model compiled without the per-atom input
    "no_atomic_input": (
        dict(model="PLAIN", field=TIP["efield"]),
        "has no atomic_electric_field input",
    ),
    "no_atomic_input_target": (
        dict(model="PLAIN", field=["0", "0", "v_tz"]),
        "compile it with --target nequip_pol_pair_allegro_atomic_field",
    ),
    # noborn: the two packages must take the same inputs
    "noborn_without_atomic_input": (
        dict(noborn="PLAIN_HIDDEN"),
        "both must have the same inputs: compile the second with --target "
        "nequip_pol_pair_allegro_atomic_field_no_born",
    ),
    "noborn_with_atomic_input": (
        dict(model="PLAIN", noborn="ATOMIC_HIDDEN"),
        "both must have the same inputs: compile the second with --target "
        "nequip_pol_pair_allegro_no_born",
    ),
    # fix efield/born is linear response with a homogeneous field
    "fix_efield_born_atom_style": (
        dict(fix="fix lin all efield/born 0 0 v_tz\n"),
        "variable tz for the electric field must be equal-style",
    ),
    # the extrapolation guard checks the strongest field at any atom (the frame field is 0 here)
    "guard_strongest_atom_field": (
        dict(model="ATOMIC_GUARD", pair="allegro/pol guard error", field=TIP["efield"]),
        "exceeds 1.2 x the trained maximum 0.1 V/A",
    ),
    "bad_variable_style": (
        dict(field=["0", "0", "v_s"], extra="variable s string abc\n"),
        "variable s for the electric field must be equal-style or atom-style",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_atomic_field_errors(lammps_setup, atomic_model, cell_dir, tmp_path, case):
    atoms, d = cell_dir
    opts, message = ERRORS[case]
    opts = dict(opts)
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    models = {
        "PLAIN": lammps_setup["model"],
        "ATOMIC": atomic_model,
        "PLAIN_HIDDEN": lambda: _fake_package(
            lammps_setup["model"], tmp_path / "plain_nb.nequip.pt2", _hide_born
        ),
        "ATOMIC_HIDDEN": lambda: _fake_package(
            atomic_model, tmp_path / "atomic_nb.nequip.pt2", _hide_born
        ),
        "ATOMIC_GUARD": lambda: _fake_package(
            atomic_model,
            tmp_path / "guarded.nequip.pt2",
            lambda m: m.update(nequip_pol_max_field="0.1"),
        ),
    }

    def resolve(name):
        value = models[name]
        return value() if callable(value) else value

    model = resolve(opts.pop("model", "ATOMIC"))
    pair = opts.pop("pair", "allegro/pol")
    if "noborn" in opts:
        pair += " noborn " + resolve(opts.pop("noborn"))
    fix = opts.pop("fix", "")
    extra = TIP["variables"] + opts.pop("extra", "")
    script = header(lammps_setup, pair=pair, model=model, extra=extra, **opts)
    script += fix + "run 0\n"
    rc, text = run_lammps(lammps_setup, tmp_path, script, check=False)
    assert rc != 0, f"LAMMPS accepted case {case}:\n{text[-2000:]}"
    assert "ERROR" in text and message in text, text[-3000:]
    assert "Segmentation" not in text and "terminate called" not in text


# ------------------------------------------------------------------ ASE: compiled model


@pytest.mark.slow
def test_compiled_ase_model_takes_the_per_atom_field(tmp_path_factory):
    """``nequip_pol_ase_atomic_field``: the calculator loads it, passes set_atomic_field's
    values (and zeros when none is set) and returns p_i; against the eager model. One compile
    (~1-2 min; cached with NEQUIP_POL_LAMMPS_CACHE)."""
    import os

    from nequip_pol.integrations.ase import NequIPPolCalculator

    cache = os.environ.get("NEQUIP_POL_LAMMPS_CACHE")
    cache = Path(cache) if cache else tmp_path_factory.mktemp("ase_atomic_field")
    cache.mkdir(parents=True, exist_ok=True)
    path = compiled_model(
        "ALLEGRO_POL",
        "nequip_pol_ase_atomic_field",
        cache / "allegro_pol_ase_atomic_field.nequip.pt2",
    )
    atoms = make_cell(repeat=(2, 2, 2), seed=5)
    frame = np.array([0.02, 0.0, -0.01])
    d = atoms.get_positions() - atoms.cell.sum(0) / 2
    values = 0.2 * np.exp(-(d * d).sum(-1) / (2 * 3.0**2))[:, None] * [0.2, -0.1, 1.0]
    calc = NequIPPolCalculator.from_compiled_model(
        path, chemical_species_to_atom_type_map=True, guard="off", field=frame
    )
    for per_atom in (values, None):
        calc.set_atomic_field(per_atom)
        ref = eager_eval_atomic(
            atoms, frame, np.zeros((len(atoms), 3)) if per_atom is None else per_atom
        )
        got = {
            "energy": calc.get_potential_energy(atoms),
            "forces": calc.get_forces(atoms),
            "P": calc.get_property("polarization", atoms),
            "Z": calc.get_property("born_effective_charges", atoms),
            "alpha": calc.get_property("polarizability", atoms),
            "p": calc.get_atomic_dipoles(atoms),
        }
        errors = {key: rel_err(got[key], ref[key]) for key in got}
        print(
            "compiled ASE model vs eager:", {k: f"{v:.1e}" for k, v in errors.items()}
        )
        assert max(errors.values()) < 1e-8, errors
