"""Gamma-point phonons of a field-aware potential with phonopy; mode charges, IR oscillator strengths, LO-TO.

The harmonic route to the dielectric response:

1. relax the ions at zero field (:func:`nequip_pol.analysis.dielectric.relax_positions`);
2. force constants by finite displacements with phonopy (Python API, ``PhonopyAtoms``; the forces
   come from the ASE calculator at zero field; plus and minus displacements, so the force
   constants are central differences). The supercell is the cell itself: a displacement of one
   atom moves all its periodic images, which gives the Gamma-point dynamical matrix exactly;
3. Born charges Z* (e) and the polarizability alpha (e*A^2/V) from the calculator;
4. normal modes: eigenvalues omega_m^2 (eV/A^2/amu) and unit eigenvectors e_m (mass weighted) of
   the dynamical matrix D_ib,jc = Phi_ib,jc / sqrt(M_i M_j);
5. mode effective charges Z_m,a = sum_ib Z*_i,ab e_m,ib / sqrt(M_i) (e/sqrt(amu)), oscillator
   strengths S_m,ab = Z_m,a Z_m,b (e^2/amu), and their contribution
   Delta eps_m = S_m / (eps_vac V omega_m^2) to the static dielectric tensor
   (:func:`nequip_pol.analysis.dielectric.eps0_harmonic`);
6. LO-TO splitting: phonopy's non-analytic correction (Gonze-Lee) fed with the model's Z* and
   eps_inf as arrays (``nac_params``, no BORN file), evaluated at q -> 0 along given directions.

Units: phonopy's frequencies for eV/A^2 force constants and amu masses are THz (factor
``VaspToTHz`` = sqrt(eV/(A^2 amu)) / (2 pi) in THz = 15.633302); 1 THz = 33.35641 cm^-1
(:data:`nequip_pol.units.THZ_TO_CM1`). The non-analytic term uses ``factor`` = e^2/(4 pi eps_vac)
= 14.3996 eV*A (:data:`nequip_pol.units.COULOMB_EV_A`), consistent with
:data:`nequip_pol.units.EPS_VAC`.

Independent check: :func:`finite_difference_hessian` (:mod:`~nequip_pol.analysis.hessian`) computes the Hessian by central differences
of the calculator's forces without phonopy; the tests compare both Gamma spectra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..units import COULOMB_EV_A, EPS_VAC, THZ_TO_CM1
from .dielectric import eps_inf_from_polarizability
from .hessian import finite_difference_hessian  # noqa: F401  (part of this module's API)

__all__ = [
    "THZ_TO_CM1",
    "THZ_PER_SQRT_EV_A2_AMU",
    "COULOMB_EV_A",
    "GammaPhonons",
    "finite_difference_hessian",
    "gamma_modes",
    "phonopy_gamma",
    "lo_to_splitting",
    "LOTOResult",
]

#: sqrt(eV / (A^2 amu)) / (2 pi), in THz (phonopy's VaspToTHz)
THZ_PER_SQRT_EV_A2_AMU = 15.633302300230191


def _masses(atoms) -> np.ndarray:
    return np.asarray(atoms.get_masses(), dtype=float)


@dataclass
class GammaPhonons:
    """Normal modes at Gamma and their coupling to a homogeneous field.

    Attributes:
        eigenvalues: (3N,) omega_m^2 in eV/(A^2 amu), ascending (negative: unstable mode)
        eigenvectors: (3N, 3N) column m = unit mass-weighted eigenvector e_m, row index 3 i + b
        masses: (N,) amu
        volume: cell volume, A^3
        acoustic: (3N,) bool, the three modes spanning the uniform translations
        born_charges: (N, 3, 3) Z* in e (``[i, a, b] = dP_a/dR_ib``) or ``None``
        polarizability: (3, 3) alpha in e*A^2/V or ``None``
        force_constants: (3N, 3N) Hessian in eV/A^2 (symmetrised)
        phonopy: the ``phonopy.Phonopy`` object (``None`` when built from a Hessian)
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    masses: np.ndarray
    volume: float
    acoustic: np.ndarray
    born_charges: Optional[np.ndarray] = None
    polarizability: Optional[np.ndarray] = None
    force_constants: Optional[np.ndarray] = None
    phonopy: object = None

    @property
    def frequencies_thz(self) -> np.ndarray:
        """(3N,) frequencies nu_m in THz; negative numbers are imaginary frequencies."""
        return (
            np.sign(self.eigenvalues)
            * np.sqrt(np.abs(self.eigenvalues))
            * THZ_PER_SQRT_EV_A2_AMU
        )

    @property
    def frequencies_cm1(self) -> np.ndarray:
        """(3N,) frequencies in cm^-1 (negative: imaginary)."""
        return self.frequencies_thz * THZ_TO_CM1

    @property
    def mode_charges(self) -> np.ndarray:
        """(3N, 3) mode effective charges Z_m,a = sum_ib Z*_i,ab e_m,ib / sqrt(M_i), e/sqrt(amu)."""
        if self.born_charges is None:
            raise ValueError(
                "mode charges need the Born charges; the phonons were computed without them"
            )
        n = len(self.masses)
        e = (
            self.eigenvectors.T.reshape(3 * n, n, 3)
            / np.sqrt(self.masses)[None, :, None]
        )
        return np.einsum("iab,mib->ma", self.born_charges, e)

    @property
    def oscillator_strengths(self) -> np.ndarray:
        """(3N, 3, 3) IR oscillator strengths S_m,ab = Z_m,a Z_m,b, e^2/amu."""
        z = self.mode_charges
        return z[:, :, None] * z[:, None, :]

    def check_stable(self, tol_thz: float = 0.05) -> None:
        """``ValueError`` naming the mode if an optical mode has an imaginary frequency (not a minimum)."""
        nu = self.frequencies_thz
        bad = [m for m in range(len(nu)) if not self.acoustic[m] and nu[m] < -tol_thz]
        if bad:
            raise ValueError(
                f"the structure is not at a minimum: {len(bad)} optical mode(s) with imaginary frequency "
                f"(lowest {nu[bad[0]]:.3f} THz = {nu[bad[0]] * THZ_TO_CM1:.1f} cm^-1); relax it first "
                "(or it is a saddle point: displace along that mode and relax)"
            )

    def mode_table(self, degenerate_tol_thz: float = 1e-3) -> List[Dict[str, object]]:
        """Optical modes grouped into degenerate sets, with summed oscillator strengths.

        Each row: ``modes`` (indices), ``frequency_thz``, ``frequency_cm1`` (mean over the set),
        ``degeneracy``, and with Born charges ``strength`` (3, 3, e^2/amu, summed: invariant under
        rotations within a degenerate set), ``intensity`` (trace of ``strength``, e^2/amu),
        ``delta_eps`` (3, 3, dimensionless contribution to eps_0).
        """
        nu = self.frequencies_thz
        optical = [m for m in range(len(nu)) if not self.acoustic[m]]
        groups: List[List[int]] = []
        for m in optical:
            if groups and abs(nu[m] - nu[groups[-1][-1]]) <= degenerate_tol_thz * max(
                1.0, abs(nu[m])
            ):
                groups[-1].append(m)
            else:
                groups.append([m])
        strengths = self.oscillator_strengths if self.born_charges is not None else None
        rows = []
        for g in groups:
            row: Dict[str, object] = {
                "modes": g,
                "frequency_thz": float(np.mean(nu[g])),
                "frequency_cm1": float(np.mean(nu[g]) * THZ_TO_CM1),
                "degeneracy": len(g),
            }
            if strengths is not None:
                s = strengths[g].sum(axis=0)
                row["strength"] = s
                row["intensity"] = float(np.trace(s))
                lam = self.eigenvalues[g]
                row["delta_eps"] = (strengths[g] / lam[:, None, None]).sum(axis=0) / (
                    EPS_VAC * self.volume
                )
            rows.append(row)
        return rows


