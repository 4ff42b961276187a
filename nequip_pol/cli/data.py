"""``nequip-pol parse-qe | check-data``: training data from Quantum ESPRESSO, and its checks.

``parse-qe`` converts finite-field QE runs to extended XYZ (:mod:`nequip_pol.io.qe`);
``check-data`` reports what is wrong with an extended-XYZ dataset
(:mod:`nequip_pol.io.check_data`). Only ``argparse`` and the standard library are imported at
module level.
"""

from __future__ import annotations

import argparse

from .common import input_error

__all__ = [
    "add_parse_qe",
    "run_parse_qe",
    "add_check_data",
    "run_check_data",
    "check_inputs",
]


# ------------------------------------------------------------------------------------- parse-qe


def add_parse_qe(p: argparse.ArgumentParser) -> None:
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
        return input_error(
            "parse-qe",
            f"no such run folder or XML file: {', '.join(missing)}",
        )
    out = Path(args.output)
    if out.is_dir():
        return input_error(
            "parse-qe",
            f"{out}: is a folder; give the path of the extended-XYZ file to write "
            f"(e.g. -o {out / 'frames.xyz'})",
        )
    if out.exists() and not args.force:
        return input_error(
            "parse-qe",
            f"{out}: output file exists; not overwriting it (use --force)",
        )
    if args.tol <= 0:
        return input_error("parse-qe", f"--tol must be positive, got {args.tol}")
    return 0


def run_parse_qe(args: argparse.Namespace) -> int:
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
        return input_error("parse-qe", str(exc))
    print(f"wrote {len(frames)} frame(s) to {out}")
    return 0


# ----------------------------------------------------------------------------------- check-data


def add_check_data(p: argparse.ArgumentParser) -> None:
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
            return input_error(
                "check-data", f"--key-map expects FILE_KEY=KEY, got {item!r}"
            )
    for f in args.files:
        path = Path(f)
        if path.is_dir():
            return input_error(
                "check-data", f"{path}: is a folder, not an extended-XYZ file"
            )
        if not path.is_file():
            return input_error("check-data", f"{path}: no such file")
    return 0


def run_check_data(args: argparse.Namespace) -> int:
    from nequip_pol.io.check_data import check_dataset

    mapping = _key_map(args.key_map)
    rc = 0
    for f in args.files:
        rep = check_dataset(f, key_mapping=mapping)
        print(rep)
        if not rep.ok:
            rc = 1
    return rc


# ---------------------------------------------------------------------------------- input checks
_CHECKS = {"parse-qe": _check_parse_qe, "check-data": _check_check_data}


def check_inputs(verb: str, args: argparse.Namespace) -> int:
    """Check VERB's files and numbers before any heavy import; 0, or 2 after the error line."""
    return _CHECKS[verb](args)
