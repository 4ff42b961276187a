"""Correlation functions and spectra: IR absorption, the dielectric function eps(omega), Raman.

One module per concept:

- :mod:`~nequip_pol.analysis.spectra.correlation`: autocorrelation by FFT, lag windows and
  their resolution, the spectrum of a correlation (Wiener-Khinchin), Kramers-Kronig, the
  harmonic quantum correction, peaks
- :mod:`~nequip_pol.analysis.spectra.infrared`: IR absorption and eps(omega) of a dipole time
  series (classical fluctuation-dissipation)
- :mod:`~nequip_pol.analysis.spectra.raman`: isotropic and anisotropic Raman spectra of a
  polarizability time series

Their public names are gathered here (``from nequip_pol.analysis import spectra as S``).
Units: times in fs, frequencies in THz (cycles per ps) and cm^-1, P in e*A, alpha in e*A^2/V.
"""

from ...units import THZ_TO_CM1
from .correlation import (
    WINDOWS,
    autocorrelation,
    correlation_spectrum,
    find_spectral_peaks,
    kramers_kronig_real,
    lag_window,
    quantum_correction_factor,
    window_fwhm,
)
from .infrared import IRSpectrum, ir_spectrum
from .raman import RamanSpectrum, raman_spectrum

__all__ = [
    "WINDOWS",
    "THZ_TO_CM1",
    "autocorrelation",
    "lag_window",
    "window_fwhm",
    "correlation_spectrum",
    "kramers_kronig_real",
    "find_spectral_peaks",
    "IRSpectrum",
    "ir_spectrum",
    "RamanSpectrum",
    "raman_spectrum",
    "quantum_correction_factor",
]
