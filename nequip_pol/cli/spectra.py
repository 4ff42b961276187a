"""``nequip-pol ir | raman``: spectra from a P(t) / alpha(t) log; argument parsers, input checks, run functions.

Registered in :mod:`nequip_pol.cli` (:data:`~nequip_pol.cli.VERBS`, with the verbs of
:mod:`~nequip_pol.cli.dielectric`, :mod:`~nequip_pol.cli.phonons` and
:mod:`~nequip_pol.cli.switching`). Only ``argparse`` and the standard library are
imported at module level (``--help`` stays fast); numpy is imported inside the run functions,
after :func:`check_inputs` has checked the files, numbers and outputs. The spectra themselves
are computed by :mod:`nequip_pol.analysis.spectra`.

Conventions of every verb (:mod:`~nequip_pol.cli.common`): all output paths are
checked *before* any work (an existing file stops the command unless ``--force``), bad input
stops it with ``nequip-pol VERB: error: ...`` and exit status 2, nothing is written then.
Outputs are ``PREFIX_<what>.csv`` and ``PREFIX_<what>.png`` (PREFIX: ``-o``, default the log
without its extension). Units: fs, K, cm^-1 and THz, A^3.
"""

from __future__ import annotations

import argparse

from .common import (
    CommandError,
    check_file,
    input_checker,
    output_paths,
    output_prefix,
    run_guarded,
    write_csv,
)

__all__ = [
    "add_ir",
    "run_ir",
    "add_raman",
    "run_raman",
    "check_inputs",
    "DEFAULT_RESOLUTION_CM1",
    "DEFAULT_MAX_FREQ_CM1",
]

#: default upper end of the spectra written (CSV, plot) when --max-freq is not given, cm^-1
DEFAULT_MAX_FREQ_CM1 = 4000.0
#: default spectral resolution (FWHM of the lag window's line shape) of ir and raman, cm^-1: the
#: raw periodogram of a long run is noise-dominated (one spurious peak per few grid points);
#: averaging over lags up to ~1/resolution keeps peaks a few cm^-1 apart resolved
DEFAULT_RESOLUTION_CM1 = 8.0


