"""``nequip-pol ir | raman | dielectric | phonons``: argument parsers, input checks and run functions.

Registered in :mod:`nequip_pol.cli` (with the switching verbs of
:mod:`~nequip_pol.analysis.switching_commands`). Only ``argparse`` and the standard library are
imported at module level (``--help`` stays fast); numpy, ASE, torch and phonopy are imported
inside the run functions, after :func:`check_inputs` has checked the files, numbers and outputs.

Conventions of every verb (:mod:`~nequip_pol.analysis.command_common`): all output paths are
checked *before* any work (an existing file stops the command unless ``--force``), bad input
stops it with ``nequip-pol VERB: error: ...`` and exit status 2, nothing is written then.
Outputs are ``PREFIX_<what>.csv`` and ``PREFIX_<what>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .command_common import (
    REFERENCE_MATERIALS,
    CommandError,
    check_file,
    check_model,
    load_calculator,
    output_paths,
    progress_printer,
    read_structure,
    run_guarded,
    write_csv,
)

__all__ = [
    "load_calculator",
    "check_inputs",
    "DEFAULT_RESOLUTION_CM1",
    "DEFAULT_MAX_FREQ_CM1",
]

#: the old MODEL name of the exact paraelectric material (now ``reference:paraelectric``)
ANALYTIC_MODEL = "analytic"

_outputs = output_paths
_write_csv = write_csv
_progress = progress_printer


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


#: default upper end of the spectra written (CSV, plot) when --max-freq is not given, cm^-1
DEFAULT_MAX_FREQ_CM1 = 4000.0
#: default spectral resolution (FWHM of the lag window's line shape) of ir and raman, cm^-1: the
#: raw periodogram of a long run is noise-dominated (one spurious peak per few grid points);
#: averaging over lags up to ~1/resolution keeps peaks a few cm^-1 apart resolved
DEFAULT_RESOLUTION_CM1 = 8.0


def _upper(args, series) -> float:
    from ..units import THZ_TO_CM1

    nyquist_cm1 = 1000.0 / (2.0 * series.dt_fs) * THZ_TO_CM1
    return (
        args.max_freq
        if args.max_freq is not None
        else min(nyquist_cm1, DEFAULT_MAX_FREQ_CM1)
    )


def _smoothing(args, series):
    """(max_lag_fs, resolution_cm1, note) of a spectrum: the user's values, else the default resolution.

    The default is :data:`DEFAULT_RESOLUTION_CM1`, or the whole run when the log is too short
    for it (the finest resolution it allows); ``--resolution 0`` asks for the raw periodogram.
    """
    from ..units import THZ_TO_CM1
    from .spectra import window_fwhm

    if args.max_lag is not None or (
        args.resolution is not None and args.resolution > 0
    ):
        return args.max_lag, args.resolution, ""
    if args.resolution == 0:
        return None, None, " (raw: lags up to the whole run)"
    finest = window_fwhm(args.window, series.duration_fs) * 1000.0 * THZ_TO_CM1
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


def _about_log(log, body):
    """``body()``; a ``ValueError`` about the series (too short, Nyquist, ...) names the log file."""
    try:
        return body()
    except ValueError as exc:
        message = str(exc)
        raise CommandError(
            message if str(log) in message else f"{log}: {message}"
        ) from None


def _prefix(args, default_path) -> str:
    return args.output if args.output else str(Path(default_path).with_suffix(""))


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

    from .plots import plot_ir
    from .spectra import ir_spectrum
    from .timeseries import read_series

    prefix = _prefix(args, args.log)
    paths = _outputs(prefix, IR_OUTPUTS, args.force)
    series = read_series(args.log, args.format)
    max_lag, resolution, note = _about_log(args.log, lambda: _smoothing(args, series))
    ir = _about_log(
        args.log,
        lambda: ir_spectrum(
            series,
            args.temperature,
            volume=args.volume,
            method=args.method,
            max_lag_fs=max_lag,
            resolution_cm1=resolution,
            window=args.window,
            pad_factor=args.pad,
            quantum_correction=None
            if args.quantum_correction == "none"
            else args.quantum_correction,
            max_frequency_cm1=args.max_freq,
            peak_prominence=args.prominence,
            start_fs=args.start,
        ),
    )
    upper = _upper(args, series)
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
    _write_csv(paths["ir.csv"], cols, rows, head)
    _write_csv(
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
    from .plots import plot_raman
    from .spectra import raman_spectrum
    from .timeseries import read_series

    prefix = _prefix(args, args.log)
    paths = _outputs(prefix, RAMAN_OUTPUTS, args.force)
    series = read_series(args.log, args.format)
    max_lag, resolution, note = _about_log(args.log, lambda: _smoothing(args, series))
    r = _about_log(
        args.log,
        lambda: raman_spectrum(
            series,
            args.temperature,
            max_lag_fs=max_lag,
            resolution_cm1=resolution,
            window=args.window,
            pad_factor=args.pad,
            laser_nm=args.laser_nm,
            max_frequency_cm1=args.max_freq,
            peak_prominence=args.prominence,
            start_fs=args.start,
        ),
    )
    upper = _upper(args, series)
    cols, rows = r.table(upper)
    _write_csv(
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


# ---------------------------------------------------------------------- model + structure
def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="compiled model (*.nequip.pt2, target nequip_pol_ase), checkpoint (*.ckpt) or package "
        "(*.nequip.zip), a shipped model's name (sio2, batio3), or "
        f"{' / '.join(REFERENCE_MATERIALS)} for the exact analytic materials "
        f"('{ANALYTIC_MODEL}': the old name of reference:paraelectric)",
    )
    p.add_argument(
        "structure",
        metavar="STRUCTURE",
        help="structure file readable by ASE (first frame unless --index)",
    )
    p.add_argument(
        "--index", type=int, default=0, help="frame of STRUCTURE (default 0)"
    )
    p.add_argument(
        "--device", default="cpu", help="torch device of the model (default cpu)"
    )
    p.add_argument(
        "--no-relax",
        action="store_true",
        help="do not relax the ions first (fixed cell)",
    )
    p.add_argument(
        "--fmax",
        type=float,
        default=None,
        help="force convergence of the relaxations, eV/A (default: from the model's precision, printed: "
        "1e-8 for float64 models and 'analytic', 30 x the measured force noise for float32 models)",
    )
    p.add_argument(
        "--displacement",
        type=float,
        default=0.01,
        help="phonopy finite displacement, A (default 0.01)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PREFIX",
        help="output prefix (default: STRUCTURE without extension)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _prepare(args, verb):
    import numpy as np

    from .dielectric import relax_positions

    report = _progress(verb)
    atoms = read_structure(args.structure, args.index)
    calc = load_calculator(args.model, args.device)
    report(
        f"{len(atoms)} atoms ({atoms.get_chemical_formula()}), V = {atoms.get_volume():.4f} A^3, model {args.model}"
    )
    if not args.no_relax:
        atoms = relax_positions(
            atoms, calc, field=np.zeros(3), fmax=args.fmax, progress=report
        )
        report(
            f"relaxed at zero field (fixed cell): {atoms.info['relax_newton_steps']} Newton steps, "
            f"max |F| = {atoms.info['relax_fmax']:.2e} eV/A"
        )
    return atoms, calc, report


def _mode_rows(phonons):
    import numpy as np

    rows = []
    for r in phonons.mode_table():
        s = r.get("strength", np.zeros((3, 3)))
        de = r.get("delta_eps", np.zeros((3, 3)))
        rows.append(
            [
                r["frequency_cm1"],
                r["frequency_thz"],
                r["degeneracy"],
                r.get("intensity", 0.0),
                *np.diag(s),
                s[0, 1],
                s[0, 2],
                s[1, 2],
                *np.diag(de),
            ]
        )
    cols = [
        "frequency_cm1",
        "frequency_thz",
        "degeneracy",
        "intensity_e2_per_amu",
        "S_xx",
        "S_yy",
        "S_zz",
        "S_xy",
        "S_xz",
        "S_yz",
        "delta_eps_xx",
        "delta_eps_yy",
        "delta_eps_zz",
    ]
    return cols, rows


# ---------------------------------------------------------------------- phonons
def add_phonons(p: argparse.ArgumentParser) -> None:
    _add_model_options(p)
    p.add_argument(
        "--directions",
        default="1,0,0;0,1,0;0,0,1",
        metavar="Q1;Q2;...",
        help="Cartesian q directions for the LO-TO splitting, e.g. '0,0,1;1,0,0' (default x;y;z)",
    )


def _parse_directions_text(text: str):
    """``'x,y,z;x,y,z'`` -> list of 3-lists of floats (no numpy); ``CommandError`` if malformed."""
    try:
        dirs = [
            [float(v) for v in item.split(",")]
            for item in text.split(";")
            if item.strip()
        ]
    except ValueError:
        raise CommandError(
            f"--directions: expected 'x,y,z;x,y,z;...', got {text!r}"
        ) from None
    if not dirs or any(len(d) != 3 or not any(d) for d in dirs):
        raise CommandError(
            f"--directions: each direction needs 3 numbers, not all zero; got {text!r}"
        )
    return dirs


def _parse_directions(text: str):
    import numpy as np

    return np.array(_parse_directions_text(text))


def _run_phonons(args) -> int:
    from .phonons import lo_to_splitting, phonopy_gamma
    from .plots import plot_phonons

    paths = _outputs(_prefix(args, args.structure), PHONON_OUTPUTS, args.force)
    directions = _parse_directions(args.directions)
    atoms, calc, report = _prepare(args, "phonons")
    ph = phonopy_gamma(
        atoms, calc, displacement=args.displacement, born_charges=True, progress=report
    )
    ph.check_stable()
    loto = lo_to_splitting(ph, directions)
    cols, rows = _mode_rows(ph)
    _write_csv(
        paths["phonons.csv"],
        cols,
        rows,
        [
            f"Gamma modes of {args.structure} with {args.model} (phonopy, displacement {args.displacement} A), optical modes, "
            "degenerate sets summed; S = oscillator strength (e^2/amu), delta_eps = S/(eps_vac V omega^2)"
        ],
    )
    with open(paths["loto.csv"], "w") as f:
        f.write("qx,qy,qz,to_cm1,lo_cm1,splitting_cm1,to_intensity_e2_per_amu\n")
        for row in loto.splitting_table(ph):
            q = row["direction"]
            f.write(
                f"{q[0]:.6g},{q[1]:.6g},{q[2]:.6g},{row['to_cm1']:.6f},{row['lo_cm1']:.6f},"
                f"{row['splitting_cm1']:.6f},{row['intensity']:.6g}\n"
            )
    plot_phonons(ph, paths["phonons.png"], loto)
    print("optical modes (cm^-1, degeneracy, oscillator strength tr S in e^2/amu):")
    for r in ph.mode_table():
        print(f"  {r['frequency_cm1']:9.2f}  x{r['degeneracy']}  {r['intensity']:.4f}")
    print("largest LO-TO splittings (cm^-1):")
    for row in loto.splitting_table(ph, top=6):
        q = row["direction"]
        print(
            f"  q = ({q[0]:.2f},{q[1]:.2f},{q[2]:.2f}): TO {row['to_cm1']:.1f} -> LO {row['lo_cm1']:.1f} ({row['splitting_cm1']:+.1f})"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


PHONON_OUTPUTS = ("phonons.csv", "loto.csv", "phonons.png")


def run_phonons(args) -> int:
    return run_guarded("phonons", _run_phonons, args)


# ---------------------------------------------------------------------- dielectric
ROUTES = ("harmonic", "field", "md")


def add_dielectric(p: argparse.ArgumentParser) -> None:
    _add_model_options(p)
    p.add_argument(
        "--routes",
        default="harmonic,field",
        help="comma-separated subset of harmonic,field,md (default harmonic,field)",
    )
    p.add_argument(
        "--field-step",
        type=float,
        default=1e-3,
        help="field step h of the field route, V/A (default 1e-3)",
    )
    p.add_argument(
        "--temperature",
        "-T",
        type=float,
        default=100.0,
        help="md route: temperature, K (default 100)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=20000,
        help="md route: NVT steps recorded (default 20000)",
    )
    p.add_argument(
        "--equilibration",
        type=int,
        default=1000,
        help="md route: steps before recording (default 1000)",
    )
    p.add_argument(
        "--dt", type=float, default=1.0, help="md route: time step, fs (default 1)"
    )
    p.add_argument(
        "--friction",
        type=float,
        default=0.01,
        help="md route: Langevin friction, 1/fs (default 0.01)",
    )
    p.add_argument("--seed", type=int, default=0, help="md route: random seed")
    p.add_argument(
        "--md-polarizability",
        action="store_true",
        help="md route: also record alpha(t) in PREFIX_md_polarization.csv (for nequip-pol raman)",
    )


def _routes(args):
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = [r for r in routes if r not in ROUTES]
    if unknown or not routes:
        raise CommandError(
            f"--routes: unknown route(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ROUTES)}"
        )
    return routes


def _dielectric_outputs(routes):
    names = ["dielectric.csv", "dielectric.png", "relaxed.extxyz"]
    if "harmonic" in routes:
        names.append("modes.csv")
    if "md" in routes:
        names.append("md_polarization.csv")
    return names


def _run_dielectric(args) -> int:
    import numpy as np

    from .dielectric import (
        eps0_field_response,
        eps0_fluctuations,
        eps0_harmonic,
        eps_inf_from_polarizability,
        sample_polarization_nvt,
    )
    from .phonons import phonopy_gamma
    from .plots import plot_dielectric

    routes = _routes(args)
    paths = _outputs(
        _prefix(args, args.structure), _dielectric_outputs(routes), args.force
    )
    atoms, calc, report = _prepare(args, "dielectric")
    volume = atoms.get_volume()
    work = atoms.copy()
    work.calc = calc
    calc.set_field(np.zeros(3))
    try:
        alpha = np.asarray(calc.get_property("polarizability", work), dtype=float)
    except Exception as exc:
        raise CommandError(
            f"the model gives no polarizability ({type(exc).__name__}: {exc}); eps_inf needs it"
        ) from None
    eps_inf = eps_inf_from_polarizability(alpha, volume)
    report("eps_inf (diagonal) = " + " ".join(f"{v:.5f}" for v in np.diag(eps_inf)))
    results = {}
    hessian = None
    ph = None
    md_series = None
    for route in routes:
        if route == "harmonic":
            ph = phonopy_gamma(
                atoms,
                calc,
                displacement=args.displacement,
                born_charges=True,
                progress=report,
            )
            results["harmonic"] = eps0_harmonic(ph, eps_inf)
            hessian = ph.force_constants
        elif route == "field":
            results["field"] = eps0_field_response(
                atoms,
                calc,
                field_step=args.field_step,
                fmax=args.fmax,
                hessian=hessian,
                progress=report,
            )
        else:
            md_series = sample_polarization_nvt(
                atoms,
                _md_calculator(args, calc, report),
                temperature=args.temperature,
                steps=args.steps,
                timestep_fs=args.dt,
                friction_per_fs=args.friction,
                seed=args.seed,
                equilibration_steps=args.equilibration,
                progress=report,
                polarizability=args.md_polarizability,
                progress_every=max(1, args.steps // 10),
            )
            results["md"] = eps0_fluctuations(
                md_series, args.temperature, eps_inf, volume=volume
            )
        report(
            f"{route}: eps_0 (diagonal) = "
            + " ".join(f"{v:.5f}" for v in np.diag(results[route].eps0))
        )
    # all computed: now write
    import ase.io

    ase.io.write(paths["relaxed.extxyz"], atoms, format="extxyz")
    with open(paths["dielectric.csv"], "w") as f:
        f.write(
            f"# eps_0 and eps_inf of {args.structure} with {args.model}; V = {volume:.6f} A^3; "
            f"eps_inf = I + alpha/(eps_vac V), eps_vac = 0.005526349406 e/(V*A)\n"
        )
        f.write("route,component,eps0,eps0_error,eps_inf\n")
        for route, r in results.items():
            for a in range(3):
                for b in range(3):
                    err = "" if r.error is None else f"{r.error[a, b]:.6g}"
                    f.write(
                        f"{route},{'xyz'[a]}{'xyz'[b]},{r.eps0[a, b]:.10g},{err},{r.eps_inf[a, b]:.10g}\n"
                    )
    if ph is not None:
        cols, rows = _mode_rows(ph)
        _write_csv(
            paths["modes.csv"],
            cols,
            rows,
            ["Gamma optical modes (phonopy), degenerate sets summed"],
        )
    if md_series is not None:
        md_series.write_csv(paths["md_polarization.csv"], force=True)
    plot_dielectric(
        {k if k != "md" else "fluctuations (MD)": v for k, v in results.items()},
        paths["dielectric.png"],
    )
    print("eps_inf: " + np.array2string(eps_inf, precision=5))
    for route, r in results.items():
        print(
            f"eps_0 ({route}):\n"
            + np.array2string(r.eps0, precision=5)
            + (
                ""
                if r.error is None
                else "\n  +- " + np.array2string(np.diag(r.error), precision=5)
            )
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _md_calculator(args, calc, report):
    """For MD only E, F, P (and alpha) are needed: an eager model is reloaded without Born charges (~2x cheaper)."""
    model = check_model(args.model)
    if model in REFERENCE_MATERIALS or model.endswith(".pt2"):
        return calc  # the exact calculator computes Z* only on request; compile with disable_born_charges for MD
    try:
        return load_calculator(model, args.device, modifiers=["disable_born_charges"])
    except CommandError as exc:
        report(f"MD with the full model (could not drop the Born charges: {exc})")
        return calc


def run_dielectric(args) -> int:
    return run_guarded("dielectric", _run_dielectric, args)


# ---------------------------------------------------------------------- input checks
def _check_structure_verb(args) -> None:
    args.model = check_model(
        args.model
    )  # canonical name (a deprecated one is noted once, here)
    check_file(args.structure, "structure")
    for name in ("displacement", "fmax"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise CommandError(f"--{name} must be > 0, got {value}")


def _check_phonons(args) -> None:
    _check_structure_verb(args)
    _parse_directions_text(args.directions)
    output_paths(_prefix(args, args.structure), PHONON_OUTPUTS, args.force)


def _check_dielectric(args) -> None:
    _check_structure_verb(args)
    routes = _routes(args)
    if "md" in routes:
        for name in ("temperature", "dt", "friction"):
            if not getattr(args, name) > 0:
                raise CommandError(f"--{name} must be > 0, got {getattr(args, name)}")
        if args.steps < 10 or args.equilibration < 0:
            raise CommandError(
                f"--steps must be >= 10 and --equilibration >= 0, got {args.steps}, {args.equilibration}"
            )
    if not args.field_step > 0:
        raise CommandError(f"--field-step must be > 0 V/A, got {args.field_step}")
    output_paths(_prefix(args, args.structure), _dielectric_outputs(routes), args.force)


_CHECKS = {
    "ir": lambda args: (
        _check_spectral_inputs(args),
        output_paths(_prefix(args, args.log), IR_OUTPUTS, args.force),
    ),
    "raman": lambda args: (
        _check_spectral_inputs(args),
        output_paths(_prefix(args, args.log), RAMAN_OUTPUTS, args.force),
    ),
    "phonons": _check_phonons,
    "dielectric": _check_dielectric,
}


def check_inputs(verb: str, args) -> int:
    """Check VERB's files, numbers and outputs without heavy imports; 0, or 2 after the error line."""

    def body(a) -> int:
        _CHECKS[verb](a)
        return 0

    return run_guarded(verb, body, args)
