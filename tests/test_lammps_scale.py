"""LAMMPS plugin at scale: Born charges only on the steps that need them (``pair_style
allegro/pol ... noborn FILE``), float32 models against float64, NVE energy drift.

Default tests reuse the session fixture of ``tests/test_lammps.py`` (plugin build + one float64
compile) and stand in for the variant without Born charges with a copy of the compiled model
whose metadata hides its Z* output (same numbers, so they check the per-step choice of the
variant, the counters and the errors). The ``slow`` tests compile the real variants (float64
without Z*, float32 with and without Z*; ~2 min each, cached with
``NEQUIP_POL_LAMMPS_CACHE=dir``) and compare them with the float64 model.
"""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_lammps import (  # noqa: F401  (lammps_setup: session fixture, shared build/compile)
    FIELD,
    nequip_model,
    _fake_package,
    _start_compile,
    assert_matches,
    cell_dir,
    eager_eval,
    header,
    lammps_setup,
    make_cell,
    read_results,
    rel_err,
    run_lammps,
    write_data,
)

NO_BORN_RESPONSE = "response_outputs=['polarization','polarizability']"


def _hide_born(meta):
    """Metadata of a package that 'has no Z*': the output keeps its slot under another name."""
    meta["nequip_aoti_outputs"] = meta["nequip_aoti_outputs"].replace(
        "born_effective_charges", "born_effective_charges_hidden"
    )


def _md_script(
    setup, model, noborn=None, every=5, steps=20, extra="", dump=True, after=""
):
    pair = "allegro/pol efield " + " ".join(str(x) for x in FIELD)
    if noborn:
        pair += f" noborn {noborn}"
    dump_lines = (
        f"compute Z all born/atom\n"
        f"dump d all custom {every} z.dump id fx fy fz c_Z[*]\n"
        f"dump_modify d sort id format float %.17g\n"
        if dump
        else ""
    )
    return (
        header(setup, pair=pair, model=model)
        + f"""mass * 16.0
velocity all create 100.0 4 loop geom
timestep 0.0005
fix nve all nve
{extra}
{dump_lines}thermo_style custom step pe etotal
thermo_modify format float %.17g
thermo 1
run {steps}
{after}"""
    )


def _read_dump(path):
    frames, lines = {}, Path(path).read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("ITEM: TIMESTEP"):
            step = int(lines[i + 1])
            n = int(lines[i + 3])
            frames[step] = np.array(
                [[float(x) for x in line.split()] for line in lines[i + 9 : i + 9 + n]]
            )
            i += 9 + n
        else:
            i += 1
    return frames


def _thermo(text):
    """(step, pe, etotal) rows of the thermo output in a LAMMPS log."""
    rows = re.findall(
        r"^\s*(\d+)\s+(-?[\d.]+(?:e[-+]?\d+)?)\s+(-?[\d.]+(?:e[-+]?\d+)?)\s*$",
        text,
        re.M,
    )
    return np.array([[float(x) for x in r] for r in rows])


def _counts(text, which=-1):
    """(full in the force call, noborn variant, extra full re-evaluations) of a run (the last)."""
    m = re.findall(
        r"(\d+) model evaluations with Born charges, (\d+) without \(noborn variant\), (\d+) extra",
        text,
    )
    return tuple(int(x) for x in m[which]) if m else None


def _speed(text):
    """timesteps/s of the last run (LAMMPS 'Performance:' line)."""
    vals = re.findall(r"Performance:.*?([\d.]+) timesteps/s", text)
    return float(vals[-1]) if vals else float("nan")


# ------------------------------------------------------------------ on-demand Z* (default)


LATE = "run 3\nwrite_dump all custom late.dump id fx fy fz c_Z[*] modify sort id format float %.17g\n"


