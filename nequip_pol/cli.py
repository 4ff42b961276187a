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

#: name -> (one-line help, add_arguments(parser), run(args) -> exit code)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register(name: str, help: str, add_arguments, run) -> None:
    """Register a subcommand (later registrations replace earlier ones of the same name)."""
    SUBCOMMANDS[name] = (help, add_arguments, run)


# ------------------------------------------------------------------------------------- parse-qe


def _add_parse_qe(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_XML",
                   help="QE run folders or XML files (zero field + fields along x, y, z for each configuration)")
    p.add_argument("-o", "--output", required=True, help="extended-XYZ file to write")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="tolerance (Angstrom) on cell and positions for grouping runs (default 1e-4)")
    p.add_argument("--include-field-frames", action="store_true",
                   help="also write one frame per finite-field run, with electric_field")
    p.add_argument("--no-fold", action="store_true",
                   help="keep QE's raw polarization branch instead of folding P to the branch closest to zero")


def _run_parse_qe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nequip_pol.io.qe import NequipPolIOError, OutputExistsError, parse_qe_runs, write_frames

    out = Path(args.output)
    if out.exists() and not args.force:  # fail before the (possibly long) parsing
        print(f"nequip-pol parse-qe: error: {out}: output file exists; not overwriting it (use --force)", file=sys.stderr)
        return 2
    try:
        frames = parse_qe_runs(args.runs, tol=args.tol, include_field_frames=args.include_field_frames,
                               fold=not args.no_fold)
        write_frames(frames, out, force=args.force)
    except OutputExistsError as exc:
        print(f"nequip-pol parse-qe: error: {exc}", file=sys.stderr)
        return 2
    except NequipPolIOError as exc:
        print(f"nequip-pol parse-qe: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(frames)} frame(s) to {out}")
    return 0


# ----------------------------------------------------------------------------------- check-data


def _add_check_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="extended-XYZ files")
    p.add_argument("--key-map", action="append", default=[], metavar="FILE_KEY=KEY",
                   help="rename a key of the file to a canonical key (e.g. my_bec=born_effective_charges); repeatable")


def _run_check_data(args: argparse.Namespace) -> int:
    from nequip_pol.io.check_data import check_dataset

    mapping = {}
    for item in args.key_map:
        if "=" not in item:
            print(f"nequip-pol check-data: error: --key-map expects FILE_KEY=KEY, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        mapping[k.strip()] = v.strip()
    rc = 0
    for f in args.files:
        rep = check_dataset(f, key_mapping=mapping)
        print(rep)
        if not rep.ok:
            rc = 1
    return rc


register("parse-qe", "convert Quantum ESPRESSO finite-field runs to extended XYZ", _add_parse_qe, _run_parse_qe)
register("check-data", "check an extended-XYZ dataset (keys, sum rule, symmetry, P branch)", _add_check_data, _run_check_data)


# ----------------------------------------------------------------------------------------- demo


def _add_demo(p: argparse.ArgumentParser) -> None:
    from nequip_pol.reference.demo import add_arguments

    add_arguments(p)


def _run_demo(args: argparse.Namespace) -> int:
    from nequip_pol.reference.demo import main as demo_main

    return demo_main(args)


register("demo", "the whole method on the shipped analytic material: generate, train, evaluate, plot", _add_demo, _run_demo)


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
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
