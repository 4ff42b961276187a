"""Spectral machinery on synthetic signals with known answers."""

import numpy as np
import pytest

from nequip_pol.analysis import spectra as S
from nequip_pol.analysis.dielectric import EPS_VAC
from nequip_pol.analysis.timeseries import PolarizationSeries

KB_EV = 8.617333262e-5


def _series(p, dt, volume=100.0, alpha=None, field=None):
    n = len(p)
    return PolarizationSeries(
        np.arange(n) * dt,
        np.zeros((n, 3)) if field is None else field,
        p,
        alpha,
        np.full(n, volume),
        "synthetic",
    )


def test_autocorrelation_matches_direct_sum():
    x = np.random.default_rng(0).normal(size=(257, 2))
    n = len(x)
    direct = np.array(
        [[np.dot(x[: n - k, c], x[k:, c]) for c in range(2)] for k in range(n)]
    )
    np.testing.assert_allclose(S.autocorrelation(x, "biased"), direct / n, atol=1e-12)
    np.testing.assert_allclose(
        S.autocorrelation(x, "unbiased"),
        direct / (n - np.arange(n))[:, None],
        atol=1e-12,
    )


def test_damped_cosine_correlation_gives_lorentzians():
    """C(t) = cos(w0 t) exp(-|t|/tau) -> S(w) = tau/(1+(w-w0)^2 tau^2) + tau/(1+(w+w0)^2 tau^2)."""
    dt, tau, nu0 = 0.5, 300.0, 0.01  # fs, fs, 1/fs (10 THz)
    t = np.arange(40000) * dt  # 20000 fs >> tau: the truncation is exp(-66)
    c = np.cos(2 * np.pi * nu0 * t) * np.exp(-t / tau)
    freq, spec = S.correlation_spectrum(c, dt, window="none")
    w, w0 = 2 * np.pi * freq / 1000.0, 2 * np.pi * nu0
    exact = tau / (1 + (w - w0) ** 2 * tau**2) + tau / (1 + (w + w0) ** 2 * tau**2)
    sel = freq < 100.0
    # rectangle rule of a smooth integrand: error O(dt^2 / tau^2) relative, plus the t = 0 kink: dt/2 absolute
    assert np.abs(spec[sel] - exact[sel]).max() < 1e-3 * exact.max() + dt
    peak = freq[np.argmax(spec)]
    assert peak == pytest.approx(nu0 * 1000.0, abs=freq[1])


@pytest.mark.parametrize("window", S.WINDOWS)
def test_sum_rule_parseval(window):
    """sum_j S(nu_j) dnu over the two-sided grid equals C(0) w(0) = <x^2> exactly."""
    x = np.random.default_rng(1).normal(size=3000)
    c = S.autocorrelation(x)
    dt = 2.0
    freq, spec = S.correlation_spectrum(c, dt, window=window, pad_factor=4)
    dnu = (freq[1] - freq[0]) / 1000.0  # 1/fs
    total = dnu * (spec[0] + 2 * spec[1:-1].sum() + spec[-1])
    assert total == pytest.approx(c[0], rel=1e-10)
    assert c[0] == pytest.approx(np.mean(x**2), rel=1e-12)


@pytest.mark.parametrize("window", ["hann", "none", "blackman"])
def test_resolution_of_a_pure_cosine(window):
    """A cosine of nu0: the peak sits at nu0 and its FWHM is window_fwhm(window, max_lag)."""
    dt, n, nu0 = 1.0, 4000, 0.0123  # 12.3 THz, not on the frequency grid
    x = np.cos(2 * np.pi * nu0 * np.arange(n) * dt)
    c = S.autocorrelation(x)
    max_lag = 2000.0
    freq, spec = S.correlation_spectrum(
        c, dt, max_lag_fs=max_lag, window=window, pad_factor=16
    )
    peaks = S.find_spectral_peaks(freq, spec, prominence=0.5)
    fwhm_thz = S.window_fwhm(window, max_lag) * 1000.0
    assert len(peaks) == 1
    assert peaks[0]["frequency_thz"] == pytest.approx(nu0 * 1000.0, abs=0.05 * fwhm_thz)
    assert peaks[0]["fwhm_cm1"] / S.THZ_TO_CM1 == pytest.approx(fwhm_thz, rel=0.1)