def _translation_basis(masses: np.ndarray) -> np.ndarray:
    """(3N, 3) orthonormal mass-weighted uniform translations (the acoustic modes at Gamma)."""
    n = len(masses)
    t = np.zeros((3 * n, 3))
    for b in range(3):
        t[b::3, b] = np.sqrt(masses)
    return t / np.linalg.norm(t, axis=0)


def gamma_modes(hessian: np.ndarray, masses: np.ndarray):
    """Eigenvalues (eV/A^2/amu, ascending), eigenvectors (columns) and acoustic flags of a Gamma Hessian.

    Args:
        hessian: (3N, 3N) force constants, eV/A^2 (symmetrised here)
        masses: (N,) amu
    """
    hessian = 0.5 * (hessian + hessian.T)
    w = 1.0 / np.sqrt(np.repeat(masses, 3))
    lam, vec = np.linalg.eigh(hessian * np.outer(w, w))
    overlap = np.sum((_translation_basis(masses).T @ vec) ** 2, axis=0)
    acoustic = np.zeros(len(lam), dtype=bool)
    acoustic[np.argsort(-overlap)[:3]] = True
    return lam, vec, acoustic


def _zero_field(calc):
    """Set the calculator's field to zero; return a function restoring the previous one."""
    if not hasattr(calc, "set_field"):
        return lambda: None
    previous = calc.field
    calc.set_field(np.zeros(3))
    return lambda: calc.set_field(previous)


