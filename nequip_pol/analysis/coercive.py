"""The intrinsic coercive field of any field-aware ASE calculator (zero temperature, single domain).

:func:`intrinsic_coercive_field` follows the polar minimum of a cell under a homogeneous field
antiparallel to its polarization: the positions are relaxed (FIRE, fixed cell) at zero field,
then at -E along the axis for E = ``step``, 2 ``step``, ... (each relaxation starting from the
last polar minimum: continuation), until the relaxed state has switched; then E is bisected
between the last field where the state stays polar and the first where it switches, to ``tol``.
The result is the field at which the polar minimum disappears (a saddle-node bifurcation): the
upper bound of any loop's coercive field at 0 K, homogeneous switching, no domains or defects.

"Switched" is judged by an order parameter, positive while the state is polar. The default is
the projection of the polar distortion on that of the zero-field polar state, both measured
from a centrosymmetric ``reference`` structure (same atoms, same order; uniform translations
removed): 1 at zero field, near -1 after switching. P is *not* used: under a field it also
holds the dielectric response. Any other ``order_parameter(atoms) -> float`` may be given (e.g.
the Ti off-centring of a perovskite).

Works with :class:`~nequip_pol.integrations.ase.NequIPPolCalculator` (a trained model) and with
:class:`~nequip_pol.reference.ReferenceMaterialCalculator` (the exact materials; their tighter,
Hessian-checked variant is
:func:`nequip_pol.reference.ferroelectric.exact_intrinsic_coercive_field`). The bracket is set
by the force tolerance ``fmax`` of the relaxations as well as by ``tol``: a float32 model needs
a larger ``fmax`` (1e-3 eV/A by default).

Units: field V/A, forces eV/A, positions A, P e*A.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from .protocol import axis_vector

__all__ = ["distortion_order_parameter", "intrinsic_coercive_field"]


def _distortion(atoms, reference) -> np.ndarray:
    """(N, 3) displacements from ``reference`` (minimum image), uniform translation removed, A."""
    delta = atoms.positions - reference.positions
    if np.any(atoms.pbc):
        frac = np.linalg.solve(atoms.cell.array.T, delta.T).T
        frac -= np.round(frac)
        delta = frac @ atoms.cell.array
    return delta - delta.mean(axis=0)


def distortion_order_parameter(polar, reference) -> Callable[[object], float]:
    """s(atoms) = <u, u0> / <u0, u0>: the projection of the distortion u of ``atoms`` on that of ``polar``.

    Both distortions are displacements (A) from the centrosymmetric ``reference`` with the uniform
    translation removed; s = 1 for ``polar``, -1 for its inversion image, 0 for the reference.
    ``ValueError`` when the atoms differ or ``polar`` is (nearly) the reference itself.
    """
    if len(polar) != len(reference) or list(polar.numbers) != list(reference.numbers):
        raise ValueError(
            f"the centrosymmetric reference ({reference.get_chemical_formula()}, {len(reference)} atoms) "
            f"must hold the atoms of the structure ({polar.get_chemical_formula()}, {len(polar)} atoms) "
            "in the same order"
        )
    u0 = _distortion(polar, reference)
    norm = float(np.sum(u0 * u0))
    if np.sqrt(norm) < 1e-3:
        raise ValueError(
            "the relaxed structure is the centrosymmetric reference (distortion below 1e-3 A): "
            "it has no polar state to switch"
        )

    def order_parameter(atoms) -> float:
        return float(np.sum(_distortion(atoms, reference) * u0) / norm)

    return order_parameter


def intrinsic_coercive_field(
    atoms,
    calc,
    axis="z",
    reference=None,
    order_parameter: Optional[Callable[[object], float]] = None,
    step: float = 0.05,
    max_field: float = 2.0,
    fmax: float = 1e-3,
    tol: float = 1e-3,
    max_relax_steps: int = 3000,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, float]:
    """Zero-temperature, single-domain coercive field (V/A) of ``calc`` along ``axis``.

    Args:
        atoms: a polar structure with P roughly along +``axis`` (not modified); relaxed first at
            zero field (fixed cell)
        calc: a field-aware ASE calculator (``set_field``; forces and P); its field is zero after
        axis: ``"x"``, ``"-z"``, ``"1,1,0"`` or a 3-vector: P points along it, the field against it
        reference: the centrosymmetric structure (same atoms, same order) for the default order
            parameter and for the spontaneous dipole; required unless ``order_parameter`` is given
        order_parameter: ``f(atoms) -> float``, > 0 while the state is polar (default:
            :func:`distortion_order_parameter` of the zero-field polar state and ``reference``)
        step: field increment of the continuation, V/A
        max_field: give up above this field (``RuntimeError``), V/A
        fmax: force tolerance of each relaxation, eV/A
        tol: width of the final bracket, V/A
        max_relax_steps: FIRE steps per relaxation
        progress: called with one-line messages

    Returns:
        dict: ``coercive_field`` (V/A, the bracket midpoint), ``bracket_low``, ``bracket_high``
        (V/A), ``spontaneous_dipole`` (e*A, (P - P(reference)) . axis at zero field; NaN without a
        reference), ``n_atoms``, ``n_relaxations``.
    Raises:
        ValueError: bad axis, no reference, no polar state, P along -axis.
    """
    from ase.optimize import FIRE

    e_axis = axis_vector(axis)
    if order_parameter is None and reference is None:
        raise ValueError(
            "give the centrosymmetric reference structure (or an order parameter) to tell a "
            "polar state from a switched one"
        )
    if not (step > 0 and max_field > step and tol > 0 and fmax > 0):
        raise ValueError(
            f"need step > 0, max_field > step, tol > 0 and fmax > 0 (got step {step}, "
            f"max_field {max_field}, tol {tol}, fmax {fmax})"
        )
    if not hasattr(calc, "set_field"):
        raise ValueError(
            f"the calculator {type(calc).__name__} has no field input (set_field); use a "
            "field-aware calculator (NequIPPolCalculator or ReferenceMaterialCalculator)"
        )
    work = atoms.copy()
    work.calc = calc
    n_relaxations = 0

    def relax_at(e_value: float, start: np.ndarray) -> None:
        nonlocal n_relaxations
        work.positions[:] = start
        calc.set_field(-e_value * e_axis)
        FIRE(work, logfile=None).run(fmax=fmax, steps=max_relax_steps)
        n_relaxations += 1

    try:
        relax_at(0.0, work.positions.copy())
        polar = work.copy()
        dipole = float("nan")
        if reference is not None:
            p_polar = np.asarray(calc.get_property("polarization", work), dtype=float)
            ref = reference.copy()
            ref.calc = calc
            dipole = float(
                (
                    p_polar
                    - np.asarray(calc.get_property("polarization", ref), dtype=float)
                )
                @ e_axis
            )
            if dipole < 0:
                raise ValueError(
                    f"the relaxed structure's polarization points against the axis {axis!r} "
                    f"((P - P(reference)) . axis = {dipole:.4g} e*A); give the opposite axis"
                )
        if order_parameter is None:
            order_parameter = distortion_order_parameter(polar, reference)
        if not order_parameter(work) > 0:
            raise ValueError(
                "the order parameter of the zero-field relaxed structure is not positive: "
                "no polar state along this axis"
            )
        keep = work.positions.copy()
        low, high, e_value = 0.0, None, 0.0
        while high is None:
            e_value += step
            if e_value > max_field:
                raise RuntimeError(
                    f"the polar state survives fields up to {max_field} V/A; no coercive field found"
                )
            relax_at(e_value, keep)
            if order_parameter(work) > 0:
                low, keep = e_value, work.positions.copy()
            else:
                high = e_value
            if progress is not None:
                progress(
                    f"E = {e_value:.4f} V/A: {'polar' if high is None else 'switched'}"
                )
        while high - low > tol:
            mid = 0.5 * (low + high)
            relax_at(mid, keep)
            if order_parameter(work) > 0:
                low, keep = mid, work.positions.copy()
            else:
                high = mid
        if progress is not None:
            progress(f"coercive field between {low:.5f} and {high:.5f} V/A")
    finally:
        calc.set_field(np.zeros(3))
    return {
        "coercive_field": 0.5 * (low + high),
        "bracket_low": low,
        "bracket_high": high,
        "spontaneous_dipole": dipole,
        "n_atoms": float(len(atoms)),
        "n_relaxations": float(n_relaxations),
    }
