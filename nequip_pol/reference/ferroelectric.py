"""An analytic *ferroelectric* reference material: the paraelectric perovskite plus a B-site double well.

:class:`AnalyticFerroelectric` is :class:`~nequip_pol.reference.AnalyticPolarMaterial` (same
species Ba/Ti/O, lattice constant, Morse pairs, bond dipoles, polarizabilities and
hyperpolarizabilities; all its terms and its field dependence are inherited unchanged) with two
extra zero-field terms that make the cubic structure unstable against Ti off-centring:

* **on-site double well** for every Ti in its O6 cage. The off-centring vector of Ti i is
  u_i = -sum_j w_ij r_ij / sum_j w_ij over the O atoms j within ``CAGE_CUTOFF`` (r_ij = r_j - r_i,
  w_ij = a C2 switch from ``CAGE_CUTOFF_ON`` to ``CAGE_CUTOFF``, = 1 for the six cage bonds at
  2 A), i.e. the displacement of Ti from the centroid of its cage, and

      E_site(u_i) = -a |u|^2 + b |u|^4 - d sum_j w_ij (u . rhat_ij)^4.

  The last term is a cubic anisotropy written with the bond directions (so the energy stays
  rotation invariant): with d in (b/3, b/2) the minima point along the six Ti-O bonds, <100>
  (tetragonal, like BaTiO3), and under a field along the polar axis the polar minimum loses
  stability longitudinally (it switches through u = 0, it does not rotate).
* **inter-site coupling** through the shared oxygens: for every O k,
  s_k = sum_j w_kj (r_j - r_k) over the Ti j within ``CAGE_CUTOFF`` (its two Ti neighbours),
  which to first order is the sum of the two Ti off-centrings, and E_coup = -J sum_k |s_k|^2.
  It favours parallel off-centrings of neighbouring Ti (ferroelectric order, single domains).

Both terms are smooth (C2), strictly local (every term depends only on atoms within
``CAGE_CUTOFF`` = 3.2 A of one Ti or one O, inside the 4.5 A range of the parent material, so a
model with r_max = 5 A can represent the whole enthalpy), translation invariant (only relative
vectors enter), and field independent, so the polarization and Born charges are still sums of
bond terms and sum_i Z*_i = 0 holds exactly. The ground states at zero field are polar: Ti
displaced by 0.12 A along +-x, +-y, +-z with all Ti parallel (``spontaneous_state``).

**Intrinsic coercive field** (:func:`exact_intrinsic_coercive_field`): the zero-temperature,
single-domain field at which the polar minimum disappears under a homogeneous field antiparallel
to P. The cell (default 1x1x1, periodic: the homogeneous, single-domain limit) is relaxed (all
positions, fixed cell) at zero field into the +P state, then the field -E e_axis is increased
with the positions followed by relaxation (continuation); for each field the relaxed state is
accepted as the polar minimum when it is still on the +P side and its Hessian (exact, by
autograd, translations projected out) is positive definite. Bisection on E between the largest
accepted and the smallest rejected field gives Ec to a relative ``tol`` (default 1e-5); at Ec the
lowest Hessian eigenvalue goes to zero (a saddle-node bifurcation), which the returned
``lowest_eigenvalue`` shows. This is the exact, tighter variant of the calculator-generic
:func:`nequip_pol.analysis.coercive.intrinsic_coercive_field` (FIRE relaxations, a geometric
order parameter, any ASE calculator), which agrees with it to its force tolerance.

Units: eV, A, V/A, e*A (cell dipole). Example::

    from nequip_pol.reference import AnalyticFerroelectric, ReferenceMaterialCalculator
    from nequip_pol.reference.ferroelectric import exact_intrinsic_coercive_field, spontaneous_state

    material = AnalyticFerroelectric()
    atoms, ps = spontaneous_state(material, axis="z")     # relaxed +P state, Ps along z (e*A)
    ec = exact_intrinsic_coercive_field(material, "z")    # dict: coercive_field (V/A), ...
    atoms.calc = ReferenceMaterialCalculator(material)    # exact ASE calculator (MD, relaxations)
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import ase
import numpy as np
import torch

from ..analysis.protocol import axis_vector
from ..units import E_ANGSTROM2_TO_UC_CM2
from .paraelectric import (
    _DTYPE,
    AnalyticPolarMaterial,
    _neighbor_pairs,
    _species_indices,
    _switch,
    ideal_structure,
)

__all__ = [
    "CAGE_CUTOFF",
    "CAGE_CUTOFF_ON",
    "AnalyticFerroelectric",
    "spontaneous_state",
    "relax",
    "exact_intrinsic_coercive_field",
]

#: inner / outer radius (A) of the switch that selects the Ti-O cage bonds (first shell at 2.0 A,
#: second at 4.47 A in the ideal crystal)
CAGE_CUTOFF_ON = 2.6
CAGE_CUTOFF = 3.2
_TI, _O = 1, 2  # species indices of the parent tables


class AnalyticFerroelectric(AnalyticPolarMaterial):
    """The analytic perovskite with a Ti double well: a ferroelectric with exactly known E(R, E).

    Args:
        well_quadratic: a (eV/A^2) of the on-site term -a |u|^2 (the instability)
        well_quartic: b (eV/A^4) of +b |u|^4
        anisotropy: d (eV/A^4) of -d sum_j (u . rhat_ij)^4; b/3 < d < b/2 gives <100> minima that
            switch longitudinally
        coupling: J (eV/A^2) of the inter-site term -J |s_k|^2 per oxygen

    The defaults give (1x1x1 cell, fixed cubic cell of 4 A, see ``docs/switching.md``) a Ti
    off-centring of 0.121 A, a spontaneous cell dipole of 0.293 e*A per 5-atom cell
    (7.3 uC/cm^2), a double-well depth of 0.0149 eV per cell and an intrinsic coercive field of
    0.0779 V/A, where the polar minimum still has P = +0.076 e*A (so P crosses zero at the fold).
    The barrier is shallow on purpose: switching is thermally activated already at 10-100 K.
    """

    def __init__(
        self,
        well_quadratic: float = 1.5,
        well_quartic: float = 350.0,
        anisotropy: float = 140.0,
        coupling: float = 0.15,
    ):
        super().__init__()
        self.well_quadratic = float(well_quadratic)
        self.well_quartic = float(well_quartic)
        self.anisotropy = float(anisotropy)
        self.coupling = float(coupling)

    # the parent's energy plus the zero-field double-well terms; properties() (autograd E, F,
    # stress, P, Z*, alpha) is inherited and sees the whole enthalpy
    def energy(
        self, positions, cell, pbc, species, field=None, atomic_field=None
    ) -> torch.Tensor:
        """Electric enthalpy E(R, E) in eV (torch scalar); arguments as :meth:`AnalyticPolarMaterial.energy`
        (the double well is field independent: a per-atom ``atomic_field`` enters the parent's terms only)."""
        positions = torch.as_tensor(positions, dtype=_DTYPE)
        cell_t = (
            torch.zeros(3, 3, dtype=_DTYPE)
            if cell is None
            else torch.as_tensor(cell, dtype=_DTYPE)
        )
        base = super().energy(positions, cell_t, pbc, species, field, atomic_field)
        return base + self.double_well_energy(positions, cell_t, pbc, species)

    def _cage_bonds(self, positions, cell, pbc, types):
        """Ti -> O pairs within CAGE_CUTOFF: (i_ti, j_o, vec r_j - r_i, weight), differentiable."""
        pbc_arr = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
        cell_np = cell.detach().cpu().numpy() if pbc_arr.any() else np.zeros((3, 3))
        i, j, S = _neighbor_pairs(
            positions.detach().cpu().numpy(), cell_np, pbc_arr, CAGE_CUTOFF
        )
        i = torch.as_tensor(i, dtype=torch.long)
        j = torch.as_tensor(j, dtype=torch.long)
        keep = (types[i] == _TI) & (types[j] == _O)
        i, j = i[keep], j[keep]
        vec = positions[j] - positions[i]
        if pbc_arr.any():
            vec = (
                vec + torch.as_tensor(np.asarray(S)[keep.numpy()], dtype=_DTYPE) @ cell
            )
        w = _switch(vec.norm(dim=-1), CAGE_CUTOFF_ON, CAGE_CUTOFF)
        return i, j, vec, w

    def _off_centering(self, i, vec, w, types) -> torch.Tensor:
        """u_i (n_Ti, 3), A: Ti position minus the weighted centroid of its O cage."""
        n = len(types)
        is_ti = types == _TI
        wsum = torch.zeros(n, dtype=_DTYPE).index_add(0, i, w)
        centroid = torch.zeros(n, 3, dtype=_DTYPE).index_add(
            0, i, w.unsqueeze(-1) * vec
        )
        return -centroid[is_ti] / wsum[is_ti].clamp_min(1e-12).unsqueeze(-1)

    def off_centering(self, atoms: ase.Atoms) -> np.ndarray:
        """Off-centring u_i of every Ti from the centroid of its O6 cage, (n_Ti, 3), A (the order parameter)."""
        types = _species_indices(atoms.numbers)
        with torch.no_grad():
            pos = torch.tensor(atoms.positions, dtype=_DTYPE)
            i, _, vec, w = self._cage_bonds(
                pos, torch.tensor(atoms.cell.array, dtype=_DTYPE), atoms.pbc, types
            )
            return self._off_centering(i, vec, w, types).numpy()

    def double_well_energy(self, positions, cell, pbc, species) -> torch.Tensor:
        """The two extra terms, E_site + E_coup (eV, torch scalar), at positions (n, 3) A and cell (3, 3) A."""
        types = _species_indices(species)
        n = len(types)
        i, j, vec, w = self._cage_bonds(positions, cell, pbc, types)
        zero_v = torch.zeros(n, 3, dtype=_DTYPE)
        is_ti = types == _TI
        # Ti off-centring u_i = -(weighted centroid of the cage relative to Ti)
        u = self._off_centering(i, vec, w, types)
        uu = (u * u).sum(-1)
        e_site = (-self.well_quadratic * uu + self.well_quartic * uu * uu).sum()
        # cubic anisotropy along the cage bonds: u of the bond's Ti dotted with the bond direction
        u_full = zero_v.clone()
        u_full[is_ti] = u
        rhat = vec / vec.norm(dim=-1, keepdim=True)
        e_aniso = -self.anisotropy * (w * ((u_full[i] * rhat).sum(-1)) ** 4).sum()
        # inter-site coupling through each O: s_k = sum over its Ti neighbours of w (r_Ti - r_O)
        s = zero_v.index_add(0, j, -w.unsqueeze(-1) * vec)
        e_coup = -self.coupling * (s[types == _O] ** 2).sum()
        return e_site + e_aniso + e_coup


# ---------------------------------------------------------------------- statics


def _energy_gradient(
    material, atoms: ase.Atoms, field: np.ndarray, hessian: bool = False
):
    """Enthalpy (eV), gradient (n*3,) eV/A and optionally the Hessian (n*3, n*3) eV/A^2 at fixed cell."""
    cell = torch.tensor(atoms.cell.array, dtype=_DTYPE)
    fld = torch.tensor(field, dtype=_DTYPE)
    numbers = atoms.numbers
    pbc = atoms.pbc

    def f(x):
        return material.energy(x.reshape(-1, 3), cell, pbc, numbers, fld)

    x = torch.tensor(atoms.positions.reshape(-1), dtype=_DTYPE, requires_grad=True)
    e = f(x)
    (g,) = torch.autograd.grad(e, x)
    if not hessian:
        return float(e.detach()), g.numpy()
    h = torch.autograd.functional.hessian(f, x.detach())
    return float(e.detach()), g.numpy(), h.numpy()


def _projected_eigenvalues(h: np.ndarray) -> np.ndarray:
    """Eigenvalues (eV/A^2) of the Hessian with the three uniform translations projected out."""
    n = h.shape[0] // 3
    t = np.zeros((3 * n, 3))
    for k in range(3):
        t[k::3, k] = 1.0 / np.sqrt(n)
    proj = np.eye(3 * n) - t @ t.T
    ev = np.linalg.eigvalsh(proj @ h @ proj)
    # drop the three (numerically) zero translation eigenvalues: the 3 of smallest magnitude
    keep = np.argsort(np.abs(ev))[3:]
    return np.sort(ev[keep])


def relax(
    material, atoms: ase.Atoms, field=None, gtol: float = 1e-9, max_iter: int = 5000
) -> ase.Atoms:
    """Positions relaxed at fixed cell under ``field`` (3,) V/A (L-BFGS on the exact enthalpy); a copy.

    ``gtol``: max |force component| (eV/A) at convergence.
    """
    from scipy.optimize import minimize

    field = np.zeros(3) if field is None else np.asarray(field, dtype=float)
    work = atoms.copy()
    work.calc = None

    def fun(x):
        work.positions = x.reshape(-1, 3)
        e, g = _energy_gradient(material, work, field)
        return e, g

    res = minimize(
        fun,
        atoms.positions.reshape(-1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": gtol, "ftol": 1e-16, "maxiter": max_iter, "maxcor": 30},
    )
    work.positions = res.x.reshape(-1, 3)
    return work


def _polarization(material, atoms, field) -> np.ndarray:
    return np.asarray(material.properties(atoms, field, response=False)["polarization"])


def _displaced_start(supercell, axis_vec: np.ndarray, amplitude: float) -> ase.Atoms:
    atoms = ideal_structure(supercell)
    ti = atoms.numbers == 22
    atoms.positions[ti] += amplitude * axis_vec
    return atoms


def spontaneous_state(
    material: Optional[AnalyticFerroelectric] = None,
    axis: Union[str, Sequence[float]] = "z",
    supercell: Sequence[int] = (1, 1, 1),
    start_displacement: float = 0.1,
) -> Tuple[ase.Atoms, float]:
    """The relaxed zero-field polar state with P along +``axis`` and the spontaneous polarization.

    Starts from the ideal cubic ``supercell`` with every Ti displaced by ``start_displacement``
    (A) along ``axis`` and relaxes all positions at fixed cell. The spontaneous cell dipole is
    Ps = (P(+) - P(-)) / 2 . axis (e*A per cell), from this state and its inversion image (relaxed
    from the opposite displacement), so that no P convention enters.

    Returns:
        (atoms of the +P state, Ps in e*A for the whole cell)
    """
    material = AnalyticFerroelectric() if material is None else material
    e_axis = axis_vector(axis)
    plus = relax(material, _displaced_start(supercell, e_axis, start_displacement))
    minus = relax(material, _displaced_start(supercell, -e_axis, start_displacement))
    ps = 0.5 * float(
        (
            _polarization(material, plus, np.zeros(3))
            - _polarization(material, minus, np.zeros(3))
        )
        @ e_axis
    )
    return plus, ps


def exact_intrinsic_coercive_field(
    material: Optional[AnalyticFerroelectric] = None,
    axis: Union[str, Sequence[float]] = "z",
    supercell: Sequence[int] = (1, 1, 1),
    tol: float = 1e-5,
    field_step: float = 0.01,
    max_field: float = 2.0,
) -> Dict[str, float]:
    """Zero-temperature, single-domain coercive field along ``axis`` by continuation and bisection.

    The +P state (:func:`spontaneous_state`) is followed under the field -E * axis (antiparallel
    to P) for E = 0, ``field_step``, 2 ``field_step``, ... (V/A) until the relaxed state has
    switched (P . axis below the midpoint between the +P and -P states) or its Hessian is not
    positive definite; then E is bisected between the last accepted and the first rejected value,
    always restarting the relaxation from the last accepted minimum, until the bracket is below
    ``tol`` * E (relative).

    Returns a dict (floats): ``coercive_field`` (V/A, the bracket midpoint), ``bracket_low`` /
    ``bracket_high`` (V/A), ``spontaneous_dipole`` (Ps, e*A per cell), ``spontaneous_polarization_uC_cm2``,
    ``ti_displacement`` (A, mean Ti off-centring along the axis at zero field),
    ``double_well_depth`` (eV per cell: E(ideal cubic, a stationary point by symmetry) - E(+P)),
    ``lowest_eigenvalue`` (eV/A^2, of the Hessian at the last accepted field: -> 0 at Ec),
    ``polarization_at_coercive_field`` (e*A: P . axis of the polar minimum at the last accepted
    field minus that of the cubic structure at zero field (the loop centre); when it is > 0, P in a
    quasi-static loop crosses zero at the fold, so the loop's Ec equals the intrinsic one),
    ``n_atoms``.
    """
    material = AnalyticFerroelectric() if material is None else material
    e_axis = axis_vector(axis)
    plus, ps = spontaneous_state(material, e_axis, supercell)
    cubic = ideal_structure(supercell)
    e_plus, _ = _energy_gradient(material, plus, np.zeros(3))
    e_cubic, _ = _energy_gradient(material, cubic, np.zeros(3))
    u_ti = float((material.off_centering(plus) @ e_axis).mean())

    def try_field(e_value: float, start: ase.Atoms):
        fld = -e_value * e_axis
        relaxed = relax(material, start, fld)
        # switched: the mean Ti off-centring (the order parameter, not P, which also holds the
        # dielectric response to the field) has reversed
        if float((material.off_centering(relaxed) @ e_axis).mean()) <= 0:
            return None, None
        _, _, h = _energy_gradient(material, relaxed, fld, hessian=True)
        lowest = float(_projected_eigenvalues(h)[0])
        return (relaxed, lowest) if lowest > 0 else (None, None)

    state, lowest = (
        plus,
        float(
            _projected_eigenvalues(
                _energy_gradient(material, plus, np.zeros(3), True)[2]
            )[0]
        ),
    )
    low, high = 0.0, None
    e_value = 0.0
    while high is None:
        e_value += field_step
        if e_value > max_field:
            raise RuntimeError(
                f"the polar state survives fields up to {max_field} V/A; no coercive field found"
            )
        new_state, new_lowest = try_field(e_value, state)
        if new_state is None:
            high = e_value
        else:
            state, lowest, low = new_state, new_lowest, e_value
    while high - low > tol * high:
        mid = 0.5 * (low + high)
        new_state, new_lowest = try_field(mid, state)
        if new_state is None:
            high = mid
        else:
            state, lowest, low = new_state, new_lowest, mid
    volume = plus.get_volume()
    p_at_ec = float(
        (
            _polarization(material, state, -low * e_axis)
            - _polarization(material, cubic, np.zeros(3))
        )
        @ e_axis
    )
    return {
        "polarization_at_coercive_field": p_at_ec,
        "coercive_field": 0.5 * (low + high),
        "bracket_low": low,
        "bracket_high": high,
        "spontaneous_dipole": ps,
        "spontaneous_polarization_uC_cm2": ps / volume * E_ANGSTROM2_TO_UC_CM2,
        "ti_displacement": u_ti,
        "double_well_depth": e_cubic - e_plus,
        "lowest_eigenvalue": lowest,
        "n_atoms": float(len(plus)),
    }
