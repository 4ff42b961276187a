"""``nequip-pol parse-qe | parse-qe-ph | parse-vasp | check-data | align-branches``: training
data, and its checks.

``parse-qe`` converts finite-field QE runs to extended XYZ (:mod:`nequip_pol.io.qe`),
``parse-qe-ph`` QE linear-response runs (pw.x + ph.x, :mod:`nequip_pol.io.qe_ph`), ``parse-vasp``
VASP runs (:mod:`nequip_pol.io.vasp`), all three through one writer
(:func:`nequip_pol.io.qe.write_frames`); ``check-data`` reports what is wrong with an
extended-XYZ dataset (:mod:`nequip_pol.io.check_data`); ``align-branches`` moves P labels by
whole quanta to one consistent branch (:mod:`nequip_pol.data.branch_alignment`). Only
``argparse`` and the standard library are imported at module level.
"""

from __future__ import annotations

import argparse

from .common import input_error

__all__ = [
    "add_parse_qe",
    "run_parse_qe",
    "add_parse_vasp",
    "run_parse_vasp",
    "add_parse_qe_ph",
    "run_parse_qe_ph",
    "add_check_data",
    "run_check_data",
    "add_align_branches",
    "run_align_branches",
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


def _check_runs_and_output(verb: str, args: argparse.Namespace, what: str) -> int:
    """Fast checks before the (possibly long) parsing: the runs exist, the output is writable."""
    from pathlib import Path

    missing = [r for r in args.runs if not Path(r).exists()]
    if missing:
        return input_error(verb, f"no such {what}: {', '.join(missing)}")
    out = Path(args.output)
    if out.is_dir():
        return input_error(
            verb,
            f"{out}: is a folder; give the path of the extended-XYZ file to write "
            f"(e.g. -o {out / 'frames.xyz'})",
        )
    if out.exists() and not args.force:
        return input_error(
            verb, f"{out}: output file exists; not overwriting it (use --force)"
        )
    return 0


def _check_parse_qe(args: argparse.Namespace) -> int:
    code = _check_runs_and_output("parse-qe", args, "run folder or XML file")
    if code:
        return code
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


# ---------------------------------------------------------------------- parse-vasp, parse-qe-ph


def _add_lr_arguments(p: argparse.ArgumentParser, runs_help: str) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help=runs_help)
    p.add_argument("-o", "--output", required=True, help="extended-XYZ file to write")
    p.add_argument(
        "--force", action="store_true", help="overwrite the output file if it exists"
    )
    p.add_argument(
        "--no-fold",
        action="store_true",
        help="keep the code's polarization branch instead of folding P to the branch closest "
        "to zero",
    )


def add_parse_vasp(p: argparse.ArgumentParser) -> None:
    _add_lr_arguments(
        p,
        "VASP run folders (OUTCAR and/or vasprun.xml, also .gz/.bz2/.xz; one frame each), "
        "such files, or folders of run folders",
    )


def add_parse_qe_ph(p: argparse.ArgumentParser) -> None:
    _add_lr_arguments(
        p,
        "one folder per configuration with the pw.x SCF output and the ph.x output (epsil at "
        "q = 0) or its dyn file, optionally lberry outputs (gdir 1, 2, 3); or folders of such "
        "folders",
    )


_LABELS = (
    ("total_energy", "E"),
    ("forces", "F"),
    ("stress", "S"),
    ("polarization", "P"),
    ("born_effective_charges", "Z*"),
    ("polarizability", "alpha"),
)


def _report(runs, frames) -> None:
    """One line per frame: its labels, the polarization quantum where P is given, and notes."""
    for run, frame in zip(runs, frames):
        have = [
            short for key, short in _LABELS if key in frame.info or key in frame.arrays
        ]
        line = f"  {run.path}: {' '.join(have) or 'no labels'}"
        quantum = getattr(run, "polarization_quantum", None)
        if "polarization" in frame.info and quantum is not None:
            lengths = ", ".join(
                f"{sum(x * x for x in row) ** 0.5:.4f}" for row in quantum
            )
            line += f"; P quantum along a1, a2, a3: {lengths} e*A"
        for note in getattr(run, "notes", []):
            line += f"; {note}"
        print(line)


def _run_lr(verb: str, args: argparse.Namespace, parse) -> int:
    from pathlib import Path

    from nequip_pol.io.qe import NequipPolIOError, write_frames

    out = Path(args.output)
    runs = []
    try:
        frames = parse(args.runs, fold=not args.no_fold, runs_out=runs)
        write_frames(frames, out, force=args.force)
    except NequipPolIOError as exc:  # bad input runs: a user error, exit status 2
        return input_error(verb, str(exc))
    print(f"wrote {len(frames)} frame(s) to {out}")
    _report(runs, frames)
    return 0


def run_parse_vasp(args: argparse.Namespace) -> int:
    from nequip_pol.io.vasp import parse_vasp_runs

    return _run_lr("parse-vasp", args, parse_vasp_runs)