def test_born_on_demand_schedule(lammps_setup, cell_dir, tmp_path):
    """Z* are evaluated on the dump steps only (within the force call), on request after it
    (write_dump on a step without dump: one extra full evaluation) and on every step under fix
    efield/born; the dumped Z* and forces equal those of the always-full run."""
    atoms, d = cell_dir
    fake = _fake_package(
        lammps_setup["model"], tmp_path / "hidden.nequip.pt2", _hide_born
    )
    res = {}
    for name, nb in (("always", None), ("ondemand", fake)):
        w = tmp_path / name
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        _, text = run_lammps(
            lammps_setup,
            w,
            _md_script(lammps_setup, lammps_setup["model"], nb, after=LATE),
        )
        res[name] = (
            _read_dump(w / "z.dump"),
            _thermo(text),
            text,
            _read_dump(w / "late.dump"),
        )
    assert _counts(res["always"][2]) is None  # no counters without noborn
    # run 20: setup + 20 force calls; dumps at 0, 5, 10, 15, 20 (step 0 may be served after the
    # setup force call: LAMMPS schedules the dumps of a run after it)
    counts = re.findall(
        r"(\d+) model evaluations with Born charges, (\d+) without \(noborn variant\), (\d+) extra",
        res["ondemand"][2],
    )
    full, nb, extra = (int(x) for x in counts[0])
    print(
        "run 20, dump every 5 (full, noborn, extra):",
        (full, nb, extra),
        "; run 3 + write_dump:",
        counts[1],
    )
    assert full + nb == 21 and full + extra == 5 and extra <= 1, counts
    # run 3 (no dump due: variant without Z* only), then write_dump on step 23: its Z* come from
    # one full evaluation on the graph of step 23 (after the run's counters were printed)
    assert tuple(int(x) for x in counts[1]) == (0, 4, 0), counts
    assert sorted(res["ondemand"][0]) == [0, 5, 10, 15, 20]
    for step, frame in res["always"][0].items():
        np.testing.assert_array_equal(res["ondemand"][0][step], frame)
    np.testing.assert_array_equal(res["ondemand"][3][23], res["always"][3][23])
    np.testing.assert_array_equal(res["ondemand"][1], res["always"][1])

    # fix efield/born needs Z* on every step
    w = tmp_path / "fix"
    w.mkdir()
    shutil.copy(d / "data.lmp", w / "data.lmp")
    script = _md_script(
        lammps_setup,
        lammps_setup["model"],
        fake,
        dump=False,
        steps=6,
        extra="fix lin all efield/born 0.01 0.0 0.0\nfix_modify lin energy yes",
    )
    script = script.replace(" efield " + " ".join(str(x) for x in FIELD), "")
    _, text = run_lammps(lammps_setup, w, script)
    assert _counts(text) == (7, 0, 0), _counts(text)


BORN_ERRORS = {
    "noborn_has_born": (
        "MAIN",
        "computes Born charges; compile it with --target nequip_pol_pair_allegro_no_born",
    ),
    "noborn_other_species": ("SPECIES", "does not match the model"),
    "noborn_missing": ("MISSING", "noborn: cannot open model file"),
    "noborn_no_file": ("NOFILE", "noborn needs the file"),
    "noborn_other_device": (
        "DEVICE",
        "noborn: model {nb} was compiled for cuda, but the model {main} of pair_coeff for cpu",
    ),
}


@pytest.mark.parametrize("case", list(BORN_ERRORS))
def test_born_on_demand_errors(lammps_setup, cell_dir, tmp_path, case):
    atoms, d = cell_dir
    what, message = BORN_ERRORS[case]
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    nb = {
        "MAIN": lammps_setup["model"],
        "SPECIES": _fake_package(
            lammps_setup["model"],
            tmp_path / "species.nequip.pt2",
            lambda m: (_hide_born(m), m.update(type_names="H C N")),
        ),
        "DEVICE": _fake_package(
            lammps_setup["model"],
            tmp_path / "cuda.nequip.pt2",
            lambda m: (_hide_born(m), m.update(AOTI_DEVICE_KEY="cuda")),
        ),
        "MISSING": str(tmp_path / "nope.nequip.pt2"),
        "NOFILE": "",
    }[what]
    script = header(lammps_setup, pair=f"allegro/pol noborn {nb}".rstrip()) + "run 0\n"
    rc, text = run_lammps(lammps_setup, tmp_path, script, check=False)
    message = message.format(nb=nb, main=lammps_setup["model"])
    assert rc != 0, text[-2000:]
    assert "ERROR" in text and message in text, text[-3000:]
    assert "Segmentation" not in text and "terminate called" not in text


# ------------------------------------------------------------------ real variants (slow)


