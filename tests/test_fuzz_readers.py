"""Property-based tests (Hypothesis) of the readers and the analyses fed by them.

Random valid inputs obey known identities:

* P(t) files (PolarizationLogger CSV, LAMMPS ``fix ave/time``): write then read gives the series
  back (12 significant digits);
* spectra: the autocorrelation at lag 0 is <x^2> and its spectrum integrates to it over all
  frequencies (Parseval, exact on the discrete grid), for every window and padding;
* loops: a synthetic loop P = Ps tanh((E -+ Ec) / w) (upper sign while E rises) gives back Ec,
  Pr = Ps tanh(Ec / w) and the area 4 Ps Ec;
* Quantum ESPRESSO runs of a linear model (F = F0 + Z^T E, P = P0 + alpha E, dipoles on random
  branches) give back Z* and alpha;
* check-data counts the frames and species of random extended-XYZ files.

Random corruptions (truncation, NaN, a missing column, a value too few, text in a number, an
unknown species, a repeated header) give a ``ValueError`` (or the module's error type) whose
message names the file, never another exception from inside numpy or ASE, and the command-line
verbs write no output file.

Bounded: the ``default-suite`` profile of tests/conftest.py (25 examples per test, the same
ones every run); ``HYPOTHESIS_PROFILE=fuzz`` searches longer.
"""

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import assume, given, strategies as st  # noqa: E402

from nequip_pol.analysis.loops import analyze_loops  # noqa: E402
from nequip_pol.analysis.spectra import (  # noqa: E402
    WINDOWS,
    autocorrelation,
    correlation_spectrum,
)
from nequip_pol.analysis.timeseries import (  # noqa: E402
    PolarizationSeries,
    read_series,
)
from nequip_pol.cli import main as cli_main  # noqa: E402
from nequip_pol.io.check_data import check_dataset  # noqa: E402
from nequip_pol.io.qe import QEParseError, parse_qe_runs  # noqa: E402

