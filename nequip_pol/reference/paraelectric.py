"""The analytic paraelectric reference material: a field-dependent energy model with exactly known E(R, E).

The material lets a user without DFT data exercise the whole nequip-pol pipeline
(data, training, evaluation of P, Z* and alpha).  It is a toy ABO3 perovskite
(species "Ba", "Ti", "O", cubic lattice constant 4.0 A) whose electric enthalpy

    E(R, E) = E0(R) - P0(R).E - 1/2 E.A(R).E - 1/6 B(R)[E,E,E] - 1/24 G(R)[E,E,E,E]

is written in torch (float64), so every response property follows by autograd.
All terms are sums over bonds within a smooth cutoff of ``CUTOFF`` = 4.5 A, i.e. the
material is strictly local and a model with r_max = 5 A can represent it exactly.

Terms (sums over ordered neighbour pairs i -> j, r_ij = r_j - r_i, rhat = r_ij / r):

* ``E0``: Morse pair potentials, one per species pair, with minima at the ideal
  cubic neighbour distances (Ti-O 2.0 A, Ba-O and O-O 2.83 A, Ba-Ti 3.46 A, ...).
* ``P0`` (bond dipoles, e*A): mu_ij = q_ij * r_ij with
  q_ij = g_ab(r) * (t_ab + lam_ab * (CN_i - CN0_a)); t_ab = -t_ba is a charge transfer
  (cation -> anion), CN_i a smooth coordination number of atom i (many-body term),
  CN0_a its value in the ideal crystal.  Only relative vectors enter, so the acoustic
  sum rule sum_i Z*_i = 0 holds exactly.  No fixed ionic charges times positions.
* ``A`` (bond polarizabilities, e*A^2/V): alpha_ij = a_par(r) rhat rhat^T + a_perp(r) (I - rhat rhat^T).
* ``B`` (directed bond hyperpolarizability, e*A^3/V^2): b_ab(r) (rhat.E)^3 with b_ab = -b_ba.
* ``G`` (bond second hyperpolarizability, e*A^4/V^3): c_ab(r) (rhat.E)^2 |E|^2.

**Fields that vary in space.** Every term is a sum over ordered pairs i -> j, i.e. over atoms i
of atom i's share; with a per-atom field (``atomic_field``, (n_atoms, 3), V/A, added to the
homogeneous ``field`` at each atom) the pair i -> j's share sees the field at its first atom i,
E_i = E + E_atomic,i, as in the field expansion of the models. The per-atom dipole
p_i = -dE/dE_i (``atomic_dipoles``) is then exact, P = -dE/dE = sum_i p_i (the response to a
uniform change of the field), alpha = dP/dE, and forces, stress and Z* are derivatives at fixed
per-atom field values.

Units: eV, Angstrom, field in V/A, dipole in e*A.  Conventions (see the package contract):
F_i = -dE/dR_i; stress = (1/V) dE/d(strain) (ASE/nequip sign); P = -dE/dE;
Z*_i,ab = dP_a/dR_ib, shape (n_atoms, 3, 3); alpha_ab = dP_a/dE_b (symmetric).
Public API: :class:`AnalyticPolarMaterial` (``energy``, ``properties``, ``atomic_charges``),
:func:`ideal_structure`, the constants :data:`CUTOFF`, :data:`LATTICE_CONSTANT`,
:data:`TYPE_NAMES`. Labelled data sets of the material: :mod:`nequip_pol.reference.dataset`.
The exact ASE calculator: :class:`~nequip_pol.reference.calculator.ReferenceMaterialCalculator`.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import ase
import numpy as np
import torch
from ase.neighborlist import neighbor_list

__all__ = [
    "CUTOFF",
    "LATTICE_CONSTANT",
    "TYPE_NAMES",
    "AnalyticPolarMaterial",
    "ideal_structure",
]

#: outer radius of every interaction (A); all terms vanish smoothly (C2) there
CUTOFF = 4.5
#: inner radius of the smooth switching function (A)
CUTOFF_ON = 3.5
#: switching interval of the bond charges (A): first cation-anion shell only
CHARGE_CUTOFF_ON = 3.3
CHARGE_CUTOFF = 4.0
#: cubic lattice constant of the ideal crystal (A)
LATTICE_CONSTANT = 4.0
#: species of the material, in the order used by the parameter tables
TYPE_NAMES = ["Ba", "Ti", "O"]
_Z_TO_INDEX = {56: 0, 22: 1, 8: 2}
_SYMBOL_TO_INDEX = {s: k for k, s in enumerate(TYPE_NAMES)}
_DTYPE = torch.float64


def _pair_table(
    values: Dict[tuple, float], antisymmetric: bool = False
) -> torch.Tensor:
    """3x3 table over species indices from {("Ti", "O"): value, ...}; filled (anti)symmetrically."""
    t = torch.zeros(3, 3, dtype=_DTYPE)
    for (a, b), v in values.items():
        ia, ib = _SYMBOL_TO_INDEX[a], _SYMBOL_TO_INDEX[b]
        t[ia, ib] = v
        t[ib, ia] = -v if antisymmetric else v
    return t


def _switch(
    r: torch.Tensor, r_on: float = CUTOFF_ON, r_off: float = CUTOFF
) -> torch.Tensor:
    """C2 smooth cutoff: 1 for r <= r_on, 0 for r >= r_off (quintic smoothstep)."""
    s = ((r - r_on) / (r_off - r_on)).clamp(0.0, 1.0)
    return 1.0 - s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)


def _species_indices(species) -> torch.Tensor:
    out = []
    for s in species:
        if isinstance(s, str):
            if s not in _SYMBOL_TO_INDEX:
                raise ValueError(
                    f"unsupported species {s!r}; the material knows {TYPE_NAMES}"
                )
            out.append(_SYMBOL_TO_INDEX[s])
        else:
            z = int(s)
            if z not in _Z_TO_INDEX:
                raise ValueError(
                    f"unsupported atomic number {z}; the material knows {TYPE_NAMES}"
                )
            out.append(_Z_TO_INDEX[z])
    return torch.tensor(out, dtype=torch.long)


def _neighbor_pairs(pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """Ordered pairs (i, j, S) with |r_j - r_i + S @ cell| < cutoff, all periodic images included.

    Enumerates the integer cell shifts S explicitly (valid for any cell size, unlike the
    minimum-image convention); falls back to ASE's neighbour list for large systems.
    """
    n = len(pos)
    if not pbc.any():
        d = pos[None, :, :] - pos[:, None, :]
        mask = (np.einsum("ijk,ijk->ij", d, d) < cutoff**2) & ~np.eye(n, dtype=bool)
        i, j = np.nonzero(mask)
        return i, j, np.zeros((len(i), 3), dtype=int)
    if (
        abs(np.linalg.det(cell)) < 1e-9 or n * n > 40_000
    ):  # degenerate cell (mixed pbc) or large system
        at = ase.Atoms(numbers=np.ones(n, dtype=int), positions=pos, cell=cell, pbc=pbc)
        return neighbor_list("ijS", at, cutoff)
    inv = np.linalg.inv(cell)
    frac = pos @ inv
    wrap = np.where(pbc, np.floor(frac), 0.0).astype(int)  # pos = pos_w + wrap @ cell
    spacing = 1.0 / np.linalg.norm(inv, axis=0)  # distance between lattice planes
    nmax = np.where(pbc, np.ceil(cutoff / spacing).astype(int) + 1, 0)
    grids = np.meshgrid(*[np.arange(-k, k + 1) for k in nmax], indexing="ij")
    shifts = np.stack([g.ravel() for g in grids], axis=-1)
    if n * n * len(shifts) > 4_000_000:
        at = ase.Atoms(numbers=np.ones(n, dtype=int), positions=pos, cell=cell, pbc=pbc)
        return neighbor_list("ijS", at, cutoff)
    pos_w = pos - wrap @ cell
    d = (
        pos_w[None, :, None, :]
        - pos_w[:, None, None, :]
        + (shifts @ cell)[None, None, :, :]
    )
    mask = np.einsum("ijsk,ijsk->ijs", d, d) < cutoff**2
    zero = np.all(shifts == 0, axis=1)
    mask[np.arange(n), np.arange(n), :] &= ~zero[None, :]
    i, j, s = np.nonzero(mask)
    # vector r_j - r_i + S_total @ cell in the unwrapped positions
    S = shifts[s] - wrap[j] + wrap[i]
    return i, j, S


def ideal_structure(
    supercell: Sequence[int] = (2, 2, 2),
    a: Optional[float] = None,
    c: Optional[float] = None,
) -> ase.Atoms:
    """The ideal ABO3 crystal (Ba at the corner, Ti at the body centre), repeated ``supercell``
    times: cubic with this material's lattice constant by default, tetragonal with lattice
    constants ``a`` and ``c`` (A; ``c`` defaults to ``a``) for other perovskites' cells."""
    a = LATTICE_CONSTANT if a is None else float(a)
    c = a if c is None else float(c)
    unit = ase.Atoms(
        symbols=["Ba", "Ti", "O", "O", "O"],
        scaled_positions=[
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0.0],
            [0.5, 0.0, 0.5],
            [0.0, 0.5, 0.5],
        ],
        cell=np.diag([a, a, c]),
        pbc=True,
    )
    return unit.repeat(tuple(int(n) for n in supercell))


