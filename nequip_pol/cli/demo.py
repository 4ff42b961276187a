"""``nequip-pol demo``: the main job (:mod:`nequip_pol.demo`) from the command line.

The parser lives here, not in :mod:`nequip_pol.demo` (that module imports numpy and the
reference material; ``--help`` stays fast). The numbers are checked by the argument types, so
that a bad one stops the verb before anything is written. Exit status: 0 when the trained model
reached its targets, 3 (:data:`nequip_pol.demo.EXIT_TARGET_MISSED`) when it missed one, 2 for
bad input, 1 when nequip-train failed.
"""

from __future__ import annotations

import argparse
import sys

from .common import at_least_one

__all__ = ["add_demo", "run_demo"]


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


def add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "out_dir",
        nargs="?",
        default="nequip-pol-demo",
        help="folder to write into (default: nequip-pol-demo); it must not exist or be empty",
    )
    p.add_argument(
        "--epochs",
        type=at_least_one,
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


def run_demo(args: argparse.Namespace) -> int:
    """Run the main job; its exit status (0 passed, 3 a target missed, 2 bad input, 1 nequip-train
    failed)."""
    import subprocess

    from nequip_pol import demo

    try:
        result = demo.run_demo(
            args.out_dir,
            epochs=demo.DEMO_EPOCHS if args.epochs is None else args.epochs,
            max_minutes=args.max_minutes,
            seed=args.seed,
            force=args.force,
            threads=args.threads,  # the count of the thread rule (nequip_pol.cli.main)
        )
    except (FileExistsError, ValueError) as error:
        print(f"nequip-pol demo: error: {error}", file=sys.stderr)
        return demo.EXIT_BAD_ARGUMENT
    except subprocess.CalledProcessError as error:
        print(
            f"nequip-pol demo: error: nequip-train failed (exit status {error.returncode}); its messages are above",
            file=sys.stderr,
        )
        return 1
    return 0 if result["passed"] else demo.EXIT_TARGET_MISSED
