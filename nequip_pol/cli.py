"""``nequip-pol`` command line.

Subcommands live in :data:`SUBCOMMANDS`: ``name -> (help, add_arguments, run)``. To add one, write
``_add_<name>(parser)`` and ``_run_<name>(args) -> int`` and register them with
:func:`register` (or add an entry to the dict). Keep heavy imports (numpy, ase, torch, nequip)
inside the run functions so that ``nequip-pol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

# argparse and the standard library only (fast --help), like the analysis verbs' modules
from nequip_pol.lammps import commands as lammps_commands

#: name -> (one-line help, add_arguments(parser), run(args) -> exit code)
SUBCOMMANDS: dict[
    str,
    tuple[
        str,
        Callable[[argparse.ArgumentParser], None],
        Callable[[argparse.Namespace], int],
    ],
] = {}


def register(name: str, help: str, add_arguments, run) -> None:
    """Register a subcommand (later registrations replace earlier ones of the same name)."""
    SUBCOMMANDS[name] = (help, add_arguments, run)


def _input_error(verb: str, message: str) -> int:
    """Print ``nequip-pol VERB: error: MESSAGE`` (argparse's form) and return exit status 2."""
    print(f"nequip-pol {verb}: error: {message}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------------- parse-qe


def _add_parse_qe(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR_OR_XML",
        help="QE run folders or XML files (zero field + fields along x, y, z for each configuration)",
    )
    p.add_argument("-o", "--output", required=True, help="extended-XYZ file to write")
    p.add_argument(
        "--force", action="store_true", help="overwrite the output file if it exists"
    )
    p.add_argument(
        "--tol",
        type=float,
        default=1e-4,
        help="tolerance (Angstrom) on cell and positions for grouping runs (default 1e-4)",
    )
    p.add_argument(
        "--include-field-frames",
        action="store_true",
        help="also write one frame per finite-field run, with electric_field",
    )
    p.add_argument(
        "--no-fold",
        action="store_true",
        help="keep QE's raw polarization branch instead of folding P to the branch closest to zero",
    )


def _check_parse_qe(args: argparse.Namespace) -> int:
    """Fast checks before the (possibly long) parsing: the runs exist, the output is writable."""
    from pathlib import Path

    missing = [r for r in args.runs if not Path(r).exists()]
    if missing:
        return _input_error(
            "parse-qe",
            f"no such run folder or XML file: {', '.join(missing)}",
        )
    out = Path(args.output)
    if out.is_dir():
        return _input_error(
            "parse-qe",
            f"{out}: is a folder; give the path of the extended-XYZ file to write "
            f"(e.g. -o {out / 'frames.xyz'})",
        )
    if out.exists() and not args.force:
        return _input_error(
            "parse-qe",
            f"{out}: output file exists; not overwriting it (use --force)",
        )
    if args.tol <= 0:
        return _input_error("parse-qe", f"--tol must be positive, got {args.tol}")
    return 0


def _run_parse_qe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nequip_pol.io.qe import NequipPolIOError, parse_qe_runs, write_frames

    out = Path(args.output)
    try:
        frames = parse_qe_runs(
            args.runs,
            tol=args.tol,
            include_field_frames=args.include_field_frames,
            fold=not args.no_fold,
        )
        # OutputExistsError is a NequipPolIOError: a file that appeared during the parsing
        write_frames(frames, out, force=args.force)
    except NequipPolIOError as exc:  # bad input runs: a user error, exit status 2
        return _input_error("parse-qe", str(exc))
    print(f"wrote {len(frames)} frame(s) to {out}")
    return 0


# ----------------------------------------------------------------------------------- check-data


def _add_check_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="extended-XYZ files")
    p.add_argument(
        "--key-map",
        action="append",
        default=[],
        metavar="FILE_KEY=KEY",
        help="rename a key of the file to a canonical key (e.g. my_bec=born_effective_charges); repeatable",
    )


def _key_map(items: list[str]) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (item.split("=", 1) for item in items)}


def _check_check_data(args: argparse.Namespace) -> int:
    """Usage errors (exit 2) before reading anything: files that are not there, a bad
    --key-map. Problems found *in* the data are the verb's report (exit 1)."""
    from pathlib import Path

    for item in args.key_map:
        if "=" not in item or not all(part.strip() for part in item.split("=", 1)):
            return _input_error(
                "check-data", f"--key-map expects FILE_KEY=KEY, got {item!r}"
            )
    for f in args.files:
        path = Path(f)
        if path.is_dir():
            return _input_error(
                "check-data", f"{path}: is a folder, not an extended-XYZ file"
            )
        if not path.is_file():
            return _input_error("check-data", f"{path}: no such file")
    return 0


def _run_check_data(args: argparse.Namespace) -> int:
    from nequip_pol.io.check_data import check_dataset

    mapping = _key_map(args.key_map)
    rc = 0
    for f in args.files:
        rep = check_dataset(f, key_mapping=mapping)
        print(rep)
        if not rep.ok:
            rc = 1
    return rc