def phonopy_gamma(
    atoms,
    calc=None,
    displacement: float = 0.01,
    born_charges: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> GammaPhonons:
    """Gamma-point phonons of ``atoms`` with phonopy, forces from the ASE calculator at zero field.

    Args:
        atoms: a relaxed periodic structure (``ase.Atoms``); it is not modified
        calc: the ASE calculator (default ``atoms.calc``); nequip-pol properties for ``born_charges``
        displacement: phonopy's finite displacement, A (plus and minus displacements)
        born_charges: also compute Z* and alpha at the structure (needed for mode charges,
            oscillator strengths, eps_0 and LO-TO); a calculator without them raises ``ValueError``
        progress: optional callback receiving progress messages

    Returns:
        :class:`GammaPhonons` (with the ``Phonopy`` object, NAC parameters set when Z* is known)
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    calc = calc if calc is not None else atoms.calc
    if calc is None:
        raise ValueError("no calculator: pass calc= or attach one to the atoms")
    if not np.all(atoms.pbc):
        raise ValueError("phonons need a structure periodic in x, y and z")
    masses = _masses(atoms)
    unitcell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell.array),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=masses,
    )
    phonon = Phonopy(
        unitcell,
        supercell_matrix=np.eye(3, dtype=int),
        primitive_matrix=None,
        factor=THZ_PER_SQRT_EV_A2_AMU,
    )
    phonon.generate_displacements(distance=displacement, is_plusminus=True)
    supercells = phonon.supercells_with_displacements
    restore = _zero_field(calc)
    try:
        work = atoms.copy()
        work.calc = calc
        forces = []
        for k, sc in enumerate(supercells):
            work.set_cell(sc.cell, scale_atoms=False)
            work.set_scaled_positions(sc.scaled_positions)
            f = np.asarray(work.get_forces(), dtype=float)
            forces.append(
                f - f.mean(axis=0)
            )  # remove the net force (drift) as phonopy recommends
            if progress is not None and ((k + 1) % max(1, len(supercells) // 5) == 0):
                progress(f"phonopy displacements: {k + 1}/{len(supercells)}")
        phonon.forces = np.array(forces)
        phonon.produce_force_constants()
        zstar = alpha = None
        if born_charges:
            work = atoms.copy()
            work.calc = calc
            try:
                zstar = np.asarray(
                    calc.get_property("born_effective_charges", work), dtype=float
                )
                alpha = np.asarray(
                    calc.get_property("polarizability", work), dtype=float
                )
            except (
                Exception
            ) as err:  # PropertyNotImplementedError, a model without the outputs, ...
                raise ValueError(
                    f"the calculator gives no Born charges / polarizability ({type(err).__name__}: {err}); "
                    "the harmonic route needs a model with born_effective_charges and polarizability outputs"
                ) from None
    finally:
        restore()

    n = len(atoms)
    fc = phonon.force_constants.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    lam, vec, acoustic = gamma_modes(fc, masses)
    result = GammaPhonons(
        eigenvalues=lam,
        eigenvectors=vec,
        masses=masses,
        volume=float(atoms.get_volume()),
        acoustic=acoustic,
        born_charges=zstar,
        polarizability=alpha,
        force_constants=0.5 * (fc + fc.T),
        phonopy=phonon,
    )
    if zstar is not None:
        phonon.nac_params = {
            "born": zstar,  # [i, a, b]: a = field direction, contracted with q by phonopy
            "dielectric": eps_inf_from_polarizability(alpha, result.volume),
            "factor": COULOMB_EV_A,
        }
    return result


@dataclass
class LOTOResult:
    """Gamma frequencies without and with the non-analytic term, for q -> 0 along ``directions``.

    Attributes:
        directions: (k, 3) Cartesian unit vectors q_hat
        to_thz: (3N,) transverse (analytic) frequencies, THz, ascending
        lo_thz: (k, 3N) frequencies with the non-analytic term for each direction, THz, ascending
        pairs: for each direction a list of (TO mode, LO mode) index pairs matched by the largest
            eigenvector overlap (optical modes only)
    """

    directions: np.ndarray
    to_thz: np.ndarray
    lo_thz: np.ndarray
    pairs: List[List[tuple]]
    to_vectors: np.ndarray
    lo_vectors: np.ndarray

    def splitting_table(
        self, phonons: GammaPhonons, top: Optional[int] = None
    ) -> List[Dict[str, object]]:
        """Rows (direction, TO mode, TO/LO frequency THz and cm^-1, splitting cm^-1, intensity), strongest first."""
        intensity = None
        if phonons.born_charges is not None:
            intensity = np.einsum("maa->m", phonons.oscillator_strengths)
        rows = []
        for k, q in enumerate(self.directions):
            for m_to, m_lo in self.pairs[k]:
                nu_to, nu_lo = self.to_thz[m_to], self.lo_thz[k, m_lo]
                rows.append(
                    {
                        "direction": q,
                        "to_mode": m_to,
                        "to_thz": float(nu_to),
                        "lo_thz": float(nu_lo),
                        "to_cm1": float(nu_to * THZ_TO_CM1),
                        "lo_cm1": float(nu_lo * THZ_TO_CM1),
                        "splitting_cm1": float((nu_lo - nu_to) * THZ_TO_CM1),
                        "intensity": None
                        if intensity is None
                        else float(intensity[m_to]),
                    }
                )
        rows.sort(key=lambda r: -(r["splitting_cm1"]))
        return rows if top is None else rows[:top]


def lo_to_splitting(
    phonons: GammaPhonons,
    directions: Sequence[Sequence[float]] = ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
) -> LOTOResult:
    """LO-TO splitting at Gamma from phonopy's non-analytic correction (model Z* and eps_inf).

    Args:
        phonons: from :func:`phonopy_gamma` with Born charges
        directions: Cartesian directions of q -> 0 (normalised here)
    """
    from scipy.optimize import linear_sum_assignment

    phonon = phonons.phonopy
    if phonon is None or phonons.born_charges is None or phonon.nac_params is None:
        raise ValueError(
            "LO-TO splitting needs phonopy phonons computed with Born charges (phonopy_gamma(..., born_charges=True))"
        )
    directions = np.array(directions, dtype=float)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    cell = np.asarray(phonon.primitive.cell)
    n3 = len(phonons.eigenvalues)
    to = phonons.frequencies_thz
    lo = np.zeros((len(directions), n3))
    lo_vectors = np.zeros((len(directions), n3, n3), dtype=complex)
    pairs = []
    optical = np.nonzero(~phonons.acoustic)[0]
    for k, q in enumerate(directions):
        q_frac = (
            cell @ q
        )  # q_cart = q_frac @ reciprocal rows (inv(cell).T), so q_frac = cell @ q_cart
        phonon.run_qpoints(
            [[0.0, 0.0, 0.0]], with_eigenvectors=True, nac_q_direction=q_frac
        )
        d = phonon.get_qpoints_dict()
        lo[k] = d["frequencies"][0]
        lo_vectors[k] = d["eigenvectors"][0]
        # TO <-> LO by the assignment of largest total eigenvector overlap (optical modes only;
        # the acoustic modes are unaffected by the non-analytic term)
        overlap = np.abs(phonons.eigenvectors.T @ lo_vectors[k]) ** 2  # [TO m, LO n]
        translation = _translation_basis(phonons.masses)
        lo_acoustic = np.argsort(
            -np.sum(np.abs(translation.T @ lo_vectors[k]) ** 2, axis=0)
        )[:3]
        lo_optical = np.array(
            [n for n in range(n3) if n not in set(lo_acoustic.tolist())]
        )
        rows_, cols_ = linear_sum_assignment(-overlap[np.ix_(optical, lo_optical)])
        row = [(int(optical[r]), int(lo_optical[c])) for r, c in zip(rows_, cols_)]
        pairs.append(row)
    return LOTOResult(
        directions=directions,
        to_thz=to,
        lo_thz=lo,
        pairs=pairs,
        to_vectors=phonons.eigenvectors,
        lo_vectors=lo_vectors,
    )
