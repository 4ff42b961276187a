"""Correlation functions and their spectra (Wiener-Khinchin): lag windows, resolution, peaks.

The building blocks of the IR (:mod:`~nequip_pol.analysis.spectra.infrared`) and Raman
(:mod:`~nequip_pol.analysis.spectra.raman`) spectra of a time series.

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
resolution is refused (:func:`max_lag_for`). Frequencies are in THz (cycles per ps) and cm^-1
(x 33.356, ``nequip_pol.units``); the highest is the Nyquist frequency 1/(2 dt)
(:func:`check_max_frequency`).

**Harmonic quantum correction** (:func:`quantum_correction_factor`): Q(nu) = x / (1 - exp(-x)),
x = h nu / (k_B T), the factor that turns a classical spectral density into the harmonic estimate
of the quantum (Stokes-side) one.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ...units import H_OVER_KB_K_PER_THZ, THZ_TO_CM1

__all__ = [
    "WINDOWS",
    "autocorrelation",
    "lag_window",
    "window_fwhm",
    "correlation_spectrum",
    "kramers_kronig_real",
    "quantum_correction_factor",
    "find_spectral_peaks",
    "max_lag_for",
    "check_max_frequency",
    "lag_resolution_cm1",
    "nyquist_cm1",
    "rows_up_to",
    "peaks_up_to",
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


def max_lag_for(series, max_lag_fs, resolution_cm1, window) -> float:
    """The largest correlation lag (fs) of a spectrum of ``series``.

    ``max_lag_fs`` if given, else the lag that reaches the resolution (FWHM) ``resolution_cm1``
    (cm^-1) with ``window``, else the whole run (``series.duration_fs``). ``ValueError``, naming
    the log, for a log too short for the resolution or the lag, or a lag under two samples.
    """
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
                f"(best possible here: {lag_resolution_cm1(window, duration):.3g} cm^-1)"
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


def check_max_frequency(series, max_frequency_cm1) -> None:
    """``ValueError`` if ``max_frequency_cm1`` (cm^-1; ``None``: no check) is above the Nyquist
    frequency 1 / (2 dt) of ``series``."""
    if max_frequency_cm1 is None:
        return
    nyquist = nyquist_cm1(series.dt_fs)
    if max_frequency_cm1 > nyquist:
        raise ValueError(
            f"the sampling interval {series.dt_fs:g} fs resolves frequencies up to {nyquist:.0f} cm^-1 "
            f"(Nyquist), less than the requested {max_frequency_cm1:g} cm^-1; log more often ({series.source})"
        )


def lag_resolution_cm1(window: str, max_lag_fs: float) -> float:
    """The resolution (cm^-1) of a spectrum with lags up to ``max_lag_fs`` (fs): the FWHM of
    ``window``'s line shape (:func:`window_fwhm`, THz) in cm^-1."""
    return window_fwhm(window, max_lag_fs) * 1000.0 * THZ_TO_CM1


def nyquist_cm1(dt_fs: float) -> float:
    """The highest frequency (cm^-1) that samples every ``dt_fs`` fs resolve: 1 / (2 dt)."""
    return 1000.0 / (2.0 * dt_fs) * THZ_TO_CM1


def rows_up_to(frequency_cm1: np.ndarray, max_frequency_cm1: Optional[float]):
    """Index of the rows of a spectrum up to ``max_frequency_cm1`` (cm^-1): a boolean mask (m,)
    over ``frequency_cm1`` (m,), or every row (``slice(None)``) when it is None."""
    return (
        slice(None) if max_frequency_cm1 is None else frequency_cm1 <= max_frequency_cm1
    )


def peaks_up_to(
    peaks: List[Dict[str, float]], max_frequency_cm1: Optional[float]
) -> List[Dict[str, float]]:
    """The peaks (:func:`find_spectral_peaks`) at or below ``max_frequency_cm1`` (cm^-1; None:
    all)."""
    if max_frequency_cm1 is None:
        return peaks
    return [p for p in peaks if p["frequency_cm1"] <= max_frequency_cm1]
