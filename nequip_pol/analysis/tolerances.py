"""How tightly a relaxation can converge the forces of a calculator: the default ``fmax``.

A float64 model or an exact calculator gives forces to ~1e-12 eV/A, so a relaxation converges
to max |F| < :data:`FMAX_FLOAT64` (1e-8 eV/A). A float32 model rounds every pair term: its forces
carry a noise of ~1e-7 to 1e-6 eV/A (more for larger cells), and a Newton relaxation stalls at that
level; asking for 1e-8 eV/A then fails. For float32 models (and calculators of unknown precision)
the noise is measured instead: the forces are evaluated at the structure and after rigid
translations, which change nothing physically (the forces are invariant), so the change of the
forces is rounding alone. The tolerance is :data:`NOISE_FACTOR` times that noise, at least
:data:`FMAX_FLOAT64`.

A residual force f moves an atom by about f / k from the true minimum (k ~ 1-30 eV/A^2): ~1e-6 A
for f = 1e-5 eV/A, far below what changes phonon frequencies or the field response of a
relaxation in a field of 1e-3 V/A (displacements ~1e-4 A).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = [
    "FMAX_FLOAT64",
    "NOISE_FACTOR",
    "calculator_precision",
    "force_noise",
    "relaxation_fmax",
]

#: force tolerance of float64 models and exact calculators, eV/A
FMAX_FLOAT64 = 1e-8
#: float32 (or unknown) precision: the tolerance is this many times the measured force noise
NOISE_FACTOR = 30.0
#: rigid translations (A) that measure the force noise; fixed, so the measurement is deterministic
_SHIFTS = np.array(
    [[0.3711, -0.2189, 0.1597], [-0.1423, 0.4177, -0.3361], [0.2579, 0.1931, -0.4433]]
)


def calculator_precision(calc) -> str:
    """``"exact"`` (the analytic reference materials), ``"float64"``, ``"float32"`` or ``"unknown"``.

    A calculator tells its model's precision through a ``model_dtype`` attribute (as
    :class:`~nequip_pol.integrations.ase.NequIPPolCalculator` does); the reference materials'
    calculator is exact (float64 autograd of a closed form).
    """
    from nequip_pol.reference import ReferenceMaterialCalculator

    if isinstance(calc, ReferenceMaterialCalculator):
        return "exact"
    dtype = getattr(calc, "model_dtype", None)
    dtype = None if dtype is None else str(dtype).replace("torch.", "")
    return dtype if dtype in ("float32", "float64") else "unknown"


def _centered_forces(atoms) -> np.ndarray:
    # the net force is not a relaxation direction (as in relax_positions)
    f = np.asarray(atoms.get_forces(), dtype=float)
    return f - f.mean(axis=0)


def force_noise(atoms, calc=None) -> float:
    """Rounding noise of the forces, eV/A: the largest change of any force component (net force
    removed) under three fixed rigid translations of the whole structure.

    Costs four force evaluations at the calculator's present field. Zero for an exact calculator.
    """
    work = atoms.copy()
    work.calc = calc if calc is not None else atoms.calc
    f0 = _centered_forces(work)
    x0 = work.positions.copy()
    noise = 0.0
    for shift in _SHIFTS:
        work.positions = x0 + shift
        noise = max(noise, float(np.abs(_centered_forces(work) - f0).max()))
    return noise


def relaxation_fmax(
    atoms, calc=None, fmax: Optional[float] = None
) -> Tuple[float, str]:
    """The force tolerance (eV/A) of a relaxation with ``calc`` and why: ``(fmax, reason)``.

    ``fmax`` given: it is used as is. Otherwise :data:`FMAX_FLOAT64` for an exact calculator or a
    float64 model, and for a float32 model (or one of unknown precision) :data:`NOISE_FACTOR` times
    :func:`force_noise` at ``atoms``, at least :data:`FMAX_FLOAT64`.
    """
    if fmax is not None:
        if not fmax > 0:
            raise ValueError(f"fmax must be positive (eV/A), got {fmax}")
        return float(fmax), "given"
    calc = calc if calc is not None else atoms.calc
    precision = calculator_precision(calc)
    if precision in ("exact", "float64"):
        what = "an exact calculator" if precision == "exact" else "a float64 model"
        return FMAX_FLOAT64, f"the default for {what}"
    noise = force_noise(atoms, calc)
    what = "float32 model" if precision == "float32" else "model of unknown precision"
    chosen = max(FMAX_FLOAT64, NOISE_FACTOR * noise)
    return chosen, (
        f"{NOISE_FACTOR:g} x the force noise {noise:.2g} eV/A of this {what}, measured by rigid "
        f"translations; at least {FMAX_FLOAT64:g}"
    )