class AnalyticPolarMaterial:
    """Toy perovskite with an exactly known, local electric enthalpy E(R, E).

    Example::

        material = AnalyticPolarMaterial()
        props = material.properties(atoms, field=[0.0, 0.0, 0.1])
        props["polarization"]            # (3,) e*A

    The parameters are set in ``__init__`` (3x3 tables over the species Ba, Ti, O); they were
    chosen so that for random displacements of ~0.08 A forces are O(1 eV/A) (rms ~1), Born
    charges O(1-3 e) (ideal crystal: Ba 1.7, Ti 3.3, O -1.4 / -2.1 along Ti-O), the
    polarizability ~0.63 e*A^2/V per 5-atom cell (~5 per 40-atom supercell), and the
    beyond-linear response at |E| = 0.2 V/A is ~4 % of the linear one (~3 % of the
    thermal P fluctuations), from both even (E^2) and odd (E^3) orders.
    """

    def __init__(self):
        d = np.sqrt(2.0) * LATTICE_CONSTANT / 2.0  # 2.83 A
        dbt = np.sqrt(3.0) * LATTICE_CONSTANT / 2.0  # 3.46 A
        a = LATTICE_CONSTANT
        # --- Morse pair potential: D (eV), alpha (1/A), r0 (A)
        self.morse_D = _pair_table(
            {
                ("Ti", "O"): 1.0,
                ("Ba", "O"): 0.25,
                ("O", "O"): 0.08,
                ("Ba", "Ti"): 0.10,
                ("Ba", "Ba"): 0.05,
                ("Ti", "Ti"): 0.05,
            }
        )
        self.morse_a = _pair_table(
            {
                ("Ti", "O"): 1.8,
                ("Ba", "O"): 1.6,
                ("O", "O"): 1.5,
                ("Ba", "Ti"): 1.4,
                ("Ba", "Ba"): 1.2,
                ("Ti", "Ti"): 1.2,
            }
        )
        self.morse_r0 = _pair_table(
            {
                ("Ti", "O"): a / 2,
                ("Ba", "O"): d,
                ("O", "O"): d,
                ("Ba", "Ti"): dbt,
                ("Ba", "Ba"): a,
                ("Ti", "Ti"): a,
            }
        )
        self.morse_r0[self.morse_r0 == 0] = a  # unused entries
        # --- bond charges: q_ij = g_ab(r) (t_ab + lam_ab (CN_i - CN0_a)), g = exp(-kappa (r - r0)) fb(r),
        # fb a shorter switch (CHARGE_CUTOFF_ON .. CHARGE_CUTOFF) that keeps only the first cation-anion shell
        self.charge_t = _pair_table(
            {("Ti", "O"): -0.22, ("Ba", "O"): -0.07}, antisymmetric=True
        )
        self.charge_lam = _pair_table({("Ti", "O"): 0.02, ("Ba", "O"): 0.01})
        self.charge_kappa = _pair_table({("Ti", "O"): -0.35, ("Ba", "O"): 0.0})
        self.charge_r0 = self.morse_r0.clone()
        # --- coordination number weight w(r) = fc(r) / (1 + exp((r - CN_R) / CN_W))
        self.cn_r = 3.1
        self.cn_w = 0.15
        # --- bond polarizability (e*A^2/V) a_par/perp(r) = A exp(-(r - r0)/l) fc(r)
        self.pol_par = _pair_table(
            {("Ti", "O"): 0.08, ("Ba", "O"): 0.025, ("O", "O"): 0.015}
        )
        self.pol_perp = _pair_table(
            {("Ti", "O"): 0.025, ("Ba", "O"): 0.015, ("O", "O"): 0.01}
        )
        self.pol_l = 0.6
        # --- hyperpolarizabilities: directed b_ab = -b_ba (e*A^3/V^2), symmetric c_ab (e*A^4/V^3)
        self.hyper_b = _pair_table(
            {("Ti", "O"): 1.5, ("Ba", "O"): 0.5}, antisymmetric=True
        )
        self.hyper_l = 0.5
        self.hyper_c = _pair_table(
            {("Ti", "O"): 0.5, ("Ba", "O"): 0.2, ("O", "O"): 0.15}
        )
        # reference coordination numbers CN0 of each species in the ideal crystal
        self.cn0 = torch.zeros(3, dtype=_DTYPE)
        ideal = ideal_structure((1, 1, 1))
        with torch.no_grad():
            cn = self._coordination(
                *self._graph(
                    torch.tensor(ideal.positions, dtype=_DTYPE),
                    torch.tensor(ideal.cell.array, dtype=_DTYPE),
                    ideal.pbc,
                    _species_indices(ideal.numbers),
                )
            )
        idx = _species_indices(ideal.numbers)
        for k in range(3):
            self.cn0[k] = cn[idx == k].mean()

    # ------------------------------------------------------------------ graph
    @staticmethod
    def _graph(positions: torch.Tensor, cell: torch.Tensor, pbc, types: torch.Tensor):
        """Ordered neighbour pairs within CUTOFF, with edge vectors differentiable w.r.t. positions and cell."""
        pbc_arr = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
        cell_np = cell.detach().cpu().numpy()
        if not pbc_arr.any():
            cell_np = np.zeros((3, 3))
        i, j, S = _neighbor_pairs(
            positions.detach().cpu().numpy(), cell_np, pbc_arr, CUTOFF
        )
        i = torch.as_tensor(i, dtype=torch.long)
        j = torch.as_tensor(j, dtype=torch.long)
        vec = positions[j] - positions[i]
        if pbc_arr.any():
            vec = vec + torch.as_tensor(S, dtype=_DTYPE) @ cell
        return i, j, vec, types

    def _coordination(self, i, j, vec, types):
        r = vec.norm(dim=-1)
        w = _switch(r) * torch.sigmoid(-(r - self.cn_r) / self.cn_w)
        return torch.zeros(len(types), dtype=_DTYPE).index_add(0, i, w)

    def _bond_charges(self, i, j, vec, types):
        """q_ij (e) of every ordered pair: the bond dipole is q_ij * (r_j - r_i)."""
        ti, tj = types[i], types[j]
        r = vec.norm(dim=-1)
        cn = self._coordination(i, j, vec, types)
        fb = _switch(r, CHARGE_CUTOFF_ON, CHARGE_CUTOFF)
        g = torch.exp(-self.charge_kappa[ti, tj] * (r - self.charge_r0[ti, tj])) * fb
        return g * (
            self.charge_t[ti, tj] + self.charge_lam[ti, tj] * (cn[i] - self.cn0[ti])
        )

    def atomic_charges(self, atoms: ase.Atoms) -> np.ndarray:
        """Static atomic charges Q_i = sum_j (q_ji - q_ij), (n_atoms,), e; they sum to zero.

        For a cluster (no periodicity) the zero-field polarization is exactly the ordinary
        dipole sum_i Q_i r_i of these charges.  In a periodic cell this identity fails (bonds
        cross the cell boundary) -- the reason P is defined only modulo e*R there.
        """
        types = _species_indices(atoms.numbers)
        with torch.no_grad():
            i, j, vec, types = self._graph(
                torch.tensor(atoms.positions, dtype=_DTYPE),
                torch.tensor(atoms.cell.array, dtype=_DTYPE),
                atoms.pbc,
                types,
            )
            q = self._bond_charges(i, j, vec, types)
            zero = torch.zeros(len(atoms), dtype=_DTYPE)
            return (zero.index_add(0, j, q) - zero.index_add(0, i, q)).numpy()

    # ------------------------------------------------------------------ energy
    def energy(
        self,
        positions: torch.Tensor,
        cell: Optional[torch.Tensor],
        pbc,
        species: Union[Sequence[str], Sequence[int]],
        field: Optional[torch.Tensor] = None,
        atomic_field: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Electric enthalpy E(R, E) in eV as a differentiable torch scalar.

        Args:
            positions: (n_atoms, 3) Cartesian positions, A (float64 tensor; may require grad).
            cell: (3, 3) lattice vectors as rows, A (may require grad); ignored when ``pbc`` is all False.
            pbc: bool or 3 bools.
            species: n_atoms chemical symbols ("Ba", "Ti", "O") or atomic numbers.
            field: (3,) homogeneous electric field, V/A (may require grad); None means zero.
            atomic_field: (n_atoms, 3) per-atom field, V/A (may require grad), added to ``field``
                at each atom; the pair i -> j's share of every term sees the field at atom i.
                None: the field is homogeneous.
        """
        positions = torch.as_tensor(positions, dtype=_DTYPE)
        if cell is None:
            cell = torch.zeros(3, 3, dtype=_DTYPE)
        cell = torch.as_tensor(cell, dtype=_DTYPE)
        if field is None:
            field = torch.zeros(3, dtype=_DTYPE)
        field = torch.as_tensor(field, dtype=_DTYPE)
        types = _species_indices(species)
        i, j, vec, types = self._graph(positions, cell, pbc, types)
        ti, tj = types[i], types[j]
        r = vec.norm(dim=-1)
        rhat = vec / r.unsqueeze(-1)
        fc = _switch(r)

        # E0: Morse pairs, 1/2 for the ordered double counting
        D, a, r0 = self.morse_D[ti, tj], self.morse_a[ti, tj], self.morse_r0[ti, tj]
        x = torch.exp(-a * (r - r0))
        e0 = 0.5 * (D * ((1.0 - x) ** 2 - 1.0) * fc).sum()

        # P0: bond dipoles q_ij r_ij with a coordination-dependent bond charge
        q = self._bond_charges(i, j, vec, types)
        p0 = (q.unsqueeze(-1) * vec).sum(0)

        # field terms; with a per-atom field, the field at the first atom of each ordered pair
        if atomic_field is None:
            re = rhat @ field  # rhat . E per bond
            ee = field @ field
            e1 = p0 @ field
        else:
            atomic_field = torch.as_tensor(atomic_field, dtype=_DTYPE)
            if atomic_field.shape != (len(types), 3):
                raise ValueError(
                    f"atomic_field must have shape (n_atoms, 3) = ({len(types)}, 3) in V/A, "
                    f"got {tuple(atomic_field.shape)}"
                )
            bond_field = field + atomic_field[i]
            re = (rhat * bond_field).sum(-1)
            ee = (bond_field * bond_field).sum(-1)
            e1 = ((q.unsqueeze(-1) * vec) * bond_field).sum()
        h_pol = torch.exp(-(r - r0) / self.pol_l) * fc
        # E.alpha_ij.E = a_par (rhat.E)^2 + a_perp (|E|^2 - (rhat.E)^2); 1/2 for double counting
        eae = (
            0.5
            * (
                h_pol
                * (self.pol_par[ti, tj] * re**2 + self.pol_perp[ti, tj] * (ee - re**2))
            ).sum()
        )
        h_hyp = torch.exp(-(r - r0) / self.hyper_l) * fc
        # directed b (antisymmetric) times odd (rhat.E)^3 is symmetric under i <-> j: 1/2 for double counting
        e3 = 0.5 * (self.hyper_b[ti, tj] * h_hyp * re**3).sum()
        e4 = 0.5 * (self.hyper_c[ti, tj] * h_pol * re**2 * ee).sum()

        return e0 - e1 - 0.5 * eae - e3 / 6.0 - e4 / 24.0

    # ------------------------------------------------------------------ properties
    def properties(
        self,
        atoms: ase.Atoms,
        field=None,
        response: bool = True,
        atomic_field=None,
        dipoles: bool = False,
    ) -> Dict[str, np.ndarray]:
        """All properties of ``atoms`` in the field ``field`` (3,), V/A, by autograd.

        ``response=False`` skips the Born charges and the polarizability (three second-order
        backward passes), e.g. for MD, where only E, F, stress and P are needed.
        ``atomic_field`` ((n_atoms, 3), V/A): a per-atom field added to ``field`` at each atom
        (module docstring); forces, stress and Z* are then taken at fixed per-atom field values,
        P = -dE/dE and alpha = dP/dE with respect to the homogeneous part. With an
        ``atomic_field`` or ``dipoles=True`` the result also holds ``atomic_dipoles``.

        Returns a dict of numpy arrays (float64):
            ``total_energy`` (float, eV), ``forces`` (n, 3, eV/A),
            ``stress`` (3, 3, eV/A^3; only when all three directions are periodic),
            ``polarization`` (3, e*A; the exact local value, no branch shift),
            ``born_effective_charges`` (n, 3, 3, e; [i, a, b] = dP_a/dR_ib),
            ``polarizability`` (3, 3, e*A^2/V; [a, b] = dP_a/dE_b),
            ``atomic_dipoles`` (n, 3, e*A; p_i = -dE/dE_i, sum_i p_i = P).
        """
        pbc = np.broadcast_to(np.asarray(atoms.pbc, dtype=bool), (3,))
        periodic = bool(pbc.all())
        pos = torch.tensor(atoms.positions, dtype=_DTYPE, requires_grad=True)
        cell = torch.tensor(atoms.cell.array, dtype=_DTYPE)
        fld = (
            torch.zeros(3, dtype=_DTYPE)
            if field is None
            else torch.tensor(np.asarray(field, float), dtype=_DTYPE)
        )
        fld.requires_grad_(True)
        eps = torch.zeros(3, 3, dtype=_DTYPE, requires_grad=True)
        wrt = [pos, eps, fld]
        local = None  # the per-atom field, differentiated for p_i
        if atomic_field is not None or dipoles:
            local = torch.zeros(len(atoms), 3, dtype=_DTYPE)
            if atomic_field is not None:
                local = torch.tensor(np.asarray(atomic_field, float), dtype=_DTYPE)
            wrt.append(local.requires_grad_(True))
        defo = torch.eye(3, dtype=_DTYPE) + 0.5 * (eps + eps.T)
        energy = self.energy(pos @ defo, cell @ defo, pbc, atoms.numbers, fld, local)
        grads = torch.autograd.grad(energy, wrt, create_graph=response)
        dpos, deps, dfld = grads[:3]
        polarization = -dfld
        out = {
            "total_energy": float(energy.detach()),
            "forces": (-dpos).detach().numpy(),
            "polarization": polarization.detach().numpy(),
        }
        if local is not None:
            out["atomic_dipoles"] = (-grads[3]).detach().numpy()
        if response:
            zstar = torch.zeros(len(atoms), 3, 3, dtype=_DTYPE)
            alpha = torch.zeros(3, 3, dtype=_DTYPE)
            for k in range(3):
                gp, gf = torch.autograd.grad(
                    polarization[k], [pos, fld], retain_graph=True
                )
                zstar[:, k, :] = gp
                alpha[k, :] = gf
            out["born_effective_charges"] = zstar.numpy()
            out["polarizability"] = alpha.numpy()
        if periodic:
            out["stress"] = (deps / abs(atoms.cell.volume)).detach().numpy()
        return out