def run_parse_qe_ph(args: argparse.Namespace) -> int:
    from nequip_pol.io.qe_ph import parse_qe_ph_runs

    return _run_lr("parse-qe-ph", args, parse_qe_ph_runs)


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
    p.add_argument(
        "--config",
        metavar="CONFIG.yaml",
        help="the nequip-train config to train with: the labels its loss uses (nonzero weights "
        "in training_module.loss.coeffs) must be in every frame, else the status is NOT READY "
        "(exit 3). Default: the DFT recipe's loss (configs/dft.yaml): energy, forces, stress, "
        "polarization, Born charges, polarizability",
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
    for f in args.files + ([args.config] if args.config else []):
        path = Path(f)
        if path.is_dir():
            return input_error(
                "check-data",
                f"{path}: is a folder, not "
                + ("a config file" if f == args.config else "an extended-XYZ file"),
            )
        if not path.is_file():
            return input_error("check-data", f"{path}: no such file")
    return 0


def run_check_data(args: argparse.Namespace) -> int:
    """Exit status: 0 every file OK, 1 a file has hard errors (FAILED), 3 a label the
    training config's loss uses is absent in some frames (NOT READY)."""
    from nequip_pol.io.check_data import (
        DFT_RECIPE_LABELS,
        DataCheckError,
        check_dataset,
        loss_labels,
    )

    mapping = _key_map(args.key_map)
    if args.config:
        try:
            needed = loss_labels(args.config)
        except DataCheckError as exc:
            return input_error("check-data", f"--config {args.config}: {exc}")
        print(f"labels the loss of {args.config} uses: {', '.join(needed)}")
    else:
        needed = DFT_RECIPE_LABELS
    rc = 0
    for f in args.files:
        rep = check_dataset(f, key_mapping=mapping, needed=needed)
        print(rep)
        if not rep.ok:
            rc = 1
        elif rep.status == "NOT READY" and rc == 0:
            rc = 3
    return rc


# ------------------------------------------------------------------------------- align-branches


def add_align_branches(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="the reference that fits every frame's P within a small fraction of a quantum: a "
        "shipped model's name, a package (*.nequip.zip), a checkpoint or a compiled model",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="extended-XYZ files")
    p.add_argument(
        "--out-dir",
        required=True,
        metavar="DIR",
        help="existing folder; each file is written there under its own name",
    )
    p.add_argument(
        "--max-residual",
        type=float,
        default=0.1,
        metavar="QUANTA",
        help="largest distance allowed between the reference and a moved label, in quanta "
        "(default 0.1); above it nothing is written",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _check_align_branches(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nequip_pol.integrations.model_arguments import (
        ModelArgumentError,
        check_file,
        check_model,
    )

    try:
        args.model = check_model(args.model)
        for f in args.files:
            check_file(f, "extended-XYZ")
    except ModelArgumentError as exc:
        return input_error("align-branches", str(exc))
    if not Path(args.out_dir).is_dir():
        return input_error(
            "align-branches", f"--out-dir {args.out_dir}: no such folder"
        )
    if not 0 < args.max_residual < 0.5:
        return input_error(
            "align-branches",
            f"--max-residual {args.max_residual}: must be between 0 and 0.5 quanta",
        )
    return 0


def run_align_branches(args: argparse.Namespace) -> int:
    """Exit status 0: every frame's label moved and written; 2: bad input, or the reference is
    too far from some frame (nothing written)."""
    import numpy as np

    from nequip_pol.data.branch_alignment import align_files

    from .common import run_guarded

    def body(a) -> int:
        moves = align_files(
            a.model, a.files, a.out_dir, max_residual=a.max_residual, force=a.force
        )
        moved = [m for m in moves if np.any(m.quanta != 0)]
        print(
            f"{len(moves)} frames, {len(moved)} moved by whole quanta; the reference is at most "
            f"{max(float(np.abs(m.residual).max()) for m in moves):.3f} quanta from a label"
        )
        print("file index quanta_a quanta_b quanta_c residual_a residual_b residual_c")
        for m in moves:
            print(
                f"{m.file} {m.index} "
                + " ".join(f"{q:+.0f}" for q in m.quanta)
                + " "
                + " ".join(f"{r:+.3f}" for r in m.residual)
            )
        return 0

    return run_guarded("align-branches", body, args)


# ---------------------------------------------------------------------------------- input checks
_CHECKS = {
    "parse-qe": _check_parse_qe,
    "parse-vasp": lambda args: _check_runs_and_output(
        "parse-vasp", args, "VASP run folder or file"
    ),
    "parse-qe-ph": lambda args: _check_runs_and_output(
        "parse-qe-ph", args, "QE run folder"
    ),
    "check-data": _check_check_data,
    "align-branches": _check_align_branches,
}


def check_inputs(verb: str, args: argparse.Namespace) -> int:
    """Check VERB's files and numbers before any heavy import; 0, or 2 after the error line."""
    return _CHECKS[verb](args)
