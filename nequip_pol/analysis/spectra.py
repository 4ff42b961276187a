"""Correlation functions and spectra: IR absorption, the dielectric function eps(omega), Raman.

**Correlation and spectrum (Wiener-Khinchin).** For a stationary signal x(t) sampled every dt,
the autocorrelation C(tau) = <x(0) x(tau)> is computed by FFT (zero-padded to >= 2n, so there is
no circular wrap-around) and normalised by the number of overlapping pairs n - k ("unbiased") or
by n ("biased"). Its spectrum is the (two-sided) Fourier transform

    S(nu) = int_{-inf}^{inf} C(tau) w(tau) exp(2 pi i nu tau) dtau
          = dt [C_0 w_0 + 2 sum_{k>=1} C_k w_k cos(2 pi nu k dt)],

with a lag window w (``hann``: cos^2(pi tau / (2 tau_max)); ``blackman``; ``gaussian``:
exp(-(3 tau / tau_max)^2 / 2); ``none``: rectangular) that goes to zero at the largest lag
tau_max (default: the whole run) and zero padding to ``pad_factor`` x (number of lags) points
(a finer frequency grid; it does not add resolution). Sum rule (Parseval): the integral of S over
all frequencies is C(0) w(0) = <x^2>, exactly on the discrete grid. The resolution is the FWHM of
the window's line shape, :func:`window_fwhm` = kappa / tau_max (kappa = 1.0 for ``hann``,
0.60 for ``none``, see the function); a run shorter than the lag needed for a requested
resolution is refused. Frequencies are in THz (cycles per ps) and cm^-1 (x 33.356, ``nequip_pol.units``); the highest
is the Nyquist frequency 1/(2 dt).

**IR and eps(omega)** (classical fluctuation-dissipation theorem, field-free NVT or NVE run,
time dependence exp(-i omega t)): with M(t) the cell dipole (e*A), Phi_ab(t) = <dM_a(0) dM_b(t)>,
beta = 1/(k_B T) and EPS_VAC the vacuum permittivity (e/(V*A)),

    eps(omega) - eps_inf = beta / (EPS_VAC V) [ Phi(0) + i omega int_0^inf Phi(t) exp(i omega t) dt ]
    eps''(omega)         = beta omega Phi~(omega) / (2 EPS_VAC V),     Phi~ the two-sided transform,
    eps'(0)              = eps_inf + beta <dM dM> / (EPS_VAC V)       (the fluctuation eps_0),
    alpha(omega) n(omega) = omega eps''(omega) / c = 2 pi nu~ eps''     (nu~ in cm^-1; result in cm^-1).

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

**Raman** from alpha(t) (e*A^2/V): isotropic part a(t) = tr alpha / 3, anisotropic part
b(t) = alpha - a I (traceless), orientational averages

    I_iso(nu) = FT <da(0) da(t)>,   I_aniso(nu) = (2/15) FT <tr db(0) db(t)>,
    I_VV = I_iso + I_aniso,          I_VH = (3/4) I_aniso,

(classical spectral densities, (e*A^2/V)^2 fs). The Stokes intensity with the thermal
(harmonic quantum) prefactor is ``stokes = Q(nu) I(nu)`` with Q as above, times
((nu_L - nu) / nu_L)^4 when the laser wavelength is given (the scattered-light nu^4 factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Dict, List, Optional

import numpy as np

from ..units import EPS_VAC, H_OVER_KB_K_PER_THZ, KB_EV_PER_K, THZ_TO_CM1

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

WINDOWS = ("hann", "blackman", "gaussian", "none")


def autocorrelation(x, normalization: str = "unbiased") -> np.ndarray:
    """Autocorrelation <x(0) x(k dt)> of each column for lags k = 0..n-1, by FFT.

    Args:
        x: (n,) or (n, k) samples (the mean is *not* removed here)
        normalization: ``"unbiased"`` (divide by n - k) or ``"biased"`` (by n; a positive-definite
            sequence, the Fourier transform of the periodogram)
    Returns:
        (n,) or (n, k) array, same units as x^2
    """
    x = np.asarray(x, dtype=float)
    squeeze = x.ndim == 1
    x = x.reshape(len(x), -1)
    n = len(x)
    nfft = 1 << int(
        np.ceil(np.log2(2 * n))
    )  # >= 2n - 1: linear, not circular, correlation
    spec = np.fft.rfft(x, nfft, axis=0)
    c = np.fft.irfft(spec * spec.conj(), nfft, axis=0)[:n]
    if normalization == "unbiased":
        c /= (n - np.arange(n))[:, None]
    elif normalization == "biased":
        c /= n
    else:
        raise ValueError(
            f"normalization must be 'unbiased' or 'biased', got {normalization!r}"
        )
    return c[:, 0] if squeeze else c


def lag_window(name: str, n_lags: int) -> np.ndarray:
    """One-sided lag window w_k, k = 0..n_lags-1, with w_0 = 1 and w -> 0 at the last lag."""
    k = np.arange(n_lags, dtype=float)
    u = k / max(n_lags - 1, 1)
    if name == "hann":
        return np.cos(0.5 * np.pi * u) ** 2
    if (
        name == "blackman"
    ):  # the right half of a Blackman window of width 2 (n_lags - 1)
        return 0.42 + 0.5 * np.cos(np.pi * u) + 0.08 * np.cos(2 * np.pi * u)
    if name == "gaussian":
        return np.exp(-0.5 * (3.0 * u) ** 2)
    if name == "none":
        return np.ones(n_lags)
    raise ValueError(f"unknown window {name!r}; choose one of {WINDOWS}")


_KAPPA: Dict[str, float] = {}


def window_fwhm(name: str, max_lag: float) -> float:
    """Resolution: FWHM of the line shape of a pure cosine under the lag window, = kappa / max_lag.

    Units: 1 / (units of max_lag) (fs -> 1/fs). kappa is computed numerically once per window:
    hann 1.00, blackman 1.15, gaussian 0.88, none 0.60.
    """
    if name not in _KAPPA:
        n = 4001
        w = lag_window(name, n)
        arr = np.zeros(64 * n)
        arr[:n] = w
        arr[1:n] *= 2.0
        s = np.real(np.fft.rfft(arr))
        s /= s[0]
        j = int(np.argmax(s < 0.5))
        # linear interpolation of the half-maximum crossing; frequency unit 1 / (64 n) per bin, lag unit 1 / (n - 1)
        half = (j - 1) + (s[j - 1] - 0.5) / (s[j - 1] - s[j])
        _KAPPA[name] = 2.0 * half / (64 * n) * (n - 1)
    return _KAPPA[name] / max_lag


def correlation_spectrum(
    c,
    dt_fs: float,
    max_lag_fs: Optional[float] = None,
    window: str = "hann",
    pad_factor: int = 4,
    sine: bool = False,
):
    """Two-sided Fourier transform of an autocorrelation (see module docstring).

    Args:
        c: (L,) or (L, k) correlation at lags 0, dt, 2 dt, ...
        dt_fs: lag spacing, fs
        max_lag_fs: largest lag used (default: all of ``c``)
        window: lag window (``WINDOWS``)
        pad_factor: zero padding: the FFT has >= pad_factor x (number of lags) points
        sine: also return the one-sided sine transform dt sum_{k>=1} C_k w_k sin(2 pi nu k dt)
    Returns:
        ``(frequency_thz (m,), S (m,) or (m, k))`` in units of [c] * fs; with ``sine`` a third array.
    """
    c = np.asarray(c, dtype=float)
    squeeze = c.ndim == 1
    c = c.reshape(len(c), -1)
    n_lags = len(c)
    if max_lag_fs is not None:
        n_lags = min(n_lags, int(round(max_lag_fs / dt_fs)) + 1)
    if n_lags < 2:
        raise ValueError("need at least 2 lags for a spectrum")
    w = lag_window(window, n_lags)
    nfft = 1 << int(np.ceil(np.log2(max(2, pad_factor) * n_lags)))
    arr = np.zeros((nfft, c.shape[1]))
    arr[:n_lags] = c[:n_lags] * w[:, None]
    ft = np.fft.rfft(arr, axis=0)  # sum_k arr_k exp(-2 pi i j k / nfft)
    spectrum = dt_fs * (2.0 * ft.real - arr[0])  # C_0 w_0 + 2 sum_{k>=1} C_k w_k cos(.)
    freq_thz = np.fft.rfftfreq(nfft, d=dt_fs) * 1000.0
    out = (freq_thz, spectrum[:, 0] if squeeze else spectrum)
    if sine:
        s = -dt_fs * ft.imag  # sum_k arr_k sin(2 pi j k / nfft)
        out = out + (s[:, 0] if squeeze else s,)
    return out


def kramers_kronig_real(imag) -> np.ndarray:
    """Real part chi'(nu) of a causal response from its imaginary part chi''(nu) on an rfft grid.

    ``imag``: (m,) or (m, k) values at nu_j = j / (nfft dt), j = 0..nfft/2 (nfft = 2 (m - 1)),
    odd in nu. Discrete exact Hilbert transform: the odd time part is split off and made causal.
    """
    imag = np.asarray(imag, dtype=float)
    squeeze = imag.ndim == 1
    imag = imag.reshape(len(imag), -1)
    m = len(imag)
    nfft = 2 * (m - 1)
    full = np.zeros((nfft, imag.shape[1]))
    full[:m] = imag
    full[0] = 0.0
    full[m - 1] = 0.0
    full[m:] = -imag[1 : m - 1][::-1]
    # chi(nu_j) = sum_k g_k exp(+2 pi i j k / nfft): g = fft(chi) / nfft
    g_odd = np.fft.fft(1j * full, axis=0) / nfft
    sign = np.zeros(nfft)
    sign[1 : nfft // 2] = 1.0
    sign[nfft // 2 + 1 :] = -1.0
    g_even = sign[:, None] * g_odd
    real = (np.fft.ifft(g_even, axis=0) * nfft).real[:m]
    # The periodic transform forces the mean of chi' over the band to zero, but the true chi' has the
    # tail -A/nu^2 beyond the band edge nu_max (A = (2/pi) int nu chi'' dnu, the f-sum rule), whose
    # missing integral shifts the result by -A/nu_max^2; add it back (exact to O(nu_max^-4)).
    nu = np.arange(
        m, dtype=float
    )  # grid units: only A / nu_max^2 matters, which is scale free
    f_sum = (2.0 / np.pi) * np.trapezoid(nu[:, None] * imag, nu, axis=0)
    real = real + f_sum[None, :] / nu[-1] ** 2
    return real[:, 0] if squeeze else real


def quantum_correction_factor(frequency_thz, temperature: float) -> np.ndarray:
    """Harmonic quantum correction Q = x / (1 - exp(-x)), x = h nu / (k_B T); Q(0) = 1."""
    x = (
        np.asarray(frequency_thz, dtype=float)
        * H_OVER_KB_K_PER_THZ
        / float(temperature)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(np.abs(x) < 1e-8, 1.0 + 0.5 * x, x / -np.expm1(-x))
    return q


def find_spectral_peaks(
    freq_thz,
    values,
    prominence: float = 0.05,
    max_peaks: int = 20,
    min_freq_thz: float = 0.0,
) -> List[Dict[str, float]]:
    """Peaks of a spectrum: position (THz, cm^-1; parabolic interpolation), height, FWHM (cm^-1).

    ``prominence`` is relative to the maximum of ``values`` above ``min_freq_thz``. Sorted by frequency.
    """
    from scipy.signal import find_peaks

    freq_thz = np.asarray(freq_thz, dtype=float)
    values = np.asarray(values, dtype=float)
    sel = freq_thz >= min_freq_thz
    vmax = values[sel].max() if sel.any() else 0.0
    if not vmax > 0:
        return []
    idx, props = find_peaks(np.where(sel, values, 0.0), prominence=prominence * vmax)
    order = np.argsort(-props["prominences"])[:max_peaks]
    idx = np.sort(idx[order])
    df = freq_thz[1] - freq_thz[0]
    peaks = []
    for k in idx:
        shift = 0.0
        if 0 < k < len(values) - 1:
            a, b, c = values[k - 1], values[k], values[k + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        nu = freq_thz[k] + shift * df
        peaks.append(
            {
                "frequency_thz": float(nu),
                "frequency_cm1": float(nu * THZ_TO_CM1),
                "height": float(values[k]),
                "fwhm_cm1": float(_half_max_width(values, k) * df * THZ_TO_CM1),
            }
        )
    return peaks


def _half_max_width(values: np.ndarray, k: int) -> float:
    """Full width (in grid steps) where the peak at k falls to half its height (linear interpolation)."""
    half = 0.5 * values[k]
    edges = []
    for step in (-1, 1):
        j = k
        while 0 <= j + step < len(values) and values[j + step] > half:
            j += step
        if not 0 <= j + step < len(values):
            return float("nan")
        a, b = values[j], values[j + step]
        edges.append(j + step * (a - half) / (a - b))
    return float(edges[1] - edges[0])


def _max_lag_for(series, max_lag_fs, resolution_cm1, window) -> float:
    duration = series.duration_fs
    if resolution_cm1 is not None:
        if not resolution_cm1 > 0:
            raise ValueError(
                f"resolution must be positive (cm^-1), got {resolution_cm1}"
            )
        needed = window_fwhm(window, 1.0) / (resolution_cm1 / THZ_TO_CM1 / 1000.0)  # fs
        if needed > duration * (1 + 1e-9):
            raise ValueError(
                f"the log is too short for a resolution of {resolution_cm1:g} cm^-1 with the {window} window: it needs "
                f"correlations up to {needed:.0f} fs, the run spans {duration:.0f} fs ({len(series)} frames of "
                f"{series.dt_fs:g} fs; {series.source}); run longer or ask for a coarser resolution "
                f"(best possible here: {window_fwhm(window, duration) * 1000 * THZ_TO_CM1:.3g} cm^-1)"
            )
        if max_lag_fs is None:
            max_lag_fs = needed
    if max_lag_fs is None:
        max_lag_fs = duration
    if max_lag_fs > duration * (1 + 1e-9):
        raise ValueError(
            f"max lag {max_lag_fs:g} fs exceeds the run length {duration:g} fs ({series.source})"
        )
    if max_lag_fs < 2 * series.dt_fs:
        raise ValueError(
            f"max lag {max_lag_fs:g} fs is shorter than two samples of {series.dt_fs:g} fs"
        )
    return float(max_lag_fs)


def _check_max_frequency(series, max_frequency_cm1):
    if max_frequency_cm1 is None:
        return
    nyquist_cm1 = 1000.0 / (2.0 * series.dt_fs) * THZ_TO_CM1
    if max_frequency_cm1 > nyquist_cm1:
        raise ValueError(
            f"the sampling interval {series.dt_fs:g} fs resolves frequencies up to {nyquist_cm1:.0f} cm^-1 "
            f"(Nyquist), less than the requested {max_frequency_cm1:g} cm^-1; log more often ({series.source})"
        )


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
        sel = (
            slice(None)
            if max_frequency_cm1 is None
            else self.frequency_cm1 <= max_frequency_cm1
        )
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
    from .dielectric import eps_inf_from_polarizability

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
    _check_max_frequency(series, max_frequency_cm1)
    max_lag = _max_lag_for(series, max_lag_fs, resolution_cm1, window)
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
    peaks = find_spectral_peaks(freq, absorption4[:, 3], prominence=peak_prominence)
    if max_frequency_cm1 is not None:
        peaks = [p for p in peaks if p["frequency_cm1"] <= max_frequency_cm1]
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
        resolution_cm1=window_fwhm(window, max_lag) * 1000.0 * THZ_TO_CM1,
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
        sel = (
            slice(None)
            if max_frequency_cm1 is None
            else self.frequency_cm1 <= max_frequency_cm1
        )
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
    _check_max_frequency(series, max_frequency_cm1)
    max_lag = _max_lag_for(series, max_lag_fs, resolution_cm1, window)
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
    peaks_iso = find_spectral_peaks(
        freq, iso, prominence=peak_prominence, min_freq_thz=freq[1]
    )
    peaks_aniso = find_spectral_peaks(
        freq, aniso, prominence=peak_prominence, min_freq_thz=freq[1]
    )
    if max_frequency_cm1 is not None:
        peaks_iso = [p for p in peaks_iso if p["frequency_cm1"] <= max_frequency_cm1]
        peaks_aniso = [
            p for p in peaks_aniso if p["frequency_cm1"] <= max_frequency_cm1
        ]
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
        resolution_cm1=window_fwhm(window, max_lag) * 1000.0 * THZ_TO_CM1,
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
