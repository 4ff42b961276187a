"""Per-cell views of switching (``nequip_pol.analysis.domains``, ``--snapshot-interval``).

Against constructed structures with known per-cell displacements and grids, switching times
drawn from known laws, and, for a real loop of the exact ferroelectric, the material's own
off-centring (a second implementation: smooth cage weights, torch) and the loop's P(t).
"""

import numpy as np
import pytest

from nequip_pol.analysis import domains
from nequip_pol.reference.paraelectric import ideal_structure


def _displaced_cells(shape, shifts, seed=0):
    """Ideal BaTiO3 cells (a = 4.0, c = 4.2 A) repeated ``shape``, each Ti moved by its row of
    ``shifts`` (one per cell, in the order of ``index``), atoms shuffled; returns
    (atoms, index (n_Ti, 3) of each Ti in the shuffled order)."""
    atoms = ideal_structure(tuple(shape), a=4.0, c=4.2)
    ti = np.flatnonzero(atoms.numbers == 22)
    frac = atoms.get_scaled_positions()[ti]
    index = np.floor(frac * np.asarray(shape)).astype(int)  # Ti at (k + 1/2) / n
    atoms.positions[ti] += shifts
    order = np.random.default_rng(seed).permutation(len(atoms))
    atoms = atoms[order]
    # the shuffled Ti in atom order, and their grid cells
    new_ti = [int(np.flatnonzero(order == t)[0]) for t in ti]
    by_atom = np.argsort(new_ti)
    return atoms, index[by_atom], np.asarray(shifts)[by_atom]


@pytest.mark.parametrize("shape", [(3, 3, 3), (4, 3, 2), (5, 1, 2), (2, 2, 1)])
def test_grid_and_off_centring_of_known_cells(shape):
    rng = np.random.default_rng(1)
    n = int(np.prod(shape))
    shifts = rng.uniform(-0.3, 0.3, size=(n, 3))
    atoms, index, shifts = _displaced_cells(shape, shifts)
    got_index, got_shape = domains.cell_grid(atoms)
    assert got_shape == tuple(shape)
    # the grid labels are the true ones up to a cyclic shift of each axis
    offset = (got_index - index) % np.asarray(shape)
    assert (offset == offset[0]).all()
    u = domains.off_centring([atoms])[0]
    np.testing.assert_allclose(u, shifts, atol=1e-12)


def test_off_centring_follows_the_cages_across_the_boundary():
    """A Ti that crosses the cell boundary (wrapped) keeps its cage: u is continuous."""
    atoms, _, _ = _displaced_cells((2, 2, 2), np.zeros((8, 3)))
    frames = []
    for dz in np.linspace(0.0, 10.0, 6):  # the whole crystal drifts along z, wrapped
        a = atoms.copy()
        a.positions[:, 2] += dz
        a.wrap()
        frames.append(a)
    u = domains.off_centring(frames)
    np.testing.assert_allclose(u, 0.0, atol=1e-12)


def test_bad_structures_are_named():
    atoms = ideal_structure((2, 2, 2), a=4.0, c=4.2)
    with pytest.raises(ValueError, match="no Zr or no O"):
        domains.octahedra(atoms, b_site="Zr")
    squeezed = atoms.copy()
    squeezed.set_cell(
        squeezed.cell.array * 0.6, scale_atoms=True
    )  # 2.4 A cells: 8+ O per Ti
    with pytest.raises(ValueError, match="not 6"):
        domains.octahedra(squeezed)
    missing = atoms[[k for k in range(len(atoms)) if k != 1]]  # one Ti removed
    with pytest.raises(ValueError, match="full .* grid"):
        domains.cell_grid(missing)
    with pytest.raises(ValueError, match="not one trajectory"):
        domains.off_centring([atoms, missing])


