"""Dielectric constants: eps_inf from the polarizability and eps_0 by three independent routes.

Units and the one constant. The cell dipole P is in e*A, the field in V/A, the polarizability
alpha = dP/dE in e*A^2/V, the volume V in A^3. The vacuum permittivity in these units is

    EPS_VAC = eps_0 / e = 8.8541878128e-12 F/m / 1.602176634e-19 C = 0.005526349406 e/(V*A)

(CODATA 2018; :data:`nequip_pol.units.EPS_VAC`), so a dipole response dP/dE (e*A^2/V) divided by
EPS_VAC * V (e*A^2/V) is dimensionless:

* electronic (clamped-ion) dielectric tensor: ``eps_inf = I + alpha / (EPS_VAC V)``;
* static tensor, eps_0 = eps_inf + ionic part, by three routes that agree in the harmonic limit:

  - **harmonic** (:func:`eps0_harmonic`): Gamma phonons (phonopy) and Born charges,
    ``eps_0 = eps_inf + sum_m S_m / (EPS_VAC V omega_m^2)`` over the optical modes, with the
    oscillator strengths S_m = Z_m Z_m^T (e^2/amu) and omega_m^2 (eV/(A^2 amu)); this is
    ``eps_inf + Z*^T Phi^+ Z* / (EPS_VAC V)`` (Phi the force constants, ^+ the inverse on the
    optical subspace). [The Gaussian-units form is eps_inf + (4 pi / V) sum_m S_m / omega_m^2.]
  - **fluctuations** (:func:`eps0_fluctuations`): classical fluctuation-dissipation at zero field,
    ``eps_0 = eps_inf + <dP dP^T> / (EPS_VAC V k_B T)`` from NVT MD (P continuous along the run).
  - **field response** (:func:`eps0_field_response`): relax the ions (fixed cell) in static fields
    +-h along each axis and take ``eps_0 = I + (dP/dE) / (EPS_VAC V)`` by central differences
    (with Richardson extrapolation); dP/dE contains the electronic and the ionic response. Only a
    field-aware model can do this: it needs forces and P *under* a field.

The relaxations are converged by Newton steps with a fixed Hessian (from phonopy or finite
differences); the Hessian only speeds the iteration up, the converged structure is set by the
forces alone. The force tolerance follows the calculator's precision
(:func:`nequip_pol.analysis.tolerances.relaxation_fmax`: 1e-8 eV/A for exact calculators and
float64 models, a multiple of the measured force noise for float32 models) unless given.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Callable, Dict, Optional

import numpy as np

from ..units import EPS_VAC

__all__ = [
    "EPS_VAC",
    "eps_inf_from_polarizability",
    "DielectricResult",
    "relax_positions",
    "eps0_harmonic",
    "eps0_field_response",
    "eps0_fluctuations",
    "sample_polarization_nvt",
]


def eps_inf_from_polarizability(alpha, volume: float) -> np.ndarray:
    """Clamped-ion dielectric tensor ``I + alpha / (EPS_VAC V)``.

    Args:
        alpha: (3, 3) polarizability dP/dE of the cell, e*A^2/V (or (n, 3, 3): averaged)
        volume: cell volume, A^3
    """
    alpha = np.asarray(alpha, dtype=float)
    if alpha.ndim == 3:
        alpha = alpha.mean(axis=0)
    if alpha.shape != (3, 3) or not np.all(np.isfinite(alpha)):
        raise ValueError(
            f"polarizability must be a finite (3, 3) array in e*A^2/V, got shape {alpha.shape}"
        )
    if not (np.isfinite(volume) and volume > 0):
        raise ValueError(
            f"the cell volume must be a positive number of A^3, got {volume}"
        )
    return np.eye(3) + alpha / (EPS_VAC * float(volume))


@dataclass
class DielectricResult:
    """eps_0 from one route.

    Attributes:
        route: ``"harmonic"``, ``"fluctuations"`` or ``"field"``
        eps0: (3, 3) static dielectric tensor
        eps_inf: (3, 3) electronic dielectric tensor used
        error: (3, 3) statistical standard error of eps0 (fluctuations), else ``None``
        details: route-specific numbers (documented per function)
    """

    route: str
    eps0: np.ndarray
    eps_inf: np.ndarray
    error: Optional[np.ndarray] = None
    details: Dict[str, object] = dataclass_field(default_factory=dict)


# ---------------------------------------------------------------------- relaxation
def _translation_projector(n: int) -> np.ndarray:
    t = np.zeros((3 * n, 3))
    for b in range(3):
        t[b::3, b] = 1.0 / np.sqrt(n)
    return t


def _set_field(calc, field) -> None:
    if not hasattr(calc, "set_field"):
        raise ValueError(
            f"the calculator {type(calc).__name__} has no set_field(): a field-aware nequip-pol calculator "
            "(NequIPPolCalculator or ReferenceMaterialCalculator) is needed"
        )
    calc.set_field(np.asarray(field, dtype=float))


def relax_positions(
    atoms,
    calc=None,
    field=None,
    fmax: Optional[float] = None,
    hessian: Optional[np.ndarray] = None,
    coarse_fmax: float = 1e-3,
    max_newton: int = 60,
    progress: Optional[Callable[[str], None]] = None,
):
    """Relax the ions at fixed cell in a static field; return a relaxed copy of ``atoms``.

    A BFGS pre-relaxation (ASE) to ``coarse_fmax`` (eV/A) is followed by Newton steps
    ``dR = Phi^-1 F`` with a fixed Hessian ``hessian`` ((3N, 3N) eV/A^2; finite differences of the
    forces when not given), with uniform translations projected out, until max |F| < ``fmax``.

    Args:
        atoms: the structure (not modified)
        calc: field-aware ASE calculator (default ``atoms.calc``); its field is restored afterwards
        field: (3,) V/A, default zero
        fmax: force tolerance, eV/A; default from the calculator's precision
            (:func:`~nequip_pol.analysis.tolerances.relaxation_fmax`, reported through ``progress``)

    The returned structure's ``info`` holds ``relax_newton_steps``, ``relax_fmax`` (the final
    max |F|, eV/A), ``relax_tolerance`` (the tolerance used, eV/A) and ``relax_tolerance_reason``.

    Raises:
        ValueError: the forces do not converge (e.g. no minimum in this field)
    """
    from ase.optimize import BFGS

    from .hessian import finite_difference_hessian
    from .tolerances import relaxation_fmax

    calc = calc if calc is not None else atoms.calc
    previous = calc.field if hasattr(calc, "field") else None
    _set_field(calc, np.zeros(3) if field is None else field)
    try:
        work = atoms.copy()
        work.calc = calc
        fmax, fmax_reason = relaxation_fmax(work, calc, fmax)
        if progress is not None:
            progress(f"relaxation tolerance: max |F| < {fmax:.2g} eV/A ({fmax_reason})")
        f = work.get_forces()
        if np.abs(f).max() > coarse_fmax:
            opt = BFGS(work, logfile=None)
            opt.run(fmax=coarse_fmax, steps=2000)
            if progress is not None:
                progress(
                    f"BFGS pre-relaxation: {opt.nsteps} steps, max |F| = {np.abs(work.get_forces()).max():.2e} eV/A"
                )
        n = len(work)
        if hessian is None:
            hessian = finite_difference_hessian(work, calc, delta=1e-3)
        t = _translation_projector(n)
        scale = float(np.abs(np.linalg.eigvalsh(0.5 * (hessian + hessian.T))).max())
        h_reg = 0.5 * (hessian + hessian.T) + scale * (t @ t.T)  # translations: no step
        f = work.get_forces().reshape(-1)
        history = [float(np.abs(f).max())]
        for _ in range(max_newton):
            if history[-1] < fmax:
                break
            f = f - t @ (
                t.T @ f
            )  # net force: drift of the calculator, not a relaxation direction
            work.positions = work.positions + np.linalg.solve(h_reg, f).reshape(n, 3)
            f = work.get_forces().reshape(-1)
            history.append(float(np.abs(f - t @ (t.T @ f)).max()))
        if history[-1] >= fmax:
            raise ValueError(
                f"the relaxation did not converge to max |F| < {fmax:g} eV/A after {max_newton} Newton steps "
                f"(last {history[-1]:.3e} eV/A, field {np.zeros(3) if field is None else np.asarray(field)} V/A, "
                f"tolerance: {fmax_reason}); the structure may have no minimum nearby, or the calculator is not "
                "smooth/precise enough (raise fmax)"
            )
        work.info["relax_newton_steps"] = len(history) - 1
        work.info["relax_fmax"] = history[-1]
        work.info["relax_tolerance"] = fmax
        work.info["relax_tolerance_reason"] = fmax_reason
        work.calc = None
        return work
    finally:
        if previous is not None:
            calc.set_field(previous)


# ---------------------------------------------------------------------- routes
def eps0_harmonic(phonons, eps_inf: Optional[np.ndarray] = None) -> DielectricResult:
    """eps_0 = eps_inf + sum over optical modes of S_m / (EPS_VAC V omega_m^2).

    Args:
        phonons: :class:`~nequip_pol.analysis.phonons.GammaPhonons` with Born charges
        eps_inf: (3, 3); default from the phonons' polarizability

    ``details``: ``ionic`` (3, 3), ``modes`` (the mode table with ``delta_eps`` per degenerate set).
    Raises ``ValueError`` when Born charges are missing or an optical mode is unstable.
    """
    if phonons.born_charges is None:
        raise ValueError(
            "the harmonic route needs Born charges: the model/calculator gave none"
        )
    phonons.check_stable()
    if eps_inf is None:
        if phonons.polarizability is None:
            raise ValueError("the harmonic route needs eps_inf or the polarizability")
        eps_inf = eps_inf_from_polarizability(phonons.polarizability, phonons.volume)
    optical = ~phonons.acoustic
    s = phonons.oscillator_strengths[optical]
    ionic = (s / phonons.eigenvalues[optical][:, None, None]).sum(axis=0) / (
        EPS_VAC * phonons.volume
    )
    return DielectricResult(
        "harmonic",
        eps_inf + ionic,
        np.asarray(eps_inf),
        None,
        {"ionic": ionic, "modes": phonons.mode_table()},
    )


def eps0_field_response(
    atoms,
    calc=None,
    field_step: float = 1e-3,
    richardson: bool = True,
    fmax: Optional[float] = None,
    hessian: Optional[np.ndarray] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> DielectricResult:
    """eps_0 = I + (dP/dE) / (EPS_VAC V) from ions relaxed in static fields +-h (fixed cell).

    For each axis a the structure is relaxed in the fields +-h e_a (and +-2h with
    ``richardson``), P is taken at the relaxed positions in that field, and column a of dP/dE is
    the central difference (P(+h) - P(-h)) / 2h, Richardson-extrapolated as (4 D(h) - D(2h)) / 3
    (error O(h^4) instead of O(h^2)).

    Args:
        atoms: the zero-field relaxed structure (relaxing starts from it)
        calc: field-aware ASE calculator (default ``atoms.calc``)
        field_step: h, V/A
        fmax: force convergence of each relaxation, eV/A; default from the calculator's precision
            (:func:`~nequip_pol.analysis.tolerances.relaxation_fmax` at zero field, chosen once)
        hessian: Newton preconditioner (3N, 3N) eV/A^2 (default: finite differences, once)

    ``details``: ``dP_dE`` (3, 3, e*A^2/V), ``alpha`` (clamped-ion, at zero field), ``ionic``
    (3, 3, the ionic part of eps_0), ``max_displacement`` (A, at +h), ``field_step``.
    """
    from .hessian import finite_difference_hessian
    from .tolerances import relaxation_fmax

    calc = calc if calc is not None else atoms.calc
    previous = calc.field if hasattr(calc, "field") else None
    volume = float(atoms.get_volume())
    try:
        _set_field(calc, np.zeros(3))
        ref = atoms.copy()
        ref.calc = calc
        fmax, fmax_reason = relaxation_fmax(ref, calc, fmax)
        if progress is not None:
            progress(
                f"field response: relaxation tolerance max |F| < {fmax:.2g} eV/A ({fmax_reason})"
            )
        alpha0 = np.asarray(calc.get_property("polarizability", ref), dtype=float)
        if hessian is None:
            hessian = finite_difference_hessian(
                ref, calc, delta=1e-3, progress=progress
            )
        steps = (1.0, 2.0) if richardson else (1.0,)
        dpde = {s: np.zeros((3, 3)) for s in steps}
        max_disp = 0.0
        for a in range(3):
            for s in steps:
                p = {}
                for sign in (1.0, -1.0):
                    e = np.zeros(3)
                    e[a] = sign * s * field_step
                    relaxed = relax_positions(
                        atoms, calc, field=e, fmax=fmax, hessian=hessian
                    )
                    relaxed.calc = calc
                    _set_field(calc, e)
                    p[sign] = np.asarray(
                        calc.get_property("polarization", relaxed), dtype=float
                    )
                    if s == 1.0 and sign > 0:
                        max_disp = max(
                            max_disp,
                            float(np.abs(relaxed.positions - atoms.positions).max()),
                        )
                dpde[s][:, a] = (p[1.0] - p[-1.0]) / (2.0 * s * field_step)
            if progress is not None:
                progress(f"field response: E along {'xyz'[a]} done")
    finally:
        if previous is not None:
            calc.set_field(previous)
    total = (4.0 * dpde[1.0] - dpde[2.0]) / 3.0 if richardson else dpde[1.0]
    eps_inf = eps_inf_from_polarizability(alpha0, volume)
    eps0 = np.eye(3) + total / (EPS_VAC * volume)
    return DielectricResult(
        "field",
        eps0,
        eps_inf,
        None,
        {
            "dP_dE": total,
            "alpha": alpha0,
            "ionic": eps0 - eps_inf,
            "max_displacement": max_disp,
            "field_step": field_step,
            "fmax": fmax,
            "richardson_change": float(
                np.abs(total - dpde[1.0]).max() / max(np.abs(total).max(), 1e-300)
            ),
        },
    )


def eps0_fluctuations(
    series,
    temperature: float,
    eps_inf,
    volume: Optional[float] = None,
    n_blocks: int = 10,
    start_fs: float = 0.0,
) -> DielectricResult:
    """eps_0 = eps_inf + <dP dP^T> / (EPS_VAC V k_B T) from a zero-field NVT series.

    Args:
        series: :class:`~nequip_pol.analysis.timeseries.PolarizationSeries` (zero field)
        temperature: K (the thermostat's)
        eps_inf: (3, 3) electronic dielectric tensor
        volume: A^3 (default: the series' mean volume)
        n_blocks: blocks for the statistical error (blocks should be longer than the correlation time)
        start_fs: discard the frames before this time (equilibration)

    ``error`` is the standard error of the mean over blocks; ``details``: ``covariance`` (e^2 A^2),
    ``n_frames``, ``n_blocks``.
    """
    from ase.units import kB

    if start_fs > 0:
        series = series.window(start_fs=start_fs)
    series.require_zero_field("the fluctuation route")
    volume = series.volume_or_mean(volume)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    n = len(series)
    if n < 10 * n_blocks:
        raise ValueError(
            f"{n} frames are too few for {n_blocks} blocks (need >= {10 * n_blocks}); run longer"
        )
    dp = series.polarization - series.polarization.mean(axis=0)
    cov = dp.T @ dp / n
    blocks = np.array_split(np.arange(n), n_blocks)
    block_cov = np.array([dp[b].T @ dp[b] / len(b) for b in blocks])
    cov_error = block_cov.std(axis=0, ddof=1) / np.sqrt(n_blocks)
    factor = 1.0 / (EPS_VAC * volume * kB * temperature)
    eps_inf = np.asarray(eps_inf, dtype=float)
    return DielectricResult(
        "fluctuations",
        eps_inf + factor * cov,
        eps_inf,
        factor * cov_error,
        {
            "covariance": cov,
            "n_frames": n,
            "n_blocks": n_blocks,
            "volume": volume,
            "temperature": temperature,
        },
    )


def sample_polarization_nvt(
    atoms,
    calc=None,
    temperature: float = 100.0,
    steps: int = 10000,
    timestep_fs: float = 1.0,
    friction_per_fs: float = 0.01,
    seed: int = 0,
    polarizability: bool = False,
    equilibration_steps: int = 0,
    progress: Optional[Callable[[str], None]] = None,
    progress_every: int = 1000,
):
    """Langevin NVT at zero field; P (and alpha) at every step as a :class:`PolarizationSeries`.

    Args:
        atoms: starting structure (not modified; velocities drawn from Maxwell-Boltzmann at ``temperature``)
        calc: field-aware ASE calculator (default ``atoms.calc``); its field is set to zero and restored
        temperature: K; timestep_fs: fs; friction_per_fs: Langevin friction, 1/fs
        seed: random seed of the initial velocities and the thermostat
        polarizability: also record alpha (costs an extra evaluation with a model)
        equilibration_steps: steps run before recording
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    from ..integrations.md import PolarizationLogger, thermalize

    calc = calc if calc is not None else atoms.calc
    previous = calc.field if hasattr(calc, "field") else None
    previous_time = getattr(calc, "time", None)
    _set_field(calc, np.zeros(3))
    try:
        work = atoms.copy()
        work.calc = calc
        work.set_constraint(
            FixCom()
        )  # P is translation invariant; the centre of mass is kept still
        rng = np.random.default_rng(seed)
        thermalize(work, temperature, rng=rng)
        dyn = Langevin(
            work,
            timestep=timestep_fs * units.fs,
            temperature_K=temperature,
            friction=friction_per_fs / units.fs,
            rng=rng,
            fixcm=False,
        )
        # the calculator's clock follows the MD (t = 0 at the first recorded frame): the recorder
        # reads the time of each frame from it
        calc.attach_dynamics(dyn, t0=-equilibration_steps * timestep_fs)
        if equilibration_steps:
            dyn.run(equilibration_steps)
        # the project's one P(t) recorder, in memory only
        recorder = PolarizationLogger(
            work,
            None,
            dyn=dyn,
            polarizability=polarizability,
            energies=False,
            keep=True,
        )

        def report():
            if progress is not None and recorder.num_rows % progress_every == 0:
                progress(
                    f"NVT MD: {recorder.num_rows}/{steps + 1} frames, T = {work.get_temperature():.1f} K"
                )

        dyn.attach(
            recorder, interval=1
        )  # ASE calls observers before the first step too: steps + 1 frames
        dyn.attach(report, interval=1)
        dyn.run(steps)
    finally:
        if previous is not None:
            calc.set_field(previous)
        if previous_time is not None:
            calc.time = previous_time
    return recorder.to_series(
        source=f"NVT Langevin MD, {temperature} K, dt {timestep_fs} fs"
    )
