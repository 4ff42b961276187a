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
    assert (
        main(
            [
                "phonons",
                "reference:paraelectric",
                str(structure),
                "-o",
                prefix,
                "--displacement",
                "1e-3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "LO" in out and "phonopy displacements" in out
    modes = np.loadtxt(
        tmp_path / "out_phonons.csv", delimiter=",", comments="#", skiprows=2, ndmin=2
    )
    assert (
        modes.shape[0] == 4
    )  # 4 triply degenerate optical sets of the cubic perovskite
    assert (tmp_path / "out_loto.csv").exists() and (
        tmp_path / "out_phonons.png"
    ).stat().st_size > 0

    assert (
        main(
            [
                "dielectric",
                "reference:paraelectric",
                str(structure),
                "-o",
                prefix,
                "--displacement",
                "1e-4",
                "--fmax",
                "1e-10",
            ]
        )
        == 0
    )
    lines = (tmp_path / "out_dielectric.csv").read_text().splitlines()
    eps = {
        (row.split(",")[0], row.split(",")[1]): float(row.split(",")[2])
        for row in lines[2:]
    }
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
        (
            [
                "dielectric",
                "reference:paraelectric",
                "{s}",
                "--routes",
                "harmonic,magic",
            ],
            "unknown route(s) magic",
        ),
        (
            ["dielectric", "nothere.nequip.pt2", "{s}"],
            "model file not found: 'nothere.nequip.pt2'",
        ),
        (
            ["phonons", "reference:paraelectric", "nothere.xyz"],
            "structure file not found: 'nothere.xyz'",
        ),
        (
            ["phonons", "reference:paraelectric", "{s}", "--directions", "1,0"],
            "each direction needs 3 numbers",
        ),
        (
            ["phonons", "reference:nothing", "{s}"],
            "unknown reference material 'reference:nothing'",
        ),
        (["phonons", "{txt}", "{s}"], "is not a model file"),
        (["phonons", "{fake}", "{s}"], "cannot load the model"),
        # a checkpoint cut short by an interrupted save or copy, one with changed bytes
        (["phonons", "{trunc}", "{s}"], "truncated checkpoint: the zip archive has"),
        (["dielectric", "{corrupt}", "{s}"], "fails its CRC-32 check"),
        (
            ["phonons", "reference:paraelectric", "{txt}"],
            "unknown file format '.txt'; give an extended XYZ",
        ),
        # an empty file is empty, not of an unknown format (issue 43 item 4)
        (["phonons", "reference:paraelectric", "{empty}"], "the file is empty"),
        (["ir", "nothere.csv", "-T", "300"], "log file not found: 'nothere.csv'"),
        (["ir", "{log}", "-T", "-3"], "--temperature must be > 0"),
        (
            ["ir", "{log}", "-T", "300", "--resolution", "0.5"],
            "too short for a resolution",
        ),
        (["ir", "{nanlog}", "-T", "300"], "NaN"),
        (["ir", "{log}", "-T", "300", "--max-freq", "100000"], "Nyquist"),
        (["raman", "{log}", "-T", "300"], "no polarizability"),
        (["ir", "{badlog}", "-T", "300"], "missing column(s) Px"),
    ],
)
def test_bad_input_is_named_and_writes_nothing(
    argv, message, structure, tmp_path, capsys, one_torch_thread
):
    from nequip_pol.analysis.timeseries import PolarizationSeries

    n = 200
    rng = np.random.default_rng(0)
    series = PolarizationSeries(
        np.arange(n) * 1.0,
        np.zeros((n, 3)),
        rng.normal(size=(n, 3)),
        None,
        np.full(n, 64.0),
    )
    series.write_csv(tmp_path / "log.csv")
    text = (tmp_path / "log.csv").read_text().splitlines()
    text[50] = ",".join(text[50].split(",")[:5] + ["nan"] + text[50].split(",")[6:])
    (tmp_path / "nanlog.csv").write_text("\n".join(text) + "\n")
    (tmp_path / "badlog.csv").write_text(
        "time_fs,Ex,Ey,Ez,Py,Pz\n0,0,0,0,1,1\n1,0,0,0,1,1\n"
    )
    (tmp_path / "model.txt").write_text("not a model\n")
    (tmp_path / "empty.extxyz").write_text("")
    (tmp_path / "fake.nequip.pt2").write_text("not a model\n")
    if "{trunc}" in argv or "{corrupt}" in argv:
        import torch
        from damaged_files import corrupted_copy, truncated_copy

        torch.save({"state_dict": {"w": torch.arange(4096.0)}}, tmp_path / "ok.ckpt")
        truncated_copy(tmp_path / "ok.ckpt", tmp_path / "trunc.ckpt")
        corrupted_copy(tmp_path / "ok.ckpt", tmp_path / "corrupt.ckpt")
    out = tmp_path / "out"
    out.mkdir()
    argv = [
        a.format(
            s=structure,
            log=tmp_path / "log.csv",
            nanlog=tmp_path / "nanlog.csv",
            badlog=tmp_path / "badlog.csv",
            txt=tmp_path / "model.txt",
            empty=tmp_path / "empty.extxyz",
            fake=tmp_path / "fake.nequip.pt2",
            trunc=tmp_path / "trunc.ckpt",
            corrupt=tmp_path / "corrupt.ckpt",
        )
        for a in argv
    ] + ["-o", str(out / "x")]
    assert main(argv) == 2  # every verb: exit status 2 for bad input, as argparse
    err = capsys.readouterr().err
    assert err.startswith(f"nequip-pol {argv[0]}: error: ") and message in err, err
    assert "Traceback" not in err
    assert _files(out) == []


def test_old_model_name_analytic_still_works(
    structure, tmp_path, capsys, one_torch_thread
):
    prefix = str(tmp_path / "old")
    assert (
        main(
            [
                "phonons",
                "analytic",
                str(structure),
                "-o",
                prefix,
                "--displacement",
                "1e-3",
            ]
        )
        == 0
    )
    assert "'analytic' is now 'reference:paraelectric'" in capsys.readouterr().err


def test_shipped_model_name_missing_archive(structure, tmp_path, capsys, monkeypatch):
    import nequip_pol.models as models

    monkeypatch.setattr(models, "_FOLDER", tmp_path / "no_models_here")
    assert main(["phonons", "sio2", str(structure), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "nequip-pol phonons: error: the shipped model 'sio2' is not in this installation"
    ), err


def _two_oscillator_log(path, seed=0, duration_ps=60.0, dt_fs=2.0, friction_per_ps=1.0):
    """P(t) of two Langevin-driven oscillators at 400 and 900 cm^-1 (FWHM ~5 cm^-1), written as a P(t) CSV."""
    from nequip_pol.analysis.timeseries import PolarizationSeries
    from nequip_pol.units import THZ_TO_CM1

    rng = np.random.default_rng(seed)
    n = int(duration_ps * 1000 / dt_fs) + 1
    w = 2 * np.pi * np.array([400.0, 900.0]) / THZ_TO_CM1 / 1000.0  # rad/fs
    c1 = np.exp(-friction_per_ps / 1000.0 * dt_fs)
    c2 = np.sqrt(1 - c1 * c1)
    x, v = np.zeros(2), rng.normal(size=2)
    xs = np.empty((n, 2))
    for k in range(n):  # BAOAB, unit masses, kT = 1
        xs[k] = x
        v -= 0.5 * dt_fs * w**2 * x
        x += 0.5 * dt_fs * v
        v = c1 * v + c2 * rng.normal(size=2)
        x += 0.5 * dt_fs * v
        v -= 0.5 * dt_fs * w**2 * x
    p = np.repeat((0.01 * xs * w).sum(axis=1)[:, None], 3, axis=1)
    PolarizationSeries(
        np.arange(n) * dt_fs, np.zeros((n, 3)), p, None, np.full(n, 100.0)
    ).write_csv(path)


@pytest.mark.statistical
def test_ir_defaults_give_a_smooth_spectrum(tmp_path, capsys, seed_offset):
    """A 60 ps log of two oscillators: the defaults find the two peaks (the raw periodogram gives ~16)."""
    log = tmp_path / "two.csv"
    _two_oscillator_log(log, seed=seed_offset)
    assert main(["ir", str(log), "-T", "300"]) == 0
    out = capsys.readouterr().out
    assert "resolution 8 cm^-1 (default" in out, out
    peaks = [
        float(v) for v in out.split("peaks (cm^-1): ")[1].splitlines()[0].split(", ")
    ]
    assert len(peaks) == 2 and abs(peaks[0] - 400) < 5 and abs(peaks[1] - 900) < 8, (
        peaks
    )
    assert main(["ir", str(log), "-T", "300", "--resolution", "0", "--force"]) == 0
    raw = capsys.readouterr().out
    assert (
        "(raw" in raw
        and len(raw.split("peaks (cm^-1): ")[1].splitlines()[0].split(", ")) > 5
    )


def test_input_errors_come_before_heavy_imports(tmp_path):
    """As the console script: a missing log or model is answered without importing torch."""
    code = (
        "import sys; sys.argv[0] = 'nequip-pol'; from nequip_pol.cli import main; "
        "rc = [main(['ir', 'missing.csv', '-T', '300']), main(['phonons', 'missing.pt2', 'missing.xyz'])]; "
        "print(rc, 'torch' in sys.modules)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.stdout.strip() == "[2, 2] False", res.stdout + res.stderr
    assert "nequip-pol ir: error: log file not found" in res.stderr


def test_help_of_each_verb(capsys):
    for verb in ("ir", "raman", "dielectric", "phonons", "hysteresis", "coercive"):
        with pytest.raises(SystemExit) as exc:
            main([verb, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert (
            "reference:paraelectric" in text
            if verb not in ("ir", "raman")
            else "--resolution" in text
        )
        assert "--force" in text or verb == "coercive"  # coercive writes nothing
    # --help must not import the numerics (fast help): as the console script, building the parser of
    # every verb imports none of numpy, torch, scipy, phonopy, matplotlib, ase
    code = (
        "import sys; sys.argv[0] = 'nequip-pol'; from nequip_pol.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('numpy', 'torch', 'scipy', 'phonopy', 'matplotlib', 'ase') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
