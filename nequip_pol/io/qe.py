"""Quantum ESPRESSO finite-field runs -> extended-XYZ training frames.

For every configuration the user runs ``pw.x`` with ``lelfield=.true.`` once at zero field and once
(or twice, +E and -E) with a small homogeneous field along each Cartesian axis (``efield_cart``).
:func:`parse_qe_runs` reads the XML data files of those runs (:mod:`nequip_pol.io.qe_xml`, which
also gives the unit conversions), groups them by configuration and builds one frame per
configuration with energy, forces, stress and polarization of the zero-field run, plus Born
effective charges and polarizability from finite differences with respect to the field;
:func:`write_frames` writes the frames as extended XYZ.

Conventions (verified against the Allegro-pol frames in ``shared/data/dft``; see
docs/quantum_espresso.md):

* Born charges ``Z*_i,ab = dF_ib / dE_a`` (first index = field/polarization direction, second =
  force/displacement direction), stored row-major as 9 numbers per atom (e);
* polarizability ``alpha_ab = dP_a / dE_b`` (row = polarization, column = field), 9 numbers
  (e*A^2/V);
* the polarization is defined modulo the quantum e*R (R a lattice vector). Differences between runs
  are reduced to the nearest branch (minimum image in fractional coordinates); the frame's own P is
  folded to the branch closest to zero (fractional coordinates in [-1/2, 1/2)), as in the stored data.

The names of :mod:`~nequip_pol.io.qe_xml` (the reader, :class:`QERun`, the unit constants) and of
:mod:`~nequip_pol.io.errors` are re-exported here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import NequipPolIOError, OutputExistsError
from .qe_xml import (
    BOHR_ANGSTROM,
    HARTREE_EV,
    RY_DIPOLE_E_ANGSTROM,
    RY_FIELD_V_PER_A,
    QEParseError,
    QERun,
    find_qe_xml,
    read_qe_xml,
)

__all__ = [
    "BOHR_ANGSTROM",
    "HARTREE_EV",
    "RY_FIELD_V_PER_A",
    "RY_DIPOLE_E_ANGSTROM",
    "NequipPolIOError",
    "QEParseError",
    "OutputExistsError",
    "QERun",
    "read_qe_xml",
    "find_qe_xml",
    "group_runs",
    "parse_qe_runs",
    "write_frames",
    "fold_polarization",
    "reduce_dipole_difference",
]

_AXES = "xyz"


# ---------------------------------------------------------------------------- polarization branch


def fold_polarization(p: np.ndarray, cell: np.ndarray, center=None) -> np.ndarray:
    """Fold a cell dipole (e*A) to the branch closest to ``center`` (default zero)."""
    import torch

    from ..data.branch import fold_to_nearest_branch

    p = torch.as_tensor(np.asarray(p, dtype=float)).view(1, 3)
    c = (
        torch.zeros((1, 3), dtype=torch.float64)
        if center is None
        else torch.as_tensor(np.asarray(center, dtype=float)).view(1, 3)
    )
    cell = torch.as_tensor(np.asarray(cell, dtype=float)).view(1, 3, 3)
    return fold_to_nearest_branch(p, c, cell, torch.tensor([True])).numpy()[0]


def reduce_dipole_difference(dp: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Bring a dipole difference (e*A) to the nearest branch: subtract the lattice vector R
    (quantum e*R) that makes its fractional coordinates lie in [-1/2, 1/2]."""
    return fold_polarization(dp, cell)


# ------------------------------------------------------------------------------------- grouping


def _same_config(a: QERun, b: QERun, tol: float) -> str | None:
    """None when a and b are the same configuration, else the reason they differ."""
    if len(a.symbols) != len(b.symbols):
        return f"different number of atoms ({len(a.symbols)} vs {len(b.symbols)})"
    if a.symbols != b.symbols:
        i = next(k for k, (x, y) in enumerate(zip(a.symbols, b.symbols)) if x != y)
        return f"different species (atom {i}: {a.symbols[i]} vs {b.symbols[i]})"
    dc = np.abs(a.cell - b.cell).max()
    if dc > tol:
        return f"different cells (max |difference| {dc:.3g} A > tolerance {tol:g} A)"
    d = a.positions - b.positions
    frac = np.linalg.solve(a.cell.T, d.T).T
    frac -= np.round(frac)
    dmax = np.linalg.norm(frac @ a.cell, axis=1).max()
    if dmax > tol:
        return f"different atomic positions (max displacement {dmax:.3g} A > tolerance {tol:g} A)"
    return None