def test_switching_times_recovered():
    """Cells reversing (tanh, width 15 fs) at known times, sampled every 10 fs, with noise."""
    rng = np.random.default_rng(2)
    t = np.arange(0.0, 1000.0, 10.0)
    t_true = rng.uniform(300.0, 700.0, size=50)
    u = 0.29 * np.tanh((t_true[None, :] - t[:, None]) / 15.0)  # +0.29 to -0.29 A
    u += rng.normal(0.0, 0.005, size=u.shape)
    t_switch, direction = domains.switching_times(t, u, (0.0, 1000.0))
    assert direction == -1
    np.testing.assert_allclose(t_switch, t_true, atol=5.0)
    frac = domains.switched_fraction(u, direction)
    assert frac[0] == 0.0 and frac[-1] == 1.0
    # a cell that stays: NaN; a window without a reversal: a clear error
    u[:, 0] = 0.29
    assert np.isnan(domains.switching_times(t, u, (0.0, 1000.0))[0][0])
    with pytest.raises(ValueError, match="does not reverse"):
        domains.switching_times(t, u, (0.0, 200.0))


@pytest.mark.statistical
@pytest.mark.parametrize("seed", range(3))
def test_neighbour_correlation_independent_and_grown(seed, seed_offset):
    """Independent switching times: |r| within 5 / sqrt(n) of 0 along every axis. A domain grown
    from one nucleus (t = distance / v): neighbours alike, r > 0.8."""
    shape = (9, 9, 9)
    index = np.stack(np.unravel_index(np.arange(729), shape), axis=1)
    rng = np.random.default_rng(seed + 10 * seed_offset)
    r = domains.neighbour_correlation(rng.normal(size=729), index, shape)
    assert np.all(np.abs(r) < 5 / np.sqrt(729)), r
    d = index - rng.integers(0, 9, size=3)
    d = np.minimum(np.abs(d), 9 - np.abs(d))  # periodic distance to the nucleus
    grown = np.linalg.norm(d, axis=1) / 0.05 + rng.normal(0.0, 2.0, size=729)
    r = domains.neighbour_correlation(grown, index, shape)
    assert np.all(r > 0.8), r
    # a single plane along an axis: no neighbours there
    flat = domains.neighbour_correlation(
        rng.normal(size=81), index[:81] * [0, 1, 1], (1, 9, 9)
    )
    assert np.isnan(flat[0])


@pytest.mark.statistical
def test_snapshots_of_a_loop_of_the_exact_ferroelectric(tmp_path, capsys, seed_offset):
    """``nequip-pol hysteresis --snapshot-interval``: the ASE loop of the exact ferroelectric (2x2x2,
    40 atoms) writes frames at the right times; their off-centring equals the material's own (a
    torch implementation with smooth cage weights) and follows the loop's P(t): all 8 cells
    reverse under the negative field."""
    from nequip_pol.analysis.hysteresis import read_loop
    from nequip_pol.cli import main as cli_main
    from nequip_pol.reference.ferroelectric import AnalyticFerroelectric

    out = tmp_path / "loops"
    rc = cli_main(
        [
            "hysteresis",
            "reference:ferroelectric",
            "reference:poled",
            "--repeat",
            "2x2x2",
            "-o",
            str(out),
            "--amplitude",
            "0.12",
            "--period",
            "800",
            "--temperatures",
            "5",
            "--timestep",
            "4",
            "--cycles",
            "1",
            "--discard",
            "0",
            "--friction",
            "0.02",
            "--snapshot-interval",
            "5",
            "--seed",
            str(1 + seed_offset),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    loop = out / "loop_T5K_period800fs.csv"
    time_fs, frames = domains.read_snapshots(loop.with_suffix(".snapshots.extxyz"))
    n_steps = int(round(1.25 * 800 / 4))
    np.testing.assert_allclose(time_fs, np.arange(0, n_steps + 1, 5) * 4.0)
    u = domains.off_centring(frames)
    reference = np.stack([AnalyticFerroelectric().off_centering(f) for f in frames])
    assert np.abs(u - reference).max() < 0.01
    # the cells' mean u_z follows the loop's P_z (P also holds the field-induced part, so the
    # two cross zero some tens of fs apart: compare the whole curves)
    series = read_loop(loop)
    p = np.interp(time_fs, series.time_fs, series.polarization[:, 2])
    assert np.corrcoef(u[:, :, 2].mean(axis=1), p)[0, 1] > 0.9
    # the downward switch (field negative: the second half-period): every cell reverses, after
    # the field has passed -Ec of the loop and before the field returns to zero
    t_switch, direction = domains.switching_times(time_fs, u[:, :, 2], (400.0, 800.0))
    assert direction == -1
    assert np.isfinite(t_switch).all()
    assert (t_switch > 400.0).all() and (t_switch < 800.0).all()
    # the per-cell example on the same loop: one event per half-period that reverses
    import importlib.util
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "batio3_domains.py"
    spec = importlib.util.spec_from_file_location("batio3_domains", example)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(loop), "--out", str(tmp_path / "dom")]) == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "dom" / "events.csv")))
    assert rows[0]["direction"] == "-1" and rows[0]["switched_cells"] == "8"
    assert 400.0 < float(rows[0]["t50_fs"]) < 800.0
    assert (tmp_path / "dom" / "domains.png").stat().st_size > 0
    assert module.main([str(loop), "--out", str(tmp_path / "dom")]) == 1  # no --force
    # a rerun without --force refuses, and keeps the snapshots
    size = loop.with_suffix(".snapshots.extxyz").stat().st_size
    rc = cli_main(
        ["hysteresis", "reference:ferroelectric", "reference:poled", "-o", str(out)]
        + ["--amplitude", "0.12", "--period", "800", "--temperatures", "5"]
        + ["--snapshot-interval", "5"]
    )
    assert rc != 0
    assert loop.with_suffix(".snapshots.extxyz").stat().st_size == size