register(
    "parse-qe",
    "convert Quantum ESPRESSO finite-field runs to extended XYZ",
    _add_parse_qe,
    _run_parse_qe,
)
register(
    "check-data",
    "check an extended-XYZ dataset (keys, sum rule, symmetry, P branch)",
    _add_check_data,
    _run_check_data,
)


# ----------------------------------------------------------------------------------------- demo


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, got {text!r}") from None
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(
            f"must be positive (minutes of training wall time), got {text}"
        )
    return value


def _add_demo(p: argparse.ArgumentParser) -> None:
    # defined here, not in nequip_pol.demo: that module imports torch, and help stays fast. The
    # numbers are checked here, so that a bad one stops the verb before anything is written.
    p.add_argument(
        "out_dir",
        nargs="?",
        default="nequip-pol-demo",
        help="folder to write into (default: nequip-pol-demo); it must not exist or be empty",
    )
    p.add_argument(
        "--epochs",
        type=_at_least_one,
        default=None,
        help="training epochs, at least 1 (default: the shipped schedule; fewer gives a quick, "
        "under-trained run)",
    )
    p.add_argument(
        "--max-minutes",
        type=_positive_minutes,
        default=120.0,
        help="safety limit on the training wall time in minutes, > 0 (default 120; a normal run takes "
        "a few minutes)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the generated data (default 0)"
    )
    p.add_argument(
        "--force", action="store_true", help="write into an existing non-empty folder"
    )


def _run_demo(args: argparse.Namespace) -> int:
    from nequip_pol.demo import main as demo_main

    return demo_main(args)


register(
    "demo",
    "the whole method on the shipped analytic material: generate, train, evaluate, plot",
    _add_demo,
    _run_demo,
)


# ------------------------------------------------------------------------------------- analysis
# Every analysis verb lives in nequip_pol/analysis/ (spectra_commands.py: ir, raman;
# phonon_commands.py: phonons; dielectric_commands.py: dielectric; switching_commands.py:
# hysteresis, coercive), sharing one model loader, one structure reader and one exit status
# (analysis/command_common.py). Those modules import only argparse at module level.

#: verb -> (module in nequip_pol.analysis, one-line help)
ANALYSIS_VERBS = {
    "ir": (
        "spectra_commands",
        "IR absorption and eps(omega) from a P(t) log (dipole autocorrelation, fluctuation-dissipation)",
    ),
    "raman": (
        "spectra_commands",
        "isotropic and anisotropic Raman spectra from an alpha(t) log",
    ),
    "dielectric": (
        "dielectric_commands",
        "eps_inf and eps_0 of a structure by the harmonic, field-response and MD-fluctuation "
        "routes",
    ),
    "phonons": (
        "phonon_commands",
        "Gamma phonons (phonopy), IR oscillator strengths and LO-TO splitting of a structure",
    ),
    "hysteresis": (
        "switching_commands",
        "P-E hysteresis loops under an oscillating field: Ec, Pr, loop area vs "
        "temperature and period",
    ),
    "coercive": (
        "switching_commands",
        "zero-temperature intrinsic coercive field of a polar structure (continuation "
        "under a growing opposite field)",
    ),
}
#: verb -> check(args) -> exit code: run by main() before the nequip registration and the verb,
#: so that bad input is answered at once (no torch import)
INPUT_CHECKS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _analysis_verb(name: str):
    import importlib

    module_name = f"nequip_pol.analysis.{ANALYSIS_VERBS[name][0]}"

    def add(p: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(module_name), f"add_{name}")(p)

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module_name), f"run_{name}")(args)

    def check(args: argparse.Namespace) -> int:
        return importlib.import_module(module_name).check_inputs(name, args)

    return add, run, check


for _name, (_module, _help) in ANALYSIS_VERBS.items():
    _add, _run, INPUT_CHECKS[_name] = _analysis_verb(_name)
    register(_name, _help, _add, _run)


register(
    "lammps", lammps_commands.HELP, lammps_commands.add_arguments, lammps_commands.run
)
INPUT_CHECKS.update(
    {
        "parse-qe": _check_parse_qe,
        "check-data": _check_check_data,
        "lammps": lammps_commands.check_inputs,
    }
)
#: verbs that never touch a nequip model (no key or compile-target registration needed)
WITHOUT_NEQUIP = {"lammps"}


# ----------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nequip-pol", description="nequip-pol tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_, add_arguments, run) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add_arguments(sp)
        sp.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check = INPUT_CHECKS.get(args.command)
    if check is not None and SUBCOMMANDS[args.command][2] is args._run:
        code = check(args)
        if code:
            return code
    if args.command not in WITHOUT_NEQUIP:
        # the console script imports the package without nequip (fast --help); register keys
        # and compile targets now, as an import through nequip would have
        from nequip_pol import _register_with_nequip

        _register_with_nequip()
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
