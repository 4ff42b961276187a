"""IR absorption and the dielectric function eps(omega) of a dipole time series.

**IR and eps(omega)** (classical fluctuation-dissipation theorem, field-free NVT or NVE run,
time dependence exp(-i omega t)): with M(t) the cell dipole (e*A), Phi_ab(t) = <dM_a(0) dM_b(t)>,
beta = 1/(k_B T) and EPS_VAC the vacuum permittivity (e/(V*A)),

    eps(omega) - eps_inf = beta / (EPS_VAC V) [ Phi(0) + i omega int_0^inf Phi(t) exp(i omega t) dt ]
    eps''(omega)         = beta omega Phi~(omega) / (2 EPS_VAC V),     Phi~ the two-sided transform,
    eps'(0)              = eps_inf + beta <dM dM> / (EPS_VAC V)       (the fluctuation eps_0),
    alpha(omega) n(omega) = omega eps''(omega) / c = 2 pi nu~ eps''     (nu~ in cm^-1; result in cm^-1).

The transforms, windows and resolution are those of
:mod:`~nequip_pol.analysis.spectra.correlation`.

``method="dipole"`` (default) correlates dM = M - <M> directly and gets eps' from the sine
transform, so eps'(0) is exactly the fluctuation formula. ``method="derivative"`` correlates
dM/dt (forward differences (M_{k+1} - M_k) / dt), undoes the finite-difference filter
(2 sin(omega dt / 2) / dt)^2 exactly, and gets eps' by a Kramers-Kronig transform: the
derivative needs no mean and suppresses slow drifts, and if P came with quantum jumps (Berry-phase
data folded into one branch) the jumps would show up as isolated spikes in dM/dt rather than as a
huge offset in <dM dM>. The model's P is a smooth function of the positions (a sum of local
terms), so along an MD run it is continuous and both methods apply.

Quantum correction (``quantum_correction="harmonic"``): the classical spectral density of the
dipole (column ``power``) is multiplied by Q(nu) = x / (1 - exp(-x)), x = h nu / (k_B T), the
harmonic estimate of the quantum (Stokes-side) spectral density. The absorption alpha n and
eps'' of the FDT are *unchanged* by it in the harmonic approximation (the quantum FDT factor
(1 - exp(-x)) / (hbar omega) and Q cancel): classical MD absorption is already the quantum result
for harmonic modes with linear dipoles.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Dict, List, Optional

import numpy as np

from ...units import EPS_VAC, KB_EV_PER_K, THZ_TO_CM1
from .correlation import (
    autocorrelation,
    check_max_frequency,
    correlation_spectrum,
    find_spectral_peaks,
    kramers_kronig_real,
    lag_resolution_cm1,
    max_lag_for,
    peaks_up_to,
    quantum_correction_factor,
    rows_up_to,
)

__all__ = ["IRSpectrum", "ir_spectrum"]


@dataclass
class IRSpectrum:
    """IR response from a dipole time series (see module docstring).

    Arrays (m frequencies) have 4 columns: xx, yy, zz and the isotropic mean (trace / 3).

    Attributes:
        frequency_thz, frequency_cm1: (m,)
        eps_imag: eps''(nu), dimensionless
        eps_real: eps'(nu) (includes eps_inf), dimensionless
        absorption_cm1: alpha(nu) n(nu) = 2 pi nu~ eps'', cm^-1
        power: two-sided spectral density of dM/dt, (e*A/fs)^2 fs (quantum-corrected if asked)
        peaks: peak list of the isotropic absorption
        eps0_fluctuation: (3, 3) eps_inf + beta <dM dM> / (EPS_VAC V) of the same data
        resolution_cm1: FWHM of the window's line shape
    """

    frequency_thz: np.ndarray
    frequency_cm1: np.ndarray
    eps_imag: np.ndarray
    eps_real: np.ndarray
    absorption_cm1: np.ndarray
    power: np.ndarray
    peaks: List[Dict[str, float]]
    eps0_fluctuation: np.ndarray
    eps_inf: np.ndarray
    resolution_cm1: float
    settings: Dict[str, object] = dataclass_field(default_factory=dict)

    def table(self, max_frequency_cm1: Optional[float] = None):
        """(columns, rows) for a CSV file, up to ``max_frequency_cm1``."""
        sel = rows_up_to(self.frequency_cm1, max_frequency_cm1)
        cols = ["frequency_cm1", "frequency_thz"]
        data = [self.frequency_cm1[sel], self.frequency_thz[sel]]
        for name, arr in (
            ("absorption_cm1", self.absorption_cm1),
            ("eps_imag", self.eps_imag),
            ("eps_real", self.eps_real),
            ("power", self.power),
        ):
            for k, comp in enumerate(("xx", "yy", "zz", "iso")):
                cols.append(f"{name}_{comp}")
                data.append(arr[sel, k])
        return cols, np.stack(data, axis=1)


def _four_columns(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, a.mean(axis=1, keepdims=True)], axis=1)


def ir_spectrum(
    series,
    temperature: float,
    volume: Optional[float] = None,
    eps_inf=None,
    method: str = "dipole",
    max_lag_fs: Optional[float] = None,
    resolution_cm1: Optional[float] = None,
    window: str = "hann",
    pad_factor: int = 4,
    quantum_correction: Optional[str] = None,
    max_frequency_cm1: Optional[float] = None,
    peak_prominence: float = 0.05,
    start_fs: float = 0.0,
) -> IRSpectrum:
    """IR absorption and eps(omega) of a zero-field MD run (classical fluctuation-dissipation).

    Args:
        series: :class:`~nequip_pol.analysis.timeseries.PolarizationSeries`
        temperature: K (of the NVT/NVE run)
        volume: A^3 (default: the series' mean volume)
        eps_inf: (3, 3) electronic dielectric tensor (default: from the series' mean alpha, else I)
        method: ``"dipole"`` (ACF of dM) or ``"derivative"`` (ACF of dM/dt, KK for eps')
        max_lag_fs / resolution_cm1: largest lag, or the resolution (FWHM) to reach; a log too
            short for the resolution raises ``ValueError``
        window, pad_factor: see :func:`correlation_spectrum`
        quantum_correction: ``None`` or ``"harmonic"`` (multiplies ``power``; see module docstring)
        max_frequency_cm1: highest frequency of interest (checked against the Nyquist frequency)
        start_fs: discard frames before this time (equilibration)
    """
    from ..dielectric import eps_inf_from_polarizability

    if start_fs > 0:
        series = series.window(start_fs=start_fs)
    if method not in ("dipole", "derivative"):
        raise ValueError(f"method must be 'dipole' or 'derivative', got {method!r}")
    if quantum_correction not in (None, "none", "harmonic"):
        raise ValueError(
            f"quantum_correction must be None or 'harmonic', got {quantum_correction!r}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    series.require_zero_field("the IR spectrum by fluctuation-dissipation")
    volume = series.volume_or_mean(volume)
    if eps_inf is None:
        eps_inf = (
            eps_inf_from_polarizability(series.polarizability, volume)
            if series.polarizability is not None
            else np.eye(3)
        )
    eps_inf = np.asarray(eps_inf, dtype=float)
    check_max_frequency(series, max_frequency_cm1)
    max_lag = max_lag_for(series, max_lag_fs, resolution_cm1, window)
    dt = series.dt_fs
    beta = 1.0 / (KB_EV_PER_K * temperature)
    pref = beta / (EPS_VAC * volume)
    dm = series.polarization - series.polarization.mean(axis=0)
    eps_static = eps_inf + pref * dm.T @ dm / len(dm)

    if method == "dipole":
        phi = autocorrelation(dm)
        freq, phi_w, phi_sin = correlation_spectrum(
            phi, dt, max_lag, window, pad_factor, sine=True
        )
        omega = 2.0 * np.pi * freq / 1000.0  # rad/fs
        eps_imag = 0.5 * pref * omega[:, None] * phi_w
        eps_real = np.diag(eps_inf)[None, :] + pref * (
            phi[0][None, :] - omega[:, None] * phi_sin
        )
        power = omega[:, None] ** 2 * phi_w  # spectral density of dM/dt
    else:
        mdot = np.diff(series.polarization, axis=0) / dt
        psi = autocorrelation(mdot)
        freq, psi_w = correlation_spectrum(psi, dt, max_lag, window, pad_factor)
        omega = 2.0 * np.pi * freq / 1000.0
        omega_fd = (
            2.0 * np.sin(0.5 * omega * dt) / dt
        )  # forward-difference transfer function
        with np.errstate(divide="ignore", invalid="ignore"):
            phi_w = np.where(omega_fd[:, None] > 0, psi_w / omega_fd[:, None] ** 2, 0.0)
        eps_imag = 0.5 * pref * omega[:, None] * phi_w
        eps_real = np.diag(eps_inf)[None, :] + kramers_kronig_real(eps_imag)
        power = omega[:, None] ** 2 * phi_w
    if quantum_correction == "harmonic":
        power = power * quantum_correction_factor(freq, temperature)[:, None]
    freq_cm1 = freq * THZ_TO_CM1
    absorption = 2.0 * np.pi * freq_cm1[:, None] * eps_imag
    eps_imag4, eps_real4, absorption4, power4 = map(
        _four_columns, (eps_imag, eps_real, absorption, power)
    )
    peaks = peaks_up_to(
        find_spectral_peaks(freq, absorption4[:, 3], prominence=peak_prominence),
        max_frequency_cm1,
    )
    return IRSpectrum(
        frequency_thz=freq,
        frequency_cm1=freq_cm1,
        eps_imag=eps_imag4,
        eps_real=eps_real4,
        absorption_cm1=absorption4,
        power=power4,
        peaks=peaks,
        eps0_fluctuation=eps_static,
        eps_inf=eps_inf,
        resolution_cm1=lag_resolution_cm1(window, max_lag),
        settings={
            "temperature": temperature,
            "volume": volume,
            "method": method,
            "max_lag_fs": max_lag,
            "window": window,
            "pad_factor": pad_factor,
            "quantum_correction": quantum_correction,
            "n_frames": len(series),
            "dt_fs": dt,
            "source": series.source,
        },
    )
