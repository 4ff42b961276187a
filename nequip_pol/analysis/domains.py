"""Per-cell views of switching in an ABO3 perovskite: which unit cells reverse, when, and together.

A loop run with a ``snapshot_interval`` (``nequip-pol hysteresis --snapshot-interval N``) writes
its structures beside the P(t) file; from them:

* :func:`read_snapshots`: the frames and their times (fs), from the ASE (``.extxyz``) or LAMMPS
  (``.lammpstrj``, ``dump custom id element x y z`` with ``time yes``) file;
* :func:`octahedra`: the six anions of each B-site cation (Ti in BaTiO3), found once in a
  reference frame so that a cage keeps its atoms through the run;
* :func:`off_centring`: the local order parameter u of every unit cell, the B cation minus the
  centroid of its anion octahedron (minimum image), (n_frames, n_B, 3) A;
* :func:`cell_grid`: the (i, j, k) position of each B cation on the supercell's grid of unit
  cells;
* :func:`switching_times`: the time each cell's u reverses along an axis, and
  :func:`neighbour_correlation`: how alike neighbouring cells are in a per-cell value, along each
  grid direction. Cells that switch independently give a correlation near 0 (within about
  1/sqrt(n_cells)); a domain that nucleates and grows gives neighbours that switch together.

Units: A, fs. numpy and ASE only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "read_snapshots",
    "octahedra",
    "off_centring",
    "cell_grid",
    "switching_times",
    "switched_fraction",
    "neighbour_correlation",
]

#: B-anion distance (A) within which the six anions of a cage are looked for
CAGE_RADIUS = 3.0
_PS_TO_FS = 1000.0


def _lammps_dump_times(path: Path) -> List[float]:
    """The ``ITEM: TIME`` values (LAMMPS metal units: ps) of a dump, in order."""
    times, want = [], False
    with open(path) as fh:
        for line in fh:
            if want:
                times.append(float(line.split()[0]))
                want = False
            elif line.startswith("ITEM: TIME") and not line.startswith(
                "ITEM: TIMESTEP"
            ):
                want = True
    return times


def read_snapshots(path: Union[str, os.PathLike]) -> Tuple[np.ndarray, list]:
    """Frames of a loop's snapshot file and their times: ``(time_fs (n,), [Atoms, ...])``.

    ``.extxyz``: the ASE loop's file (``info["time_fs"]`` per frame). ``.lammpstrj``: the LAMMPS
    loop's ``dump custom ... id element x y z`` with ``dump_modify ... time yes`` (metal units,
    time in ps); a last frame cut short (a run stopped while writing it) is left out with a
    warning. ``ValueError`` naming the problem for another format or frames without times.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"snapshot file {path} not found")
    if path.suffix == ".extxyz":
        frames = ase.io.read(path, index=":", format="extxyz")
        missing = [k for k, f in enumerate(frames) if "time_fs" not in f.info]
        if missing:
            raise ValueError(
                f"{path}: frame {missing[0]} has no time_fs in its comment line"
            )
        times = [float(f.info["time_fs"]) for f in frames]
    elif path.suffix == ".lammpstrj":
        frames = ase.io.read(path, index=":", format="lammps-dump-text")
        times = [t * _PS_TO_FS for t in _lammps_dump_times(path)]
        if len(frames) > 1 and len(frames[-1]) < len(frames[0]):
            # a run stopped while LAMMPS wrote its last frame: keep the complete ones
            warnings.warn(
                f"{path}: the last frame holds {len(frames[-1])} of {len(frames[0])} atoms "
                "(a run stopped while writing it); it is left out"
            )
            frames, times = frames[:-1], times[: len(frames) - 1]
        if len(times) != len(frames):
            raise ValueError(
                f"{path}: {len(frames)} frames but {len(times)} ITEM: TIME entries; write the "
                "dump with 'dump_modify ... time yes' (in.hysteresis does)"
            )
    else:
        raise ValueError(
            f"{path}: unknown snapshot format {path.suffix!r}; expected .extxyz (ASE loop) or "
            ".lammpstrj (LAMMPS loop)"
        )
    if not frames:
        raise ValueError(f"{path} holds no frames")
    return np.asarray(times, dtype=float), frames