def _langevin_oscillator(n, dt, nu0_thz, gamma, sigma2, seed):
    """Exact discretisation of a Langevin oscillator x'' = -w0^2 x - gamma x' + noise, <x^2> = sigma2."""
    from scipy.linalg import cholesky, expm

    w0 = 2 * np.pi * nu0_thz / 1000.0
    a = np.array([[0.0, 1.0], [-(w0**2), -gamma]])
    e = expm(a * dt)
    stat = np.diag([sigma2, sigma2 * w0**2])
    chol = cholesky(stat - e @ stat @ e.T, lower=True)
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3))
    for k in range(3):
        s = rng.multivariate_normal([0.0, 0.0], stat)
        noise = rng.normal(size=(n, 2)) @ chol.T
        for i in range(n):
            s = e @ s + noise[i]
            out[i, k] = s[0]
    return out, w0


@pytest.mark.statistical
def test_ir_of_langevin_oscillator_matches_lorentz_model(seed_offset):
    """eps(w) - eps_inf = (beta <M^2> / (eps_vac V)) w0^2 / (w0^2 - w^2 - i gamma w) for a Langevin oscillator."""
    dt, nu0, gamma, sigma2, temperature, volume = 1.0, 10.0, 0.02, 0.25, 300.0, 100.0
    p, w0 = _langevin_oscillator(60000, dt, nu0, gamma, sigma2, seed=seed_offset)
    series = _series(p, dt, volume)
    amp = sigma2 / (KB_EV * temperature * EPS_VAC * volume)
    ir = S.ir_spectrum(series, temperature, eps_inf=np.eye(3), max_lag_fs=1500.0)
    w = 2 * np.pi * ir.frequency_thz / 1000.0
    exact = amp * w0**2 / (w0**2 - w**2 - 1j * gamma * w)
    band = (ir.frequency_thz > 5) & (ir.frequency_thz < 15)
    # statistical error of a lag-windowed spectrum ~ sqrt(max_lag / duration) = 16 % (one component), /sqrt(3)
    assert (
        np.abs(ir.eps_imag[band, 3] - exact.imag[band]).max() < 0.2 * exact.imag.max()
    )
    assert (
        np.abs(ir.eps_real[band, 3] - 1 - exact.real[band]).max()
        < 0.2 * exact.imag.max()
    )
    # the absorption peak within the resolution of the exact peak of w eps''(w)
    fine = np.linspace(5, 15, 20001) * 2 * np.pi / 1000.0
    exact_peak_thz = (
        fine[np.argmax(fine * (w0**2 / (w0**2 - fine**2 - 1j * gamma * fine)).imag)]
        * 1000
        / (2 * np.pi)
    )
    assert len(ir.peaks) == 1
    assert (
        abs(ir.peaks[0]["frequency_thz"] - exact_peak_thz)
        < ir.resolution_cm1 / S.THZ_TO_CM1
    )
    # static limit: eps'(0) equals the fluctuation formula exactly (dipole method), and that is the model's
    np.testing.assert_allclose(
        ir.eps_real[0, :3], np.diag(ir.eps0_fluctuation), rtol=1e-12
    )
    # <x^2> of a run of 60000 fs with correlation time 2/gamma = 100 fs: ~6 % per component
    assert np.mean(np.diag(ir.eps0_fluctuation)) - 1 == pytest.approx(amp, rel=0.15)
    # dM/dt route: same eps'' on the band (same data; the derivative route differs by windowing/leakage only)
    der = S.ir_spectrum(
        series, temperature, eps_inf=np.eye(3), max_lag_fs=1500.0, method="derivative"
    )
    assert (
        np.abs(der.eps_imag[band, 3] - ir.eps_imag[band, 3]).max()
        < 0.05 * ir.eps_imag[band, 3].max()
    )
    assert (
        np.abs(der.eps_real[band, 3] - ir.eps_real[band, 3]).max()
        < 0.1 * ir.eps_imag[band, 3].max()
    )