@pytest.fixture(scope="session")
def variant_models(lammps_setup):
    """Compile the float64 model without Z* and the float32 models (same weights, rounded)."""
    cache = lammps_setup["cache"]
    specs = {
        "nb64": ("nequip_pol_pair_allegro_no_born", [NO_BORN_RESPONSE]),
        "f32": ("nequip_pol_pair_allegro", ["model_dtype='float32'"]),
        "nb32": (
            "nequip_pol_pair_allegro_no_born",
            ["model_dtype='float32'", NO_BORN_RESPONSE],
        ),
    }
    paths = {"f64": lammps_setup["model"]}
    procs = {}
    for key, (target, overrides) in specs.items():
        name = {
            "nb64": "allegro_pol_nb",
            "f32": "allegro_pol_f32",
            "nb32": "allegro_pol_f32_nb",
        }[key]
        out = cache / f"{name}.nequip.pt2"
        paths[key] = str(out)
        if not out.exists():
            procs[key] = _start_compile("ALLEGRO_POL", target, out, *overrides)
    for key, proc in procs.items():
        if proc.wait() != 0:
            pytest.fail(
                f"compiling {key} failed:\n" + open(paths[key] + ".log").read()[-4000:]
            )
    return paths


@pytest.mark.slow
def test_born_on_demand_real_variant(lammps_setup, variant_models, cell_dir, tmp_path):
    """With the compiled variant without Z*: energies and forces on every step, Z* on the dump
    steps equal the always-full run to round-off; steps/s of both printed."""
    atoms, d = cell_dir
    res = {}
    for name, nb in (("always", None), ("ondemand", variant_models["nb64"])):
        w = tmp_path / name
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        _, text = run_lammps(
            lammps_setup,
            w,
            _md_script(lammps_setup, variant_models["f64"], nb, every=10, steps=40),
        )
        res[name] = (
            _read_dump(w / "z.dump"),
            _thermo(text),
            _counts(text),
            _speed(text),
        )
    print(
        f"timesteps/s (144 atoms, dump of Z* every 10 steps): always {res['always'][3]}, on demand {res['ondemand'][3]}"
    )
    full, nb, extra = res["ondemand"][2]
    assert full + nb == 41 and full + extra == 5, res["ondemand"][2]
    a, b = res["always"][1], res["ondemand"][1]
    assert a.shape == b.shape and a.shape[0] == 41
    assert rel_err(b[:, 1], a[:, 1]) < 1e-12 and rel_err(b[:, 2], a[:, 2]) < 1e-12
    for step, frame in res["always"][0].items():
        assert rel_err(res["ondemand"][0][step][:, 1:], frame[:, 1:]) < 1e-10, step


@pytest.mark.slow
def test_born_on_demand_nequip_pol(lammps_setup, nequip_model, tmp_path):
    """nequip/pol (message passing, one rank) with its variant without Z*: same trajectory, the
    same Z* on the dump steps (needs NEQUIP_POL_LAMMPS_NEQUIP=1 and two NequIP compiles)."""
    nb = lammps_setup["cache"] / "nequip_pol_nb.nequip.pt2"
    if not nb.exists():
        proc = _start_compile(
            "NEQUIP_POL", "nequip_pol_pair_nequip_no_born", nb, NO_BORN_RESPONSE
        )
        if proc.wait() != 0:
            pytest.fail(
                "compiling the NequIP variant failed:\n"
                + open(str(nb) + ".log").read()[-4000:]
            )
    atoms = make_cell(repeat=(2, 2, 2), seed=3)
    res = {}
    for name, extra in (("always", ""), ("ondemand", f" noborn {nb}")):
        w = tmp_path / name
        w.mkdir()
        write_data(atoms, w / "data.lmp")
        script = _md_script(lammps_setup, nequip_model, every=5, steps=10, after=LATE)
        script = script.replace(
            "pair_style allegro/pol", "pair_style nequip/pol"
        ).replace(
            "pair_style nequip/pol efield " + " ".join(str(x) for x in FIELD),
            "pair_style nequip/pol efield " + " ".join(str(x) for x in FIELD) + extra,
        )
        _, text = run_lammps(lammps_setup, w, script)
        res[name] = (
            _read_dump(w / "z.dump"),
            _thermo(text),
            _counts(text, 0),
            _read_dump(w / "late.dump"),
        )
    full, nbc, extra = res["ondemand"][2]
    print("nequip/pol on demand (full, noborn, extra):", res["ondemand"][2])
    assert full + nbc == 11 and full + extra == 3, res["ondemand"][2]
    assert rel_err(res["ondemand"][1][:, 1], res["always"][1][:, 1]) < 1e-12
    for step, frame in res["always"][0].items():
        assert rel_err(res["ondemand"][0][step][:, 1:], frame[:, 1:]) < 1e-10, step
    assert rel_err(res["ondemand"][3][13][:, 1:], res["always"][3][13][:, 1:]) < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("field", [[0.0, 0.0, 0.0], FIELD], ids=["zero", "field"])
