"""Hessians by finite differences of the forces of any ASE calculator (no phonopy).

Used by the relaxations of :mod:`~nequip_pol.analysis.dielectric` (a Newton preconditioner) and
by the tests as an independent check of phonopy's force constants
(:mod:`~nequip_pol.analysis.phonons`). Units: eV/A^2, A.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

__all__ = ["finite_difference_hessian"]


def finite_difference_hessian(
    atoms,
    calc=None,
    delta: float = 1e-3,
    progress: Optional[Callable[[str], None]] = None,
) -> np.ndarray:
    """Hessian d2E/dR dR (3N, 3N), eV/A^2, by central differences of the forces (no phonopy).

    Every Cartesian coordinate is displaced by +-``delta`` (A); the calculator's current field is
    used (set it to zero for phonons). Symmetrised. Costs 6N force calls.
    """
    atoms = atoms.copy()
    atoms.calc = calc if calc is not None else atoms.calc
    x0 = atoms.positions.copy()
    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    for i in range(n):
        for b in range(3):
            rows = []
            for sign in (1.0, -1.0):
                x = x0.copy()
                x[i, b] += sign * delta
                atoms.positions = x
                rows.append(atoms.get_forces().reshape(-1))
            hessian[3 * i + b] = -(rows[0] - rows[1]) / (2.0 * delta)
        if progress is not None and (i + 1) % max(1, n // 5) == 0:
            progress(f"finite-difference Hessian: {i + 1}/{n} atoms")
    return 0.5 * (hessian + hessian.T)
