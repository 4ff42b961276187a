"""``nequip-pol dielectric``: eps_inf and eps_0 of a relaxed structure by the harmonic, field-response and MD routes.

The routes (:mod:`~nequip_pol.analysis.dielectric`): ``harmonic`` (Gamma phonons and Born
charges, :mod:`~nequip_pol.analysis.phonons`), ``field`` (the response of the relaxed structure
to a finite field) and ``md`` (polarization fluctuations of an NVT run). MODEL, STRUCTURE, their
options and the relaxation are those of ``phonons``
(:mod:`~nequip_pol.cli.phonons`).

Registered in :mod:`nequip_pol.cli` (:data:`~nequip_pol.cli.VERBS`); imports, input
checks (:func:`check_inputs`), errors and exit status as for every analysis verb
(:mod:`~nequip_pol.cli.common`). Outputs are
``PREFIX_dielectric.csv``, ``PREFIX_dielectric.png``, ``PREFIX_relaxed.extxyz`` and, per route,
``PREFIX_modes.csv`` and ``PREFIX_md_polarization.csv`` (PREFIX: ``-o``, default the structure
file without its extension). Units: field V/A, temperature K, time fs, friction 1/fs, V in A^3.
"""

from __future__ import annotations

import argparse

from .common import (
    REFERENCE_MATERIALS,
    CommandError,
    check_model,
    input_checker,
    load_calculator,
    output_paths,
    output_prefix,
    run_guarded,
    write_csv,
)
from .phonons import (
    add_structure_arguments,
    check_structure_arguments,
    mode_rows,
    relaxed_structure,
    system_size,  # noqa: F401  (the thread rule's size: nequip_pol.cli.SYSTEM_SIZES)
)

__all__ = ["add_dielectric", "run_dielectric", "check_inputs"]

# ---------------------------------------------------------------------- dielectric
ROUTES = ("harmonic", "field", "md")


def add_dielectric(p: argparse.ArgumentParser) -> None:
    add_structure_arguments(p)
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

    from nequip_pol.analysis.dielectric import (
        eps0_field_response,
        eps0_fluctuations,
        eps0_harmonic,
        eps_inf_from_polarizability,
        sample_polarization_nvt,
    )
    from nequip_pol.analysis.phonons import phonopy_gamma
    from nequip_pol.analysis.plots import plot_dielectric

    routes = _routes(args)
    paths = output_paths(
        output_prefix(args.output, args.structure),
        _dielectric_outputs(routes),
        args.force,
    )
    atoms, calc, report = relaxed_structure(args, "dielectric")
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
        cols, rows = mode_rows(ph)
        write_csv(
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
    from nequip_pol.integrations.model_arguments import ModelArgumentError

    try:
        return load_calculator(model, args.device, modifiers=["disable_born_charges"])
    except ModelArgumentError as exc:
        report(f"MD with the full model (could not drop the Born charges: {exc})")
        return calc


def run_dielectric(args) -> int:
    return run_guarded("dielectric", _run_dielectric, args)


# ---------------------------------------------------------------------- input checks
def _check_dielectric(args) -> None:
    check_structure_arguments(args)
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
    output_paths(
        output_prefix(args.output, args.structure),
        _dielectric_outputs(routes),
        args.force,
    )


_CHECKS = {"dielectric": _check_dielectric}

check_inputs = input_checker(_CHECKS)