def _minimum_image(d: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Vectors ``d`` (..., 3) A reduced to their nearest periodic image in ``cell`` (3, 3)."""
    frac = d @ np.linalg.inv(cell)
    return (frac - np.round(frac)) @ cell


def octahedra(
    atoms, b_site: str = "Ti", anion: str = "O", radius: float = CAGE_RADIUS
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each B cation and its six anions in ``atoms`` (a reference frame, e.g. the first).

    Returns ``(b_index (n_B,), cage (n_B, 6), cage_vectors (n_B, 6, 3))``: atom indices, and the
    B-to-anion vectors (A) in the reference frame. A cell one unit cell thick along an axis holds
    the two apical anions of a cage as one atom seen through two periodic images: the vectors
    keep them apart. ``ValueError`` when a B cation has not exactly six anions within ``radius``
    A (not a perovskite, or a cell too distorted).
    """
    symbols = np.asarray(atoms.get_chemical_symbols())
    b_index = np.flatnonzero(symbols == b_site)
    anions = np.flatnonzero(symbols == anion)
    if len(b_index) == 0 or len(anions) == 0:
        raise ValueError(
            f"no {b_site} or no {anion} atoms in the structure ({atoms.get_chemical_formula()})"
        )
    if atoms.cell.rank != 3 or not all(atoms.pbc):
        raise ValueError("the per-cell view needs a periodic cell (pbc in a, b and c)")
    cell = atoms.cell.array
    d = _minimum_image(
        atoms.positions[anions][None, :, :] - atoms.positions[b_index][:, None, :], cell
    )
    # axes along which the cell is thinner than a cage's diameter: the other image counts too
    heights = atoms.get_volume() / np.linalg.norm(
        np.cross(np.roll(cell, -1, axis=0), np.roll(cell, -2, axis=0)), axis=1
    )
    shifts = [np.zeros(3)]
    for a in np.flatnonzero(heights < 2.0 * radius):
        shifts += [s + sign * cell[a] for s in shifts for sign in (-1.0, 1.0)]
    vectors = np.concatenate(
        [d + s for s in shifts], axis=1
    )  # (n_B, n_images * n_O, 3)
    atom_of = np.tile(anions, len(shifts))
    dist = np.linalg.norm(vectors, axis=-1)
    counts = (dist < radius).sum(axis=1)
    if np.any(counts != 6):
        k = int(np.flatnonzero(counts != 6)[0])
        raise ValueError(
            f"{b_site} atom {b_index[k]} has {counts[k]} {anion} atoms within {radius} A, not 6: "
            "not a perovskite octahedron"
        )
    nearest = np.argsort(dist, axis=1)[:, :6]
    cage = atom_of[nearest]
    cage_vectors = np.take_along_axis(vectors, nearest[:, :, None], axis=1)
    return b_index, cage, cage_vectors


def off_centring(
    frames: Sequence, b_site: str = "Ti", anion: str = "O", reference=None
) -> np.ndarray:
    """Local order parameter u (n_frames, n_B, 3), A: each B cation minus the centroid of its
    anion octahedron, the cages found in ``reference`` (default: the first frame).

    Every frame must hold the same atoms in the same order (a trajectory). Each B-anion vector is
    taken at the periodic image nearest to its vector in the reference frame, so atoms may wrap
    through the cell, and cells one unit cell thick work, as long as no atom moves half a cell
    length relative to its cation.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("no frames")
    b_index, cage, ref_vectors = octahedra(
        frames[0] if reference is None else reference, b_site, anion
    )
    n_atoms = len(frames[0])
    u = np.empty((len(frames), len(b_index), 3))
    for k, atoms in enumerate(frames):
        if len(atoms) != n_atoms:
            raise ValueError(
                f"frame {k} has {len(atoms)} atoms, the first {n_atoms}: not one trajectory"
            )
        pos = atoms.positions
        raw = pos[cage] - pos[b_index][:, None, :]
        d = ref_vectors + _minimum_image(raw - ref_vectors, atoms.cell.array)
        u[k] = -d.mean(axis=1)
    return u


def cell_grid(atoms, b_site: str = "Ti") -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """The unit cell of each B cation on the supercell's grid: ``(index (n_B, 3), shape)``.

    The grid is read from the cations' scaled positions: along each lattice vector they fall
    into n planes, which gives the shape; ``ValueError`` when they do not form a full
    n_a x n_b x n_c grid (one B per cell).
    """
    symbols = np.asarray(atoms.get_chemical_symbols())
    frac = atoms.get_scaled_positions(wrap=True)[symbols == b_site]
    if len(frac) == 0:
        raise ValueError(f"no {b_site} atoms in the structure")
    index = np.zeros((len(frac), 3), dtype=int)
    shape = []
    for a in range(3):
        # planes of cations along the axis: the gaps between them (periodic, sorted) are the
        # large ones, thermal spread within a plane is a small fraction of the spacing
        x = np.sort(frac[:, a])
        gaps = np.diff(np.concatenate([x, [x[0] + 1.0]]))
        n = int((gaps > 0.5 * gaps.max()).sum())
        # plane k sits at (k + phase) / n: the phase from the circular mean, then the nearest plane
        phase = np.angle(np.exp(2j * np.pi * n * frac[:, a]).mean()) / (2 * np.pi)
        index[:, a] = np.round(frac[:, a] * n - phase).astype(int) % n
        shape.append(n)
    shape = tuple(int(s) for s in shape)
    flat = np.ravel_multi_index(index.T, shape)
    if len(frac) != np.prod(shape) or len(np.unique(flat)) != len(frac):
        raise ValueError(
            f"the {len(frac)} {b_site} atoms do not form a full {shape[0]}x{shape[1]}x{shape[2]} "
            "grid of unit cells (one per cell)"
        )
    return index, shape


def switching_times(
    time_fs: np.ndarray,
    u_axis: np.ndarray,
    window: Tuple[float, float],
) -> Tuple[np.ndarray, int]:
    """When each cell reverses: the last sign change of its u along the axis within ``window``.

    Args:
        time_fs: (n_frames,) fs
        u_axis: (n_frames, n_cells) A, u projected on the field axis
        window: (t0, t1) fs, one reversal: the cells' mean u must change sign between t0 and t1

    Returns:
        ``(t_switch (n_cells,) fs, direction)``: the time of the cell's last zero crossing towards
        the final sign (linear interpolation between frames; NaN for a cell that ends the window
        with its starting sign), and the direction of the reversal (+1: to u > 0, -1: to u < 0).
    """
    time_fs = np.asarray(time_fs, dtype=float)
    u_axis = np.asarray(u_axis, dtype=float)
    keep = (time_fs >= window[0]) & (time_fs <= window[1])
    if keep.sum() < 2:
        raise ValueError(f"fewer than two frames in the window {window} fs")
    t, u = time_fs[keep], u_axis[keep]
    before, after = u[0].mean(), u[-1].mean()
    if np.sign(before) == np.sign(after):
        raise ValueError(
            f"the mean off-centring does not reverse within {window} fs "
            f"({before:+.3f} to {after:+.3f} A): choose a window around one switch"
        )
    direction = 1 if after > 0 else -1
    s = direction * u  # > 0: switched
    t_switch = np.full(u.shape[1], np.nan)
    for c in range(u.shape[1]):
        if s[-1, c] <= 0:
            continue
        unswitched = np.flatnonzero(s[:, c] <= 0)
        if len(unswitched) == 0:
            # switched before the window: its crossing is at or before t0
            t_switch[c] = t[0]
            continue
        k = unswitched[-1]  # last unswitched frame; frame k + 1 is switched
        frac = -s[k, c] / (s[k + 1, c] - s[k, c])
        t_switch[c] = t[k] + frac * (t[k + 1] - t[k])
    return t_switch, direction


def switched_fraction(u_axis: np.ndarray, direction: int) -> np.ndarray:
    """(n_frames,) fraction of cells whose u along the axis has the sign ``direction``."""
    return (direction * np.asarray(u_axis) > 0).mean(axis=1)


def neighbour_correlation(
    values: np.ndarray, index: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    """(3,) Pearson correlation of a per-cell value with its +1 neighbour along each grid axis.

    Periodic grid; cells with a NaN value are left out of the pairs they are in. Independent
    cells give about 0 (spread about 1/sqrt(n_cells)); cells that act together give up to 1.
    NaN along an axis with a single plane of cells.
    """
    values = np.asarray(values, dtype=float)
    grid = np.full(tuple(shape), np.nan)
    grid[tuple(np.asarray(index).T)] = values
    out = np.full(3, np.nan)
    for a in range(3):
        if shape[a] < 2:
            continue
        x, y = grid.ravel(), np.roll(grid, -1, axis=a).ravel()
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
            continue
        out[a] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return out