def test_snapshot_interval_is_checked():
    from nequip_pol.analysis.protocol import LoopProtocol

    with pytest.raises(ValueError, match="snapshot_interval"):
        LoopProtocol(snapshot_interval=-1).validate()
    with pytest.raises(ValueError, match="snapshot_interval"):
        LoopProtocol(snapshot_interval=2.5).validate()


def _dump_frame(atoms, step, time_ps):
    """One frame as in.hysteresis writes it (dump custom id element x y z, time yes)."""
    lines = [
        "ITEM: TIME",
        f"{time_ps}",
        "ITEM: TIMESTEP",
        f"{step}",
        "ITEM: NUMBER OF ATOMS",
    ]
    lines += [f"{len(atoms)}", "ITEM: BOX BOUNDS pp pp pp"]
    lines += [f"0.0 {x}" for x in atoms.cell.lengths()]
    lines += ["ITEM: ATOMS id element x y z"]
    lines += [
        f"{k + 1} {s} {p[0]:.10g} {p[1]:.10g} {p[2]:.10g}"
        for k, (s, p) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions))
    ]
    return "\n".join(lines) + "\n"


def test_read_lammps_snapshots_and_a_cut_last_frame(tmp_path):
    """Times in ps become fs; positions and species come back; a last frame cut short (a run
    stopped while LAMMPS wrote it) is left out with a warning."""
    atoms, _, _ = _displaced_cells((2, 2, 2), np.zeros((8, 3)))
    text = "".join(_dump_frame(atoms, 5 * k, 0.01 * k) for k in range(3))
    path = tmp_path / "loop.snapshots.lammpstrj"
    path.write_text(text)
    time_fs, frames = domains.read_snapshots(path)
    np.testing.assert_allclose(time_fs, [0.0, 10.0, 20.0])
    assert frames[1].get_chemical_symbols() == atoms.get_chemical_symbols()
    np.testing.assert_allclose(frames[2].positions, atoms.positions, atol=1e-8)
    cut = text[: len(text) - 200]
    path.write_text(cut)
    with pytest.warns(UserWarning, match="left out"):
        time_fs, frames = domains.read_snapshots(path)
    assert len(frames) == 2 and len(time_fs) == 2


def test_read_snapshots_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        domains.read_snapshots(tmp_path / "none.extxyz")
    other = tmp_path / "frames.traj"
    other.write_text("x")
    with pytest.raises(ValueError, match="unknown snapshot format"):
        domains.read_snapshots(other)