def group_runs(runs: Sequence[QERun], tol: float = 1e-4) -> list[list[QERun]]:
    """Group runs by configuration (same species in the same order, cell and positions within
    ``tol`` Angstrom, positions compared as minimum images). Order of first appearance is kept."""
    groups: list[list[QERun]] = []
    for r in runs:
        for g in groups:
            if _same_config(g[0], r, tol) is None:
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def _names(runs: Iterable[QERun]) -> str:
    return ", ".join(str(r.path) for r in runs)


def _classify(group: list[QERun], field_tol: float):
    """Split a group into the zero-field run and {axis: {sign: run}}."""
    zero = []
    by_axis: dict[int, dict[int, QERun]] = {}
    for r in group:
        f = r.field_ry
        amp = np.abs(f)
        if amp.max() <= field_tol:
            zero.append(r)
            continue
        nz = np.flatnonzero(amp > field_tol)
        if nz.size != 1:
            raise QEParseError(
                f"{r.path}: field {f.tolist()} (Ry a.u.) is not along a Cartesian axis; "
                "use efield_cart with a single non-zero component"
            )
        ax = int(nz[0])
        sign = 1 if f[ax] > 0 else -1
        slot = by_axis.setdefault(ax, {})
        if sign in slot:
            raise QEParseError(
                f"{r.path}: duplicate run, same configuration and field direction "
                f"{'+' if sign > 0 else '-'}{_AXES[ax]} as {slot[sign].path}"
            )
        slot[sign] = r
    if len(zero) > 1:
        raise QEParseError(
            f"{zero[1].path}: duplicate zero-field run of the configuration of {zero[0].path}"
        )
    return (zero[0] if zero else None), by_axis


def _missing(group, zero, by_axis) -> list[str]:
    miss = [] if zero is not None else ["zero field"]
    miss += [f"field along {_AXES[a]}" for a in range(3) if a not in by_axis]
    return miss


# ------------------------------------------------------------------------------------ frames


def _derivatives(zero: QERun, by_axis):
    """dF_i/dE_a (N, 3, 3) [e] indexed [i, a, b] and dP/dE (3, 3) [a = P, b = field], plus the method."""
    nat = len(zero.symbols)
    z = np.zeros((nat, 3, 3))
    alpha = np.zeros((3, 3))
    methods = []
    for a in range(3):
        runs = by_axis[a]
        if 1 in runs and -1 in runs:
            hi, lo = runs[1], runs[-1]
            methods.append("central")
        else:
            hi, lo = (runs[1], zero) if 1 in runs else (zero, runs[-1])
            methods.append("forward")
        de = hi.field[a] - lo.field[a]  # V/A
        z[:, a, :] = (hi.forces - lo.forces) / de
        alpha[:, a] = reduce_dipole_difference(hi.dipole - lo.dipole, zero.cell) / de
    return z, alpha, methods


def _frame(
    run: QERun, polarization: np.ndarray, energy: float, z, alpha, with_field: bool
):
    from ase import Atoms

    atoms = Atoms(symbols=run.symbols, positions=run.positions, cell=run.cell, pbc=True)
    atoms.info["total_energy"] = float(energy)
    if run.stress is not None:
        atoms.info["stress"] = run.stress.reshape(9).copy()
    atoms.info["polarization"] = np.asarray(polarization, dtype=float)
    atoms.info["polarizability"] = alpha.reshape(9).copy()
    if with_field:
        atoms.info["electric_field"] = run.field.astype(float).copy()
    atoms.arrays["forces"] = run.forces.copy()
    atoms.arrays["born_effective_charges"] = z.reshape(len(run.symbols), 9).copy()
    return atoms


def _field_frame_energy(
    zero: QERun, run: QERun, p0: np.ndarray, p: np.ndarray
) -> float:
    """Energy of a finite-field run on the branch of ``p`` (convention E(F) = E_KS - F . P).

    QE's ``etot`` under a field contains -F . P on a branch of its own choosing, so it is only
    defined modulo F . (e R). First move it to the branch of ``p``, then remove any remaining whole
    quanta F . R by comparing with the linear-response estimate E0 - F . (P0 + P) / 2.
    """
    e = run.energy + float(run.field @ (run.dipole - p))
    target = zero.energy - float(run.field @ (p0 + p)) / 2.0
    quanta = run.cell @ run.field  # F . R_k, eV
    quanta = quanta[np.abs(quanta) > 1e-12]
    if quanta.size:
        resid = e - target
        grid = np.array(
            np.meshgrid(*([np.arange(-3, 4)] * quanta.size), indexing="ij")
        ).reshape(quanta.size, -1)
        shifts = quanta @ grid
        e -= float(shifts[np.argmin(np.abs(resid - shifts))])
    return e