def test_kramers_kronig_of_lorentz_oscillator():
    dnu = 0.001  # THz... any unit: KK is scale free
    nu = np.arange(2**16 + 1) * dnu
    nu0, g = 10.0, 0.5
    chi = 1.0 / (nu0**2 - nu**2 - 1j * g * nu)
    real = S.kramers_kronig_real(chi.imag)
    sel = nu < 30
    assert np.abs(real[sel] - chi.real[sel]).max() < 1e-3 * np.abs(chi.imag).max()


def test_quantum_correction_factor():
    # x = h nu / kT = 1 at nu = kT/h: Q = 1 / (1 - e^-1)
    nu = 300.0 * 1.380649e-23 / 6.62607015e-34 / 1e12
    assert S.quantum_correction_factor(nu, 300.0) == pytest.approx(
        1.0 / (1.0 - np.exp(-1.0)), rel=1e-12
    )
    assert S.quantum_correction_factor(0.0, 300.0) == 1.0


def test_raman_iso_and_aniso_parts():
    """alpha(t) = a(t) I + b(t) B (B traceless): iso peak at a's frequency, aniso at b's; sum rules."""
    dt, n = 1.0, 8000
    t = np.arange(n) * dt
    rng = np.random.default_rng(3)
    a = 0.1 * np.cos(2 * np.pi * 0.005 * t + 0.3)  # 5 THz
    b = 0.2 * np.cos(2 * np.pi * 0.015 * t + 1.1)  # 15 THz
    tens = np.array([[1.0, 0.5, 0.0], [0.5, -1.0, 0.0], [0.0, 0.0, 0.0]])
    alpha = (
        2.0 * np.eye(3)
        + a[:, None, None] * np.eye(3)
        + b[:, None, None] * tens
        + 1e-4 * rng.normal(size=(n, 3, 3))
    )
    series = _series(np.zeros((n, 3)), dt, alpha=alpha)
    r = S.raman_spectrum(series, 300.0, max_lag_fs=4000.0, peak_prominence=0.2)
    assert [round(p["frequency_thz"], 1) for p in r.peaks_iso] == [5.0]
    assert [round(p["frequency_thz"], 1) for p in r.peaks_aniso] == [15.0]
    dnu = (r.frequency_thz[1] - r.frequency_thz[0]) / 1000.0
    two_sided = lambda s: dnu * (s[0] + 2 * s[1:-1].sum() + s[-1])  # noqa: E731
    asym = 0.5 * (alpha + alpha.transpose(0, 2, 1))
    abar = np.trace(asym, axis1=1, axis2=2) / 3
    beta = asym - abar[:, None, None] * np.eye(3)
    assert two_sided(r.iso) == pytest.approx(
        np.var(abar), rel=1e-3
    )  # unbiased C(0) = variance
    assert two_sided(r.aniso) == pytest.approx(
        2 / 15 * np.sum(np.var(beta, axis=0)), rel=1e-3
    )
    np.testing.assert_allclose(r.vh, 0.75 * r.aniso)


def test_bad_requests_are_named():
    dt = 1.0
    series = _series(np.random.default_rng(0).normal(size=(1000, 3)), dt)
    with pytest.raises(ValueError, match="too short for a resolution of 1 cm"):
        S.ir_spectrum(series, 300.0, resolution_cm1=1.0)
    with pytest.raises(ValueError, match="Nyquist"):
        S.ir_spectrum(series, 300.0, max_frequency_cm1=20000.0)
    field = np.zeros((1000, 3))
    field[:, 2] = 0.1
    with pytest.raises(ValueError, match="zero-field run"):
        S.ir_spectrum(_series(series.polarization, dt, field=field), 300.0)
    with pytest.raises(ValueError, match="no polarizability"):
        S.raman_spectrum(series, 300.0)
    with pytest.raises(ValueError, match="unknown window"):
        S.ir_spectrum(series, 300.0, window="kaiser")
    # a resolution the run can give is accepted and reached
    ir = S.ir_spectrum(series, 300.0, resolution_cm1=50.0)
    assert ir.resolution_cm1 == pytest.approx(50.0, rel=1e-6)