finite = dict(allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------------- P(t) series
@st.composite
def series(draw, min_frames=2, max_frames=40):
    """A random PolarizationSeries (uniform time axis, optional volume and polarizability)."""
    n = draw(st.integers(min_frames, max_frames))
    dt = draw(st.floats(0.01, 50.0))
    t0 = draw(st.floats(0.0, 1000.0)) * dt
    scale = draw(st.floats(1e-3, 1e3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    volume = (
        rng.uniform(50.0, 5000.0) * (1 + 0.01 * rng.normal(size=n))
        if draw(st.booleans())
        else None
    )
    alpha = rng.normal(size=(n, 3, 3)) if draw(st.booleans()) else None
    return PolarizationSeries(
        time_fs=t0 + dt * np.arange(n),
        field=rng.normal(size=(n, 3)) * draw(st.sampled_from([0.0, 0.1])),
        polarization=scale * rng.normal(size=(n, 3)),
        polarizability=alpha,
        volume=volume,
    )


def write_lammps_ave_time(s: PolarizationSeries, path, timestep_fs=None):
    """The file of ``fix ave/time 1 1 N v_time v_Ex v_Ey v_Ez c_pol[*] v_vol`` (format %.12g)."""
    ncomp = 12 if s.polarizability is not None else 3
    names = ["v_time", "v_Ex", "v_Ey", "v_Ez"] + [
        f"c_pol[{i}]" for i in range(1, ncomp + 1)
    ]
    if s.volume is not None:
        names.append("v_vol")
    lines = [
        "# Time-averaged data for fix dipole",
        "# TimeStep " + " ".join(names),
    ]
    step = round(s.dt_fs / timestep_fs) if timestep_fs else 1
    for k in range(len(s)):
        values = [s.time_fs[k] / 1000.0, *s.field[k], *s.polarization[k]]
        if s.polarizability is not None:
            values += list(s.polarizability[k].reshape(9))
        if s.volume is not None:
            values.append(s.volume[k])
        lines.append(f"{k * step} " + " ".join(f"{v:.12g}" for v in values))
    Path(path).write_text("\n".join(lines) + "\n")


def assert_same_series(a: PolarizationSeries, b: PolarizationSeries):
    for name in ("time_fs", "field", "polarization", "polarizability", "volume"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            scale = max(float(np.abs(x).max()), 1e-300)
            np.testing.assert_allclose(
                y, x, rtol=1e-11, atol=1e-11 * scale, err_msg=name
            )


@given(s=series(), lammps=st.booleans())
def test_series_write_read_round_trip(tmp_path_factory, s, lammps):
    path = tmp_path_factory.mktemp("series") / ("dipole.txt" if lammps else "p.csv")
    if lammps:
        write_lammps_ave_time(s, path)
    else:
        s.write_csv(path)
    assert_same_series(s, read_series(path))


# corruptions of a text file: (name, function(lines, draw) -> lines)
def _cells(line, lammps):
    return line.split() if lammps else line.split(",")


def _join(cells, lammps):
    return " ".join(cells) if lammps else ",".join(cells)


@st.composite
def corrupted_text(draw, text: str, lammps: bool):
    """``text`` (a P(t) file) with one random corruption; returns (kind, new text)."""
    lines = text.splitlines()
    header_at = 1 if lammps else 0
    kind = draw(
        st.sampled_from(
            [
                "truncate",
                "nan",
                "inf",
                "word",
                "empty_cell",
                "drop_value",
                "drop_column",
                "repeat_header",
                "bad_time",
            ]
        )
    )
    row = draw(st.integers(header_at + 1, len(lines) - 1))
    if kind == "truncate":
        return kind, text[: draw(st.integers(0, len(text) - 1))]
    cells = _cells(lines[row], lammps)
    col = draw(st.integers(0, len(cells) - 1))
    if kind in ("nan", "inf", "word", "empty_cell"):
        cells[col] = {"nan": "nan", "inf": "-inf", "word": "abc", "empty_cell": ""}[
            kind
        ]
        lines[row] = _join(cells, lammps)
    elif kind == "drop_value":
        del cells[col]
        lines[row] = _join(cells, lammps)
    elif kind == "drop_column":
        names = _cells(lines[header_at].lstrip("# "), lammps)
        k = draw(st.integers(0, len(names) - 1))
        for i in range(header_at, len(lines)):
            if i == header_at:
                c = _cells(lines[i].lstrip("# "), lammps)
                del c[k]
                lines[i] = ("# " if lammps else "") + _join(c, lammps)
            else:
                c = _cells(lines[i], lammps)
                del c[k]
                lines[i] = _join(c, lammps)
    elif kind == "repeat_header":  # after data (before any, a repeat is harmless)
        lines.insert(max(row, header_at + 2), lines[header_at])
    elif kind == "bad_time":
        k = 1  # v_time (LAMMPS) and time_fs (CSV): the second column of both layouts
        cells[k] = f"{float(cells[k]) * 1.5 + 1.0:.12g}"
        lines[row] = _join(cells, lammps)
    return kind, "\n".join(lines) + "\n"


@given(data=st.data(), s=series(min_frames=3), lammps=st.booleans())
def test_corrupted_series_file_gives_a_named_error(tmp_path_factory, data, s, lammps):
    folder = tmp_path_factory.mktemp("corrupt")
    path = folder / ("dipole.txt" if lammps else "p.csv")
    if lammps:
        write_lammps_ave_time(s, path)
    else:
        s.write_csv(path)
    kind, text = data.draw(corrupted_text(path.read_text(), lammps))
    path.write_text(text)
    try:
        got = read_series(path)
    except ValueError as exc:  # the documented error: names the file
        assert str(path) in str(exc), (kind, str(exc))
        return
    # accepted: only a harmless change (a cut at a line end or inside the last number, a
    # dropped optional column, NaN in the step counter, which no reader uses)
    assert kind in ("truncate", "drop_column", "nan", "inf"), kind
    for name in ("time_fs", "field", "polarization", "polarizability", "volume"):
        value = getattr(got, name)
        assert value is None or np.all(np.isfinite(value)), name


@given(data=st.data(), s=series(min_frames=200, max_frames=300))
def test_ir_verb_on_a_corrupted_log_writes_nothing(tmp_path_factory, data, s, capsys):
    """``nequip-pol ir`` on a corrupted log: exit 2 with one error line naming the file and no
    output file, or (a harmless change) a normal run."""
    folder = tmp_path_factory.mktemp("ir")
    s = PolarizationSeries(s.time_fs, 0 * s.field, s.polarization, None, s.volume)
    path = folder / "p.csv"
    s.write_csv(path)
    kind, text = data.draw(corrupted_text(path.read_text(), False))
    path.write_text(text)
    out = folder / "out"
    out.mkdir()
    argv = ["ir", str(path), "-T", "300", "--volume", "100", "-o", str(out / "x")]
    status = cli_main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 0:
        assert kind in ("truncate", "drop_column", "nan", "inf"), kind
        assert list(out.iterdir())
    else:
        assert status == 2 and err.startswith("nequip-pol ir: error: "), err
        assert str(path) in err, err
        assert list(out.iterdir()) == []


# ---------------------------------------------------------------------- spectra
@given(
    n=st.integers(2, 300),
    k=st.integers(1, 3),
    dt=st.floats(0.05, 20.0),
    window=st.sampled_from(WINDOWS),
    pad=st.integers(1, 8),
    normalization=st.sampled_from(["unbiased", "biased"]),
    lag_fraction=st.one_of(st.none(), st.floats(0.05, 1.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_spectrum_parseval(n, k, dt, window, pad, normalization, lag_fraction, seed):
    """C(0) = <x^2>, and the two-sided spectrum integrates to C(0) w(0) = C(0) (Parseval)."""
    x = np.random.default_rng(seed).normal(size=(n, k)) * 3.0 + 0.5
    c = autocorrelation(x, normalization)
    np.testing.assert_allclose(c[0], np.mean(x**2, axis=0), rtol=1e-10)
    max_lag = None if lag_fraction is None else lag_fraction * (n - 1) * dt
    assume(max_lag is None or int(round(max_lag / dt)) + 1 >= 2)
    freq, spectrum = correlation_spectrum(
        c, dt, max_lag_fs=max_lag, window=window, pad_factor=pad
    )
    df = (freq[1] - freq[0]) / 1000.0  # THz -> 1/fs
    # rfft bins 0..nfft/2: the interior ones stand for two (+nu and -nu)
    total = df * (spectrum[0] + 2 * spectrum[1:-1].sum(axis=0) + spectrum[-1])
    np.testing.assert_allclose(total, c[0], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- P-E loops
@given(
    e0=st.floats(0.01, 1.0),
    ec_frac=st.floats(0.1, 0.5),
    width_frac=st.floats(0.01, 0.03),
    ps=st.floats(0.1, 10.0),
    p0=st.floats(-50.0, 50.0),
    period=st.floats(100.0, 5000.0),
    per_period=st.integers(800, 1500),
    cycles=st.integers(2, 4),
    t0=st.floats(0.0, 200.0),
)
def test_synthetic_loop_identities(
    e0, ec_frac, width_frac, ps, p0, period, per_period, cycles, t0
):
    """E = E0 sin(2 pi (t - t0) / T), P = P0 + Ps tanh((E - s Ec) / w), s = +1 while E rises,
    -1 while it falls: Ec, Pr = Ps tanh(Ec / w) and the area 4 Ps Ec come back."""
    ec, w = ec_frac * e0, width_frac * e0
    dt = period / per_period
    t = t0 + np.arange(int((cycles + 0.5) * per_period) + 1) * dt
    phase = 2 * np.pi * (t - t0) / period
    e = e0 * np.sin(phase)
    rising = np.cos(phase) >= 0
    p = p0 + ps * np.tanh((e - np.where(rising, ec, -ec)) / w)
    loop = analyze_loops(t, e, p, period, discard_cycles=1, t0_fs=t0)
    assert loop.n_cycles == cycles - 1
    # the field at a crossing is interpolated linearly between samples: error ~ (field step)^2
    step = e0 * 2 * np.pi / per_period
    tol_e = 0.5 * step**2 / w + 1e-9 * e0
    assert loop.mean["ec"] == pytest.approx(ec, abs=tol_e)
    assert loop.mean["ec_plus"] == pytest.approx(ec, abs=tol_e)
    assert loop.mean["ec_minus"] == pytest.approx(-ec, abs=tol_e)
    assert loop.mean["pr"] == pytest.approx(ps * np.tanh(ec / w), rel=1e-3)
    assert loop.polarization_offset == pytest.approx(p0, abs=1e-3 * ps)
    assert loop.mean["area"] == pytest.approx(4 * ps * ec, rel=2e-3)


@given(
    kind=st.sampled_from(["nan", "inf", "shape", "2d", "period", "short", "none"]),
    seed=st.integers(0, 1000),
)
def test_loop_extraction_bad_input(kind, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(400) * 10.0
    e = np.sin(2 * np.pi * t / 1000.0)
    p = np.tanh(4 * e)
    period = 1000.0
    if kind in ("nan", "inf"):
        arr = [t, e, p][rng.integers(3)]
        arr[rng.integers(len(arr))] = np.nan if kind == "nan" else np.inf
    elif kind == "shape":
        p = p[:-1]
    elif kind == "2d":
        e = np.stack([e, e], axis=1)
    elif kind == "period":
        period = float(rng.choice([0.0, -5.0, np.nan]))
    elif kind == "short":
        period = 4000.0
    elif kind == "none":
        p = None
    with pytest.raises((ValueError, TypeError)) as info:
        analyze_loops(t, e, p, period)
    assert info.type is ValueError, info.value
    assert str(info.value)


# ---------------------------------------------------------------------- Quantum ESPRESSO
@given(
    h=st.floats(1e-5, 1e-3),
    central=st.booleans(),
    cell_scale=st.floats(0.8, 1.5),
    jumps=st.lists(st.tuples(*[st.integers(-3, 3)] * 3), min_size=7, max_size=7),
)
def test_qe_linear_model_round_trip(tmp_path_factory, h, central, cell_scale, jumps):
    """Finite-field runs of F = F0 + Z^T E, P = P0 + alpha E, each dipole on a random branch:
    the converter gives back Z* and alpha (nearest-branch differences)."""
    import test_qe_parse as qe

    root = tmp_path_factory.mktemp("qe")
    signs = (1, -1) if central else (1,)
    paths = [
        qe.make_qe_xml(root / "r0" / "pw.xml", cell_scale=cell_scale, jump=jumps[0])
    ]
    k = 1
    for ax in range(3):
        for sgn in signs:
            f = np.zeros(3)
            f[ax] = sgn * h
            paths.append(
                qe.make_qe_xml(
                    root / f"r{k}" / "pw.xml", f, cell_scale=cell_scale, jump=jumps[k]
                )
            )
            k += 1
    (frame,) = parse_qe_runs([p.parent for p in paths])
    z = frame.arrays["born_effective_charges"].reshape(2, 3, 3)
    np.testing.assert_allclose(z, qe.Z_TRUE, atol=1e-6 + 1e-9 / h)
    np.testing.assert_allclose(
        frame.info["polarizability"].reshape(3, 3),
        qe.ALPHA_TRUE,
        atol=1e-6 + 1e-9 / h,
    )


_NUMBER = re.compile(r"-?\d\.\d{16}E[+-]\d\d")


@given(
    kind=st.sampled_from(
        [
            "truncate",
            "nan",
            "word",
            "drop_number",
            "species",
            "drop_tag",
            "not_xml",
            "empty",
        ]
    ),
    which=st.integers(0, 3),
    where=st.floats(0.0, 1.0),
)
def test_qe_corrupted_run_gives_a_named_error_and_no_output(
    tmp_path_factory, kind, which, where, capsys
):
    import test_qe_parse as qe

    root = tmp_path_factory.mktemp("qe_bad")
    dirs = qe.make_config(root)
    bad = dirs[which] / "pw.xml"
    text = bad.read_text()
    numbers = list(_NUMBER.finditer(text))
    m = numbers[min(int(where * len(numbers)), len(numbers) - 1)]
    if kind == "truncate":
        text = text[: int(where * (len(text) - 20))]
    elif kind in ("nan", "word", "drop_number"):
        new = {"nan": "NaN", "word": "1.0E+0x", "drop_number": ""}[kind]
        text = text[: m.start()] + new + text[m.end() :]
    elif kind == "species":
        text = re.sub(r'name="\w+"', 'name="Qq"', text, count=1)
    elif kind == "drop_tag":
        tags = ["etot", "forces", "cell", "electronicDipole", "atomic_positions"]
        tag = tags[int(where * len(tags)) % len(tags)]
        text = re.sub(rf"<{tag}[^>]*>.*?</{tag}>", "", text, count=1, flags=re.S)
    elif kind == "not_xml":
        text = "this is not XML\n"
    elif kind == "empty":
        text = ""
    bad.write_text(text)
    with pytest.raises(QEParseError) as info:
        parse_qe_runs(dirs)
    assert str(bad) in str(info.value), str(info.value)
    out = root / "out.xyz"
    assert cli_main(["parse-qe", *map(str, dirs), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(bad) in err, err
    assert not out.exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".out.xyz")]


# ---------------------------------------------------------------------- check-data
@st.composite
def frames(draw):
    from ase import Atoms

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 6))
        symbols = draw(
            st.lists(st.sampled_from(["Ba", "Ti", "O", "Si"]), min_size=n, max_size=n)
        )
        a = Atoms(
            symbols,
            positions=rng.uniform(0, 4, size=(n, 3)),
            cell=np.diag(rng.uniform(4, 6, 3)),
            pbc=True,
        )
        a.info["total_energy"] = float(rng.normal())
        a.info["stress"] = rng.normal(size=9) * 1e-3
        a.info["polarization"] = rng.normal(size=3) * 0.1
        a.info["polarizability"] = rng.normal(size=9)
        a.info["electric_field"] = rng.normal(size=3) * 0.05
        a.arrays["forces"] = rng.normal(size=(n, 3))
        a.arrays["born_effective_charges"] = rng.normal(size=(n, 9))
        out.append(a)
    return out


@given(fs=frames(), data=st.data())
def test_check_data_counts_and_corruptions(tmp_path_factory, fs, data, capsys):
    import ase.io

    folder = tmp_path_factory.mktemp("check")
    path = folder / "data.xyz"
    ase.io.write(path, fs, format="extxyz")
    rep = check_dataset(path)
    assert rep.ok, rep.errors
    assert rep.n_frames == len(fs)
    species = {}
    for a in fs:
        for s in a.get_chemical_symbols():
            species[s] = species.get(s, 0) + 1
    assert rep.species == species
    asr = max(
        np.abs(a.arrays["born_effective_charges"].reshape(-1, 3, 3).sum(0)).max()
        for a in fs
    )
    assert rep.asr_max == pytest.approx(asr, rel=1e-6)

    text = path.read_text()
    lines = text.splitlines()
    kind = data.draw(st.sampled_from(["truncate", "nan", "species", "drop_value"]))
    if kind == "truncate":
        cut = data.draw(st.integers(0, len(text) - 1))
        text = text[:cut]
    else:
        # an atom line of a random frame: symbol x y z forces(3) Z*(9)
        atom_lines = [i for i, l in enumerate(lines) if re.match(r"^[A-Z][a-z]?\s", l)]
        i = data.draw(st.sampled_from(atom_lines))
        cells = lines[i].split()
        if kind == "nan":
            cells[data.draw(st.integers(1, len(cells) - 1))] = "nan"
        elif kind == "species":
            cells[0] = "Qq"
        else:
            del cells[data.draw(st.integers(1, len(cells) - 1))]
        lines[i] = " ".join(cells)
        text = "\n".join(lines) + "\n"
    path.write_text(text)
    rep = check_dataset(path)  # never raises for bad data
    if kind != "truncate":
        assert not rep.ok, (kind, str(rep))
    for e in rep.errors:
        assert isinstance(e, str) and e
    status = cli_main(["check-data", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert status == (0 if rep.ok else 1) or status == 2, (status, out.out, out.err)
