"""Isotropic and anisotropic Raman spectra of a polarizability time series.

**Raman** from alpha(t) (e*A^2/V): isotropic part a(t) = tr alpha / 3, anisotropic part
b(t) = alpha - a I (traceless), orientational averages

    I_iso(nu) = FT <da(0) da(t)>,   I_aniso(nu) = (2/15) FT <tr db(0) db(t)>,
    I_VV = I_iso + I_aniso,          I_VH = (3/4) I_aniso,

(classical spectral densities, (e*A^2/V)^2 fs; the transforms, windows and resolution are those
of :mod:`~nequip_pol.analysis.spectra.correlation`). The Stokes intensity with the thermal
(harmonic quantum) prefactor is ``stokes = Q(nu) I(nu)``, Q(nu) = x / (1 - exp(-x)),
x = h nu / (k_B T), times ((nu_L - nu) / nu_L)^4 when the laser wavelength is given (the
scattered-light nu^4 factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Dict, List, Optional

import numpy as np

from ...units import THZ_TO_CM1
from .correlation import (
    autocorrelation,
    check_max_frequency,
    correlation_spectrum,
    find_spectral_peaks,
    lag_resolution_cm1,
    max_lag_for,
    peaks_up_to,
    quantum_correction_factor,
    rows_up_to,
)

__all__ = ["RamanSpectrum", "raman_spectrum"]


@dataclass
class RamanSpectrum:
    """Raman spectral densities from alpha(t) (see module docstring).

    Attributes:
        frequency_thz, frequency_cm1: (m,)
        iso, aniso: classical I_iso, I_aniso, (e*A^2/V)^2 fs
        vv, vh: I_iso + I_aniso, (3/4) I_aniso
        stokes_iso, stokes_aniso: with the thermal prefactor Q(nu) (and the laser factor if given)
    """

    frequency_thz: np.ndarray
    frequency_cm1: np.ndarray
    iso: np.ndarray
    aniso: np.ndarray
    vv: np.ndarray
    vh: np.ndarray
    stokes_iso: np.ndarray
    stokes_aniso: np.ndarray
    peaks_iso: List[Dict[str, float]]
    peaks_aniso: List[Dict[str, float]]
    resolution_cm1: float
    settings: Dict[str, object] = dataclass_field(default_factory=dict)

    def table(self, max_frequency_cm1: Optional[float] = None):
        sel = rows_up_to(self.frequency_cm1, max_frequency_cm1)
        cols = [
            "frequency_cm1",
            "frequency_thz",
            "iso",
            "aniso",
            "vv",
            "vh",
            "stokes_iso",
            "stokes_aniso",
        ]
        data = [getattr(self, c if c.startswith("frequency") else c)[sel] for c in cols]
        return cols, np.stack(data, axis=1)


def raman_spectrum(
    series,
    temperature: float,
    max_lag_fs: Optional[float] = None,
    resolution_cm1: Optional[float] = None,
    window: str = "hann",
    pad_factor: int = 4,
    laser_nm: Optional[float] = None,
    max_frequency_cm1: Optional[float] = None,
    peak_prominence: float = 0.05,
    start_fs: float = 0.0,
) -> RamanSpectrum:
    """Isotropic and anisotropic Raman spectra from the polarizability time series (see module docstring)."""
    if start_fs > 0:
        series = series.window(start_fs=start_fs)
    if series.polarizability is None:
        raise ValueError(
            f"the series has no polarizability columns ({series.source}); log alpha(t) "
            "(PolarizationLogger(..., polarizability=True), or c_pol[4..12] in LAMMPS)"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    check_max_frequency(series, max_frequency_cm1)
    max_lag = max_lag_for(series, max_lag_fs, resolution_cm1, window)
    alpha = 0.5 * (series.polarizability + series.polarizability.transpose(0, 2, 1))
    a = np.trace(alpha, axis1=1, axis2=2) / 3.0
    b = alpha - a[:, None, None] * np.eye(3)[None]
    da = a - a.mean()
    db = (b - b.mean(axis=0)).reshape(len(b), 9)
    c_iso = autocorrelation(da)
    c_aniso = autocorrelation(db).sum(axis=1) * (2.0 / 15.0)
    freq, spec = correlation_spectrum(
        np.stack([c_iso, c_aniso], axis=1), series.dt_fs, max_lag, window, pad_factor
    )
    iso, aniso = spec[:, 0], spec[:, 1]
    q = quantum_correction_factor(freq, temperature)
    if laser_nm is not None:
        nu_laser_thz = 299792.458 / laser_nm  # c / lambda, THz
        q = q * np.clip((nu_laser_thz - freq) / nu_laser_thz, 0.0, None) ** 4
    freq_cm1 = freq * THZ_TO_CM1
    peaks_iso, peaks_aniso = (
        peaks_up_to(
            find_spectral_peaks(
                freq, part, prominence=peak_prominence, min_freq_thz=freq[1]
            ),
            max_frequency_cm1,
        )
        for part in (iso, aniso)
    )
    return RamanSpectrum(
        frequency_thz=freq,
        frequency_cm1=freq_cm1,
        iso=iso,
        aniso=aniso,
        vv=iso + aniso,
        vh=0.75 * aniso,
        stokes_iso=q * iso,
        stokes_aniso=q * aniso,
        peaks_iso=peaks_iso,
        peaks_aniso=peaks_aniso,
        resolution_cm1=lag_resolution_cm1(window, max_lag),
        settings={
            "temperature": temperature,
            "max_lag_fs": max_lag,
            "window": window,
            "pad_factor": pad_factor,
            "laser_nm": laser_nm,
            "n_frames": len(series),
            "dt_fs": series.dt_fs,
            "source": series.source,
        },
    )