# ---------------------------------------------------------------------- shared options
def _add_spectral_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "log",
        metavar="LOG",
        help="P(t) log: PolarizationLogger CSV or LAMMPS fix ave/time file of compute pol/allegro",
    )
    p.add_argument(
        "--temperature",
        "-T",
        type=float,
        required=True,
        help="temperature of the run, K",
    )
    p.add_argument(
        "--format",
        choices=("auto", "csv", "lammps"),
        default="auto",
        help="log format (default: auto)",
    )
    p.add_argument(
        "--start",
        type=float,
        default=0.0,
        metavar="FS",
        help="discard frames before this time, fs (equilibration)",
    )
    p.add_argument(
        "--window",
        choices=("hann", "blackman", "gaussian", "none"),
        default="hann",
        help="lag window (default hann)",
    )
    p.add_argument(
        "--max-lag",
        type=float,
        default=None,
        metavar="FS",
        help="largest correlation lag, fs (default: the lag of --resolution)",
    )
    p.add_argument(
        "--resolution",
        type=float,
        default=None,
        metavar="CM1",
        help=f"spectral resolution (FWHM) to reach, cm^-1 (default {DEFAULT_RESOLUTION_CM1:g}, or the finest "
        "the log allows if it is shorter; refused if the log is too short for the value given); "
        "--resolution 0 with no --max-lag: the raw periodogram of the whole run",
    )
    p.add_argument(
        "--pad", type=int, default=4, help="zero padding factor of the FFT (default 4)"
    )
    p.add_argument(
        "--max-freq",
        type=float,
        default=None,
        metavar="CM1",
        help="upper end of the plot and CSV, cm^-1 (must be below the Nyquist frequency; default min(Nyquist, 4000))",
    )
    p.add_argument(
        "--prominence",
        type=float,
        default=0.05,
        help="peak prominence relative to the maximum (default 0.05)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PREFIX",
        help="output prefix (default: LOG without extension)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _upper(args, series) -> float:
    """Upper end (cm^-1) of the CSV and plot: ``--max-freq``, else min(Nyquist, 4000)."""
    from nequip_pol.analysis.spectra.correlation import nyquist_cm1

    return (
        args.max_freq
        if args.max_freq is not None
        else min(nyquist_cm1(series.dt_fs), DEFAULT_MAX_FREQ_CM1)
    )


def _smoothing(args, series):
    """(max_lag_fs, resolution_cm1, note) of a spectrum: the user's values, else the default resolution.

    The default is :data:`DEFAULT_RESOLUTION_CM1`, or the whole run when the log is too short
    for it (the finest resolution it allows); ``--resolution 0`` asks for the raw periodogram.
    """
    from nequip_pol.analysis.spectra.correlation import lag_resolution_cm1

    if args.max_lag is not None or (
        args.resolution is not None and args.resolution > 0
    ):
        return args.max_lag, args.resolution, ""
    if args.resolution == 0:
        return None, None, " (raw: lags up to the whole run)"
    finest = lag_resolution_cm1(args.window, series.duration_fs)
    if finest > DEFAULT_RESOLUTION_CM1:
        return (
            None,
            None,
            f" (the finest this {series.duration_fs / 1000:g} ps log allows; the default is "
            f"{DEFAULT_RESOLUTION_CM1:g} cm^-1)",
        )
    return (
        None,
        DEFAULT_RESOLUTION_CM1,
        " (default; --resolution or --max-lag to change)",
    )


def _check_spectral_inputs(args) -> None:
    """Files, numbers and outputs of ir/raman, before any import of numpy."""
    check_file(args.log, "log")
    if not args.temperature > 0:
        raise CommandError(f"--temperature must be > 0 K, got {args.temperature}")
    for name in ("resolution", "max_lag", "max_freq"):
        value = getattr(args, name)
        if value is not None and not value >= 0:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if args.pad < 1:
        raise CommandError(f"--pad must be >= 1, got {args.pad}")
    if not 0 <= args.prominence < 1:
        raise CommandError(f"--prominence must be in [0, 1), got {args.prominence}")


def _spectrum_of_log(args, outputs, spectrum, **options):
    """What ``ir`` and ``raman`` share before writing: ``(paths, series, result, note, upper)``.

    Checks the outputs (``PREFIX_<name>`` for each of ``outputs``), reads the log, chooses the
    smoothing (:func:`_smoothing`; ``note`` says which) and computes
    ``spectrum(series, temperature, ..., **options)`` with the shared options (lag, resolution,
    window, padding, Nyquist check, peak prominence, start); errors about the series name the
    log. ``upper``: the upper end of the CSV and plot, cm^-1 (:func:`_upper`).
    """
    from nequip_pol.analysis.timeseries import read_series

    paths = output_paths(output_prefix(args.output, args.log), outputs, args.force)
    series = read_series(args.log, args.format)
    max_lag, resolution, note = _about_log(args.log, lambda: _smoothing(args, series))
    result = _about_log(
        args.log,
        lambda: spectrum(
            series,
            args.temperature,
            max_lag_fs=max_lag,
            resolution_cm1=resolution,
            window=args.window,
            pad_factor=args.pad,
            max_frequency_cm1=args.max_freq,
            peak_prominence=args.prominence,
            start_fs=args.start,
            **options,
        ),
    )
    return paths, series, result, note, _upper(args, series)


def _about_log(log, body):
    """``body()``; a ``ValueError`` about the series (too short, Nyquist, ...) names the log file."""
    try:
        return body()
    except ValueError as exc:
        message = str(exc)
        raise CommandError(
            message if str(log) in message else f"{log}: {message}"
        ) from None


# ---------------------------------------------------------------------- ir
def add_ir(p: argparse.ArgumentParser) -> None:
    _add_spectral_options(p)
    p.add_argument(
        "--volume",
        type=float,
        default=None,
        help="cell volume, A^3 (default: from the log)",
    )
    p.add_argument(
        "--method",
        choices=("dipole", "derivative"),
        default="dipole",
        help="correlate dM (default) or dM/dt (eps' then by Kramers-Kronig)",
    )
    p.add_argument(
        "--quantum-correction",
        choices=("none", "harmonic"),
        default="none",
        help="harmonic quantum correction of the dipole power spectrum (column power)",
    )


def _run_ir(args) -> int:
    import numpy as np

    from nequip_pol.analysis.plots import plot_ir
    from nequip_pol.analysis.spectra.infrared import ir_spectrum

    paths, series, ir, note, upper = _spectrum_of_log(
        args,
        IR_OUTPUTS,
        ir_spectrum,
        volume=args.volume,
        method=args.method,
        quantum_correction=None
        if args.quantum_correction == "none"
        else args.quantum_correction,
    )
    cols, rows = ir.table(upper)
    head = [
        f"IR from {series.source}: T = {args.temperature} K, V = {ir.settings['volume']:.6g} A^3, "
        f"method {args.method}, window {args.window}, max lag {ir.settings['max_lag_fs']:.6g} fs, "
        f"resolution {ir.resolution_cm1:.4g} cm^-1",
        "eps_inf = "
        + (
            "I + <alpha>/(eps_vac V) from the logged alpha"
            if series.polarizability is not None
            else "I (no alpha in the log: eps' holds the ionic part only; eps'' is unaffected)"
        ),
        "eps0 (fluctuation, diagonal) = "
        + " ".join(f"{v:.6g}" for v in np.diag(ir.eps0_fluctuation)),
        "absorption = alpha*n in cm^-1; eps dimensionless; power in (e*A/fs)^2 fs",
    ]
    write_csv(paths["ir.csv"], cols, rows, head)
    write_csv(
        paths["ir_peaks.csv"],
        ["frequency_cm1", "frequency_thz", "absorption_cm1", "fwhm_cm1"],
        [
            [p["frequency_cm1"], p["frequency_thz"], p["height"], p["fwhm_cm1"]]
            for p in ir.peaks
        ]
        or np.zeros((0, 4)),
    )
    plot_ir(ir, paths["ir.png"], upper)
    print(
        f"{len(series)} frames, dt {series.dt_fs:g} fs, max lag {ir.settings['max_lag_fs']:.6g} fs, "
        f"resolution {ir.resolution_cm1:.3g} cm^-1{note}"
    )
    print("peaks (cm^-1): " + ", ".join(f"{p['frequency_cm1']:.1f}" for p in ir.peaks))
    print(
        "eps_0 from fluctuations (diagonal): "
        + " ".join(f"{v:.4f}" for v in np.diag(ir.eps0_fluctuation))
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


IR_OUTPUTS = ("ir.csv", "ir_peaks.csv", "ir.png")


def run_ir(args) -> int:
    return run_guarded("ir", _run_ir, args)


# ---------------------------------------------------------------------- raman
def add_raman(p: argparse.ArgumentParser) -> None:
    _add_spectral_options(p)
    p.add_argument(
        "--laser-nm",
        type=float,
        default=None,
        help="laser wavelength, nm: adds the ((nu_L - nu)/nu_L)^4 factor",
    )


def _run_raman(args) -> int:
    from nequip_pol.analysis.plots import plot_raman
    from nequip_pol.analysis.spectra.raman import raman_spectrum

    paths, series, r, note, upper = _spectrum_of_log(
        args, RAMAN_OUTPUTS, raman_spectrum, laser_nm=args.laser_nm
    )
    cols, rows = r.table(upper)
    write_csv(
        paths["raman.csv"],
        cols,
        rows,
        [
            f"Raman from {series.source}: T = {args.temperature} K, window {args.window}, resolution {r.resolution_cm1:.4g} cm^-1",
            "iso, aniso, vv, vh: classical spectral densities, (e*A^2/V)^2 fs; stokes_*: times x/(1-exp(-x)), x = h nu/kT",
        ],
    )
    rows = [
        ["iso", p["frequency_cm1"], p["frequency_thz"], p["height"], p["fwhm_cm1"]]
        for p in r.peaks_iso
    ]
    rows += [
        ["aniso", p["frequency_cm1"], p["frequency_thz"], p["height"], p["fwhm_cm1"]]
        for p in r.peaks_aniso
    ]
    with open(paths["raman_peaks.csv"], "w") as f:
        f.write("part,frequency_cm1,frequency_thz,height,fwhm_cm1\n")
        for row in rows:
            f.write(row[0] + "," + ",".join(f"{v:.8g}" for v in row[1:]) + "\n")
    plot_raman(r, paths["raman.png"], upper)
    print(
        f"{len(series)} frames, dt {series.dt_fs:g} fs, resolution {r.resolution_cm1:.3g} cm^-1{note}"
    )
    print(
        "isotropic peaks (cm^-1): "
        + ", ".join(f"{p['frequency_cm1']:.1f}" for p in r.peaks_iso)
    )
    print(
        "anisotropic peaks (cm^-1): "
        + ", ".join(f"{p['frequency_cm1']:.1f}" for p in r.peaks_aniso)
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


RAMAN_OUTPUTS = ("raman.csv", "raman_peaks.csv", "raman.png")


def run_raman(args) -> int:
    return run_guarded("raman", _run_raman, args)


# ---------------------------------------------------------------------- input checks
def _spectral_check(outputs):
    """The input check of a spectrum verb writing ``outputs``: its numbers and files
    (:func:`_check_spectral_inputs`), then its output paths."""

    def check(args) -> None:
        _check_spectral_inputs(args)
        output_paths(output_prefix(args.output, args.log), outputs, args.force)

    return check


_CHECKS = {"ir": _spectral_check(IR_OUTPUTS), "raman": _spectral_check(RAMAN_OUTPUTS)}

check_inputs = input_checker(_CHECKS)
