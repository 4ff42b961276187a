"""What every verb of ``nequip-pol`` shares: errors, exit status, input checks, outputs.

Conventions (``docs/analysis.md``): inputs are checked first, before any heavy import (torch,
nequip, phonopy) and any work: the files exist, the numbers are in range, no output would be
overwritten (unless ``--force``). Bad input stops a verb with one line
``nequip-pol VERB: error: ...`` and the exit status :data:`EXIT_USER_ERROR` (2, as argparse),
and nothing is written. The modules of :mod:`nequip_pol.cli` import only ``argparse`` and the
standard library at module level (``--help`` stays fast); a module of verbs gives the registry
(:mod:`nequip_pol.cli`) a ``check_inputs(verb, args)`` (:func:`input_checker`) that runs before
the verb.

MODEL and STRUCTURE arguments are those of
:mod:`nequip_pol.integrations.model_arguments` (re-exported here: :func:`check_model`,
:func:`check_file`, :func:`load_calculator`, :func:`read_structure`; that module imports only
the standard library at module level).

Threads: every verb that runs a model takes ``--threads N`` (:func:`add_threads_argument`,
added by the registry to the verbs of :data:`nequip_pol.cli.RUNS_A_MODEL`), and the registry
runs it inside :func:`verb_threads`: the rule of :mod:`nequip_pol.threads` applied once, before
the model is loaded, and printed as the run's first line (``threads: 1 (2 cores, load 1.8 -> 0
free; 9 atoms)``).

This module imports only the standard library at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from nequip_pol.integrations.model_arguments import (
    DEPRECATED_MODEL_NAMES,
    REFERENCE_MATERIALS,
    check_file,
    check_model,
    load_calculator,
    read_structure,
)
from nequip_pol.threads import SMALL_SYSTEM_ATOMS, choose_threads, threads_for_run

__all__ = [
    "EXIT_USER_ERROR",
    "REFERENCE_MATERIALS",
    "DEPRECATED_MODEL_NAMES",
    "CommandError",
    "input_error",
    "run_guarded",
    "run_check",
    "input_checker",
    "check_model",
    "check_file",
    "load_calculator",
    "read_structure",
    "output_prefix",
    "output_paths",
    "write_csv",
    "progress_printer",
    "add_threads_argument",
    "verb_threads",
]

#: exit status of every verb for bad input (argparse's)
EXIT_USER_ERROR = 2


class CommandError(Exception):
    """A user-facing error: printed as one line without traceback, exit status 2."""


def input_error(verb: str, message: str) -> int:
    """Print ``nequip-pol VERB: error: MESSAGE`` (argparse's form) and return exit status 2."""
    print(f"nequip-pol {verb}: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def run_guarded(verb: str, body, args) -> int:
    """``body(args)``, with user errors printed as ``nequip-pol VERB: error: ...`` and exit status 2."""
    try:
        return int(body(args) or 0)
    except (
        CommandError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        KeyError,
    ) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return input_error(verb, str(message))


def run_check(check, verb: str, args) -> int:
    """Run ``check(args)`` (a verb's input check: files, numbers, outputs) under
    :func:`run_guarded`: 0, or 2 after the error line."""

    def body(a) -> int:
        check(a)
        return 0

    return run_guarded(verb, body, args)


def input_checker(checks):
    """The ``check_inputs(verb, args) -> int`` of a module of verbs (what :mod:`nequip_pol.cli`
    runs before a verb): :func:`run_check` of ``checks[verb]``, the verb's check of its files,
    numbers and outputs (no heavy imports)."""

    def check_inputs(verb: str, args) -> int:
        """Check VERB's files, numbers and outputs without heavy imports; 0, or 2 after the error line."""
        return run_check(checks[verb], verb, args)

    return check_inputs


def output_prefix(output, default_path) -> str:
    """The PREFIX of a verb's outputs: ``output`` (``-o``) if given, else ``default_path`` without its extension."""
    return output if output else str(Path(default_path).with_suffix(""))


def output_paths(prefix: str, names, force: bool):
    """``{name: Path(prefix_name)}``; ``CommandError`` if one exists (without ``force``) or the folder is missing."""
    paths = {name: Path(f"{prefix}_{name}") for name in names}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise CommandError(
            f"output file(s) exist: {', '.join(existing)}; not overwriting (use --force)"
        )
    parent = Path(prefix).parent
    if not parent.is_dir():
        raise CommandError(f"output folder {parent} does not exist")
    return paths


def write_csv(path, columns, rows, header_lines=()) -> None:
    """A CSV with ``# `` comment lines, a header and rows (floats with 10 significant digits)."""
    import numpy as np

    with open(path, "w") as f:
        for line in header_lines:
            f.write(f"# {line}\n")
        f.write(",".join(columns) + "\n")
        for row in np.atleast_2d(rows):
            f.write(
                ",".join(
                    f"{float(v):.10g}" if not isinstance(v, str) else v for v in row
                )
                + "\n"
            )


def progress_printer(verb: str):
    """A ``progress(message)`` callback printing ``[VERB  12.3 s] message``."""
    start = time.time()

    def report(msg: str) -> None:
        print(f"[{verb} {time.time() - start:7.1f} s] {msg}", flush=True)

    return report


# ---------------------------------------------------------------------- threads
def at_least_one(text: str) -> int:
    """argparse type: a whole number of at least 1 (threads, epochs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (default: the rule of :mod:`nequip_pol.threads`)."""
    p.add_argument(
        "--threads",
        type=at_least_one,
        default=None,
        metavar="N",
        help="torch threads (default: OMP_NUM_THREADS if set, else the free cores: cores minus "
        f"the load average, at least 1; one for a system under {SMALL_SYSTEM_ATOMS} atoms); "
        "printed as the first line",
    )


@contextlib.contextmanager
def verb_threads(args, system_size=None, torch_threads: bool = True):
    """Run a verb on the threads of the rule (:func:`nequip_pol.threads.choose_threads`):
    ``--threads``, else ``OMP_NUM_THREADS``, else the free cores and the system's size
    (``system_size(args)``: atoms of one model evaluation, or None). Prints ``threads: N
    (reason)``, sets ``args.threads = N``, and runs the body inside
    :func:`~nequip_pol.threads.threads_for_run` (torch threads, with ``torch_threads``, and
    ``OMP_NUM_THREADS`` of child processes; restored afterwards)."""
    n_atoms = None
    if system_size is not None:
        try:
            n_atoms = system_size(args)
        except Exception:  # an unreadable STRUCTURE: the verb itself names the problem
            n_atoms = None
    threads, reason = choose_threads(n_atoms, getattr(args, "threads", None))
    print(f"threads: {threads} ({reason})", flush=True)
    args.threads = threads
    with threads_for_run(threads, torch_threads):
        yield threads
