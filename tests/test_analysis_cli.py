"""nequip-pol phonons / dielectric / ir / raman: outputs, --force, and bad input (clear error, nothing written)."""

import subprocess
import sys

import ase.io
import numpy as np
import pytest

from nequip_pol.cli import main
from nequip_pol.reference import ideal_structure


@pytest.fixture()
def structure(tmp_path):
    atoms = ideal_structure((1, 1, 1))
    atoms.rattle(0.02, seed=1)
    path = tmp_path / "bto.extxyz"
    ase.io.write(path, atoms)
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_phonons_and_dielectric_verbs(structure, tmp_path, one_torch_thread, capsys):
    prefix = str(tmp_path / "out")
    assert main(["phonons", "analytic", str(structure), "-o", prefix, "--displacement", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert "LO" in out and "phonopy displacements" in out
    modes = np.loadtxt(tmp_path / "out_phonons.csv", delimiter=",", comments="#", skiprows=2, ndmin=2)
    assert modes.shape[0] == 4  # 4 triply degenerate optical sets of the cubic perovskite
    assert (tmp_path / "out_loto.csv").exists() and (tmp_path / "out_phonons.png").stat().st_size > 0

    assert main(["dielectric", "analytic", str(structure), "-o", prefix, "--displacement", "1e-4",
                 "--fmax", "1e-10"]) == 0
    lines = (tmp_path / "out_dielectric.csv").read_text().splitlines()
    eps = {(row.split(",")[0], row.split(",")[1]): float(row.split(",")[2]) for row in lines[2:]}
    assert eps[("harmonic", "xx")] == pytest.approx(eps[("field", "xx")], rel=1e-6)
    assert eps[("harmonic", "xx")] > 5.0
    # everything exists now: a second run is refused and changes nothing
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert main(["dielectric", "analytic", str(structure), "-o", prefix]) == 2
    assert "use --force" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dielectric", "analytic", "{s}", "--routes", "harmonic,magic"], "unknown route(s) magic"),
        (["dielectric", "nothere.nequip.pt2", "{s}"], "no such model file"),
        (["phonons", "analytic", "nothere.xyz"], "no such structure file"),
        (["phonons", "analytic", "{s}", "--directions", "1,0"], "each direction needs 3 numbers"),
        (["ir", "{log}", "-T", "300", "--resolution", "0.5"], "too short for a resolution"),
        (["ir", "{nanlog}", "-T", "300"], "NaN"),
        (["ir", "{log}", "-T", "300", "--max-freq", "100000"], "Nyquist"),
        (["raman", "{log}", "-T", "300"], "no polarizability"),
        (["ir", "{badlog}", "-T", "300"], "missing column(s) Px"),
    ],
)
def test_bad_input_is_named_and_writes_nothing(argv, message, structure, tmp_path, capsys, one_torch_thread):
    from nequip_pol.analysis.timeseries import PolarizationSeries

    n = 200
    rng = np.random.default_rng(0)
    series = PolarizationSeries(np.arange(n) * 1.0, np.zeros((n, 3)), rng.normal(size=(n, 3)), None, np.full(n, 64.0))
    series.write_csv(tmp_path / "log.csv")
    text = (tmp_path / "log.csv").read_text().splitlines()
    text[50] = ",".join(text[50].split(",")[:5] + ["nan"] + text[50].split(",")[6:])
    (tmp_path / "nanlog.csv").write_text("\n".join(text) + "\n")
    (tmp_path / "badlog.csv").write_text("time_fs,Ex,Ey,Ez,Py,Pz\n0,0,0,0,1,1\n1,0,0,0,1,1\n")
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(s=structure, log=tmp_path / "log.csv", nanlog=tmp_path / "nanlog.csv",
                     badlog=tmp_path / "badlog.csv") for a in argv] + ["-o", str(out / "x")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nequip-pol {argv[0]}: error: ") and message in err, err
    assert "Traceback" not in err
    assert _files(out) == []


def test_help_of_each_verb(capsys):
    for verb in ("ir", "raman", "dielectric", "phonons"):
        with pytest.raises(SystemExit) as exc:
            main([verb, "--help"])
        assert exc.value.code == 0
        assert "--force" in capsys.readouterr().out
    # --help must not import the numerics (fast help): as the console script, building the parser of
    # every verb imports none of numpy, torch, scipy, phonopy, matplotlib, ase
    code = ("import sys; sys.argv[0] = 'nequip-pol'; from nequip_pol.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'torch', 'scipy', 'phonopy', 'matplotlib', 'ase') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
