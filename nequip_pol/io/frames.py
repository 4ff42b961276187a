"""One training frame (``ase.Atoms``) with the keys and units that every converter writes.

The converters of :mod:`nequip_pol.io` (``parse-qe``, ``parse-qe-ph``, ``parse-vasp``) all write
frames with these keys, through one writer (:func:`nequip_pol.io.qe.write_frames`, extended XYZ):

==========================  ========  =====================  ===================================
key                         where     shape                  units and definition
==========================  ========  =====================  ===================================
``total_energy``            info      scalar                 eV
``forces``                  arrays    (N, 3)                 eV/A
``stress``                  info      9, row-major           eV/A^3, ASE sign (positive = tensile)
``polarization``            info      3                      e*A, cell dipole, modulo e*R
``born_effective_charges``  arrays    (N, 9), row-major      e, Z*_i,ab = dP_a/dr_ib = dF_ib/dE_a
``polarizability``          info      9, row-major           e*A^2/V, alpha_ab = dP_a/dE_b
==========================  ========  =====================  ===================================

A label that a run does not provide is left out of the frame (not written as zeros or NaN).
"""

from __future__ import annotations

import numpy as np

__all__ = ["build_frame", "run_frame", "stress_matrix", "LABEL_KEYS"]

#: the label keys a converted frame can carry (a frame has those its run provides)
LABEL_KEYS = (
    "total_energy",
    "forces",
    "stress",
    "polarization",
    "born_effective_charges",
    "polarizability",
)


def stress_matrix(stress) -> np.ndarray:
    """The (3, 3) stress of a Voigt (6,) one in ASE's order (xx, yy, zz, yz, xz, xy); a (3, 3)
    one as is (as floats)."""
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return s


def build_frame(
    symbols,
    positions,
    cell,
    *,
    energy=None,
    forces=None,
    stress=None,
    polarization=None,
    born_effective_charges=None,
    polarizability=None,
):
    """An ``ase.Atoms`` (periodic) with the given labels; ``None`` labels are left out.

    Args:
        symbols: chemical symbols, N
        positions: (N, 3) Cartesian positions, A
        cell: (3, 3) lattice vectors as rows, A
        energy: total energy, eV
        forces: (N, 3), eV/A
        stress: (3, 3) or Voigt (6,) in ASE's order (xx, yy, zz, yz, xz, xy), eV/A^3, ASE sign
        polarization: (3,) cell dipole, e*A
        born_effective_charges: (N, 3, 3) with [i, a, b] = dP_a/dr_ib, e
        polarizability: (3, 3) with [a, b] = dP_a/dE_b, e*A^2/V
    """
    from ase import Atoms

    atoms = Atoms(symbols=list(symbols), positions=positions, cell=cell, pbc=True)
    n = len(atoms)
    if energy is not None:
        atoms.info["total_energy"] = float(energy)
    if stress is not None:
        atoms.info["stress"] = stress_matrix(stress).reshape(9).copy()
    if polarization is not None:
        atoms.info["polarization"] = np.asarray(polarization, dtype=float).reshape(3)
    if polarizability is not None:
        atoms.info["polarizability"] = (
            np.asarray(polarizability, dtype=float).reshape(9).copy()
        )
    if forces is not None:
        atoms.arrays["forces"] = np.asarray(forces, dtype=float).reshape(n, 3).copy()
    if born_effective_charges is not None:
        atoms.arrays["born_effective_charges"] = (
            np.asarray(born_effective_charges, dtype=float).reshape(n, 9).copy()
        )
    return atoms


def run_frame(run, fold: bool = True):
    """The frame of a parsed run record (:class:`~nequip_pol.io.vasp.VaspRun`,
    :class:`~nequip_pol.io.qe_ph.QEPhRun`): its labels, ``None`` ones left out; the cell dipole
    folded to the branch nearest zero unless ``fold`` is false (as ``parse-qe`` does)."""
    p = run.dipole
    if p is not None and fold:
        from .qe import fold_polarization

        p = fold_polarization(p, run.cell)
    return build_frame(
        run.symbols,
        run.positions,
        run.cell,
        energy=run.energy,
        forces=run.forces,
        stress=run.stress,
        polarization=p,
        born_effective_charges=run.born_effective_charges,
        polarizability=run.polarizability,
    )