def test_float32_matches_float64(
    lammps_setup, variant_models, cell_dir, tmp_path, field
):
    """float32 model (the float64 weights, rounded) against the float64 model and the eager
    float64 reference: float32 round-off only."""
    from test_lammps import RESULTS

    atoms, d = cell_dir
    res = {}
    for key in ("f64", "f32"):
        w = tmp_path / key
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        run_lammps(
            lammps_setup,
            w,
            header(lammps_setup, field=field, model=variant_models[key]) + RESULTS,
        )
        res[key] = read_results(w)
    # the total energy nearly cancels at zero field (per-type shifts of both signs): compare it
    # per atom; everything else relative to its largest component
    n = len(atoms)
    ref = eager_eval(atoms, field)
    for other in (res["f64"], ref):
        de = abs(res["f32"]["energy"] - other["energy"]) / n
        print(
            f"float32 energy deviation {de:.1e} eV/atom (|E|/N = {abs(other['energy']) / n:.2e})"
        )
        assert de < 1e-6
        assert_matches({**res["f32"], "energy": other["energy"]}, other, tol=2e-5)
    assert_matches(res["f64"], ref, tol=1e-8)
    errs = {k: rel_err(res["f32"][k], res["f64"][k]) for k in ("forces", "Z", "P")}
    assert max(errs.values()) > 1e-9  # it is really float32


def _nve_drift(setup, model, d, w, steps, noborn=None, temp=50.0, dt=0.0005):
    w.mkdir()
    shutil.copy(d / "data.lmp", w / "data.lmp")
    pair = "allegro/pol efield 0.0 0.0 0.05" + (f" noborn {noborn}" if noborn else "")
    script = (
        header(setup, pair=pair, model=model)
        + f"""mass * 16.0
velocity all create {temp} 4 loop geom
timestep {dt}
fix nve all nve
thermo_style custom step pe etotal
thermo_modify format float %.17g
thermo 10
run {steps}
"""
    )
    _, text = run_lammps(setup, w, script)
    t = _thermo(text)
    n = 144
    time_ps = t[:, 0] * dt
    slope = np.polyfit(time_ps, t[:, 2], 1)[0] / n
    spread = (t[:, 2].max() - t[:, 2].min()) / n
    return slope, spread, _speed(text)


@pytest.mark.slow
def test_float32_nve_drift(lammps_setup, variant_models, cell_dir, tmp_path):
    """NVE, 144 atoms, 50 K, 0.5 fs, 1000 steps under E_z = 0.05 V/A, Z* not computed (noborn
    variants): the drift of the total energy (linear fit, eV/atom/ps) of the float32 model is
    that of float64 (measured: -1.31e-5 both, difference 1e-8: integration error, not
    precision)."""
    atoms, d = cell_dir
    out = {}
    for key, nb in (("f64", "nb64"), ("f32", "nb32")):
        out[key] = _nve_drift(
            lammps_setup,
            variant_models[key],
            d,
            tmp_path / key,
            1000,
            noborn=variant_models[nb],
        )
        print(
            f"{key}: drift {out[key][0]:.3e} eV/atom/ps, max-min {out[key][1]:.2e} eV/atom, {out[key][2]} timesteps/s"
        )
    assert abs(out["f64"][0]) < 1e-4
    assert abs(out["f32"][0]) < 1e-4
    assert abs(out["f32"][0] - out["f64"][0]) < 1e-6