def parse_qe_runs(
    paths,
    tol: float = 1e-4,
    field_tol: float = 1e-12,
    include_field_frames: bool = False,
    fold: bool = True,
) -> list:
    """Turn QE finite-field runs into training frames (``ase.Atoms``, one per configuration).

    Args:
        paths: run folders and/or XML files (a folder may hold several XML files); the field of
            each run is read from its XML, never from a name.
        tol: tolerance (A) on cell and positions for runs to count as the same configuration.
        field_tol: |field| (Ry a.u.) below which a run counts as zero-field.
        include_field_frames: also emit one frame per finite-field run (with ``electric_field``,
            its own energy/forces/stress/P and the configuration's Born charges and polarizability).
            Its energy is put on the branch of its P (convention E = E_KS - field . P): QE's
            field term uses its own branch, so whole quanta field . (e R) are removed.
        fold: fold each frame's P to the branch closest to zero (as in the reference data);
            otherwise keep QE's raw branch.

    Returns:
        list of ``ase.Atoms`` with ``info`` keys ``total_energy`` (eV), ``stress`` (eV/A^3, 9,
        ASE sign), ``polarization`` (e*A), ``polarizability`` (e*A^2/V, 9, row-major),
        [``electric_field`` (V/A)] and ``arrays`` ``forces`` (eV/A), ``born_effective_charges``
        (e, 9 per atom, row-major, Z*_ab = dF_b/dE_a).

    Raises:
        QEParseError: unreadable/malformed file, unconverged SCF, no Berry-phase polarization,
            runs that do not group into complete configurations, missing field direction.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        for f in find_qe_xml(p):
            if f.resolve() not in {x.resolve() for x in files}:
                files.append(f)
    if not files:
        raise QEParseError("no QE runs given")
    runs = [read_qe_xml(f) for f in files]
    groups = group_runs(runs, tol=tol)

    classified = [(g, *_classify(g, field_tol)) for g in groups]
    for g, zero, by_axis in classified:
        miss = _missing(g, zero, by_axis)
        if not miss:
            continue
        others = [h for h in groups if h is not g]
        if others:
            reasons = "; ".join(
                f"vs {h[0].path}: {_same_config(g[0], h[0], tol)}" for h in others
            )
            raise QEParseError(
                f"{_names(g)}: these runs do not group with the other runs into a complete "
                f"configuration (missing: {', '.join(miss)}); their atoms or cell differ: {reasons}"
            )
        what = "missing zero-field run" if zero is None else "missing field direction"
        raise QEParseError(
            f"{_names(g)}: {what} for this configuration: {', '.join(miss)} not found"
        )

    frames = []
    for g, zero, by_axis in classified:
        z, alpha, _ = _derivatives(zero, by_axis)
        p0 = fold_polarization(zero.dipole, zero.cell) if fold else zero.dipole
        frames.append(_frame(zero, p0, zero.energy, z, alpha, with_field=False))
        if include_field_frames:
            for a in range(3):
                for s in sorted(by_axis[a], reverse=True):
                    r = by_axis[a][s]
                    # keep the branch of the zero-field P: P(E) = P0 + nearest-branch difference
                    p = p0 + reduce_dipole_difference(r.dipole - zero.dipole, zero.cell)
                    e = _field_frame_energy(zero, r, p0, p)
                    frames.append(_frame(r, p, e, z, alpha, with_field=True))
    return frames


# --------------------------------------------------------------------------------------- writing


def write_frames(frames, out_path, force: bool = False) -> Path:
    """Write frames as extended XYZ. Refuses to overwrite an existing file unless ``force``;
    writes to a temporary file first so that nothing partial is left on failure."""
    import ase.io

    out_path = Path(out_path)
    frames = list(frames)
    if not frames:
        raise NequipPolIOError(f"{out_path}: no frames to write")
    if out_path.is_dir():
        raise NequipPolIOError(
            f"{out_path}: is a folder; give the path of the extended-XYZ file to write"
        )
    if out_path.exists() and not force:
        raise OutputExistsError(
            f"{out_path}: output file exists; not overwriting it (use --force / force=True)"
        )
    parent = out_path.parent if str(out_path.parent) else Path(".")
    if not parent.is_dir():
        raise NequipPolIOError(f"{out_path}: output folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        ase.io.write(tmp, frames, format="extxyz")
        # mkstemp creates the file private (0600): give it the permissions of a normal new file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
