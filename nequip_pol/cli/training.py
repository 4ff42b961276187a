"""``nequip-pol train-long | save-run | frame-errors | ship``: the training workflow.

Train long in chunks (resumable, a test point per chunk), save a run's resumable state, find the
frames that make a model's error, ship a run's best model with its card. The logic lives in
:mod:`nequip_pol.train` (``long_run``, ``run_state``, ``frame_errors``, ``ship``; no argparse
there); the descriptions below are the verbs' ``--help``. Only ``argparse`` and the standard
library are imported at module level. Bad input stops a verb with ``nequip-pol VERB: error: ...``
and exit status 2; a chunk whose nequip-train fails with exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from .common import input_error

__all__ = [
    "add_train_long",
    "run_train_long",
    "add_save_run",
    "run_save_run",
    "add_frame_errors",
    "run_frame_errors",
    "add_ship",
    "run_ship",
    "check_inputs",
]

_CONFIGS = """\
The nequip-train configs (dft.yaml, dataset/, model/) are the repository's configs/ folder,
found beside the package when it runs from a checkout (pip install -e .); elsewhere give
--config-dir DIR.
"""

TRAIN_LONG = """\
Long trainings in chunks, resumable, with a learning curve: test-split RMSEs against CPU hours.

Runs ``nequip-train`` with ``configs/dft.yaml`` in chunks of ``--chunk-epochs`` epochs. Each chunk
trains that many epochs more than the last finished one, resuming from its ``last.ckpt`` (nequip's
own restart: model, EMA weights, optimizer, learning-rate schedule, epoch counter; the data split
comes from the config's fixed seed, so it is the same in every chunk), then evaluates the best
model so far (by validation score) on the test split. After each chunk one row is appended to
``OUT/learning_curve.csv``: epochs, CPU hours and wall hours spent in training so far (logged by
:class:`nequip_pol.train.CPUTimeLogger`, carried across restarts; start-up and test evaluation not
counted), the epoch of the tested model (``tested_epoch``), the test RMSEs, and the command that
reproduces the point. ``OUT/val_curve.csv`` gets
the validation RMSEs of every epoch against CPU hours.

The learning-rate schedule of ``configs/dft.yaml`` (warm-up, decay to the final value) is planned
over the whole run, not one chunk: ``lr_total_epochs = --chunks x --chunk-epochs`` unless the
override ``lr_total_epochs=N`` is given (needed with ``--cpu-hours`` alone).

Interrupt it at any time (Ctrl-C, kill, end of a job slot) and run the same command with
``--resume``: the interrupted chunk restarts from the last completed epoch. Trained models stay
under OUT (outside the repository, or under its runs/NAME: a long run's resumable state; they are
never committed otherwise).

    nequip-pol train-long OUT --dataset SiO2 --chunk-epochs 10 --cpu-hours 4
    nequip-pol train-long OUT --dataset SiO2 --chunk-epochs 10 --cpu-hours 8 --resume
    # a GPU lent for 10 minutes: a 3-epoch chunk measures the pace, one more fills the time
    nequip-pol train-long OUT --dataset SiO2 --chunk-epochs 3 --wall-seconds 540 --resume
    nequip-pol train-long OUT --dataset analytic --data-file analytic.xyz \\
        --model allegro_pol_small --chunk-epochs 5 --chunks 4 born_charge_training=full
    nequip-pol train-long --plot docs/figures/learning_curve.png OUT1/learning_curve.csv OUT1/val_curve.csv ...

Extra arguments are ``nequip-train`` overrides (``batch_size=4``, ``model_dtype=float64``, ...);
they must be the same in every chunk of a run (they are stored in ``OUT/learning_curve.json``
and reused by ``--resume``). The one exception is a new plan for the learning-rate schedule:
``--resume --replan lr_total_epochs=120 lr_decay_epochs=40`` continues the run with those
``lr_*`` settings changed from the next chunk on (the schedule's state is only the epoch counter,
see nequip_pol.train.WarmupStableDecayLR); each change is recorded in ``learning_curve.json``.
``--chunk-epochs`` may also change on resume (it only sets where the test points fall): long
chunks on a GPU, short ones on a CPU core. An interrupted chunk's log is kept as
``log/chunk_NNN.interrupted1`` (its epochs up to ``last.ckpt`` stay in ``val_curve.csv``).
"""

SAVE_RUN = """\
Save what a learning-curve run needs to continue on another machine: a small folder to commit.

    nequip-pol save-run RUN models/NAME [--force]

RUN is a folder of ``nequip-pol train-long`` (possibly still training). The copy holds

- ``run/last.ckpt``: nequip-train's restart state (weights, EMA weights, Adam state, schedule
  epoch counter, CPU hours so far, the best validation score so far), copied and then loaded
  back to check that it is whole (the running chunk rewrites it once per epoch; a copy caught
  mid-write is taken again);
- ``run/best.ckpt``: the best checkpoint by validation so far, the model the run would ship
  (checked the same way; ``--without-best`` leaves it out, 1.3 MB less for the tutorial-size
  model, and the run then forgets its best score: the first validation after the resume is
  the best one);
- ``learning_curve.json`` (settings, re-plans), ``learning_curve.csv`` (test RMSEs per chunk),
  ``val_curve.csv`` (validation RMSEs per epoch, when present);
- ``log/chunk_*/metrics.csv`` and ``hparams.yaml``: the per-epoch logs, a chunk still running
  included (``--resume`` keeps its epochs up to ``last.ckpt`` as ``chunk_NNN.interrupted1``).

Not copied: the chunk consoles, hydra's folder. ``nequip-pol train-long --resume`` points the
checkpoint's records at the folder it resumes in (any path). Continue anywhere with

    cp -r models/NAME ~/runs/NAME
    nequip-pol train-long ~/runs/NAME --dataset ... --chunk-epochs ... --chunks ... --resume

DEST is replaced only with ``--force`` (an older saved state of the same run, say); a DEST that
is not a saved run state is never deleted.
"""

FRAME_ERRORS = """\
Which frames make a model's force error: per-frame test RMSEs on the shared DFT data.

    nequip-pol frame-errors MODEL --dataset SiO2 [--part test|val|train|all] [--top 8] [--csv OUT.csv]
    nequip-pol frame-errors best.ckpt --dataset MyMaterial --data-file my.xyz

MODEL is a shipped name (``sio2``, ``batio3``), a ``nequip-package`` archive or a checkpoint
(``RUN/run/best.ckpt``). DATASET names a ``configs/dataset/DATASET.yaml`` (its data file, found
in the shared data unless ``--data-file`` is given, and its split fractions). The frames of one
part of the split (nequip's random split with those fractions and the seed of
``configs/dft.yaml``, as ``nequip-train`` draws it) are evaluated with the ASE calculator, one at
a time. Printed: the
frames with the largest force RMSE, each with its worst atom (species, error in meV/A, the
distances to its three nearest neighbours, A) and the frame's Born-charge RMSE; then the part's
force RMSE with all frames, without the worst one, and the median frame's, and the same for Z*. A test RMSE that one
frame dominates says the target needs that kind of configuration in the training data more than
more epochs (docs/training_on_cpu.md §8). The train part beside the test part says whether the
model still falls short on what it was trained on (epochs, capacity) or generalizes poorly
(data). ``--part all`` takes every frame, as the published Allegro-pol errors are given, and
prints each part's RMSEs too. ``--csv`` writes every frame's row.

Units: forces meV/A, Z* e, distances A.
"""

SHIP = """\
Ship a trained model: package a learning-curve run's best checkpoint into nequip_pol/models.

    nequip-pol ship RUN --name sio2 [--force] [--earlier-cpu-hours H]

RUN is a folder of ``nequip-pol train-long`` on the shared DFT data. This

1. packages ``RUN/run/best.ckpt`` with ``nequip-package build`` into
   ``nequip_pol/models/NAME.nequip.zip`` (an existing archive is kept unless ``--force``);
2. writes ``nequip_pol/models/NAME.json``: the data file and its frame count, the split (seed,
   fractions, the test-frame indices as nequip's ``RandomSplitAndIndexDataset`` draws them), the
   recipe (the run's nequip-train overrides), epochs, CPU and wall hours (for a fine-tune with
   ``--earlier-cpu-hours``, also the total with the stages it started from), and the test-split RMSEs
   that nequip-train's test metrics gave for this checkpoint (base units: eV/atom, eV/A, eV/A^3,
   e*A, e, e*A^2/V), beside the published Allegro-pol errors and the project's targets;
3. writes the draft model card ``nequip_pol/models/NAME.md`` (data, split, recipe, CPU hours,
   the error table beside the targets and the published errors); an existing card is kept (it
   is finished by hand: known limits) and the generated part printed instead.

A developer action: it writes into nequip_pol/models/ of the checkout the package runs from
(pip install -e .). ``tests/test_shipped_models.py`` recomputes those RMSEs with the ASE
calculator on the test frames.
"""


def _describe(p: argparse.ArgumentParser, text: str, configs: bool = False) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = text + (f"\n{_CONFIGS}\n" if configs else "")


def _add_config_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config-dir",
        metavar="DIR",
        default=None,
        help="the nequip-train configs (dft.yaml, dataset/, model/); default: configs/ of the "
        "checkout the package runs from",
    )


def _guarded(verb: str, body, args) -> int:
    """``body(args)``: a training tool's user error (``TrainingToolError``) is one line and exit
    status 2, a failed chunk or run one line and exit status 1."""
    from nequip_pol.train.checkout import TrainingToolError

    try:
        return int(body(args) or 0)
    except TrainingToolError as exc:
        return input_error(verb, str(exc))
    except (
        RuntimeError
    ) as exc:  # a chunk whose nequip-train failed, a chunk that logged nothing
        print(f"nequip-pol {verb}: error: {exc}", file=sys.stderr)
        return 1


# ----------------------------------------------------------------------------------- train-long
def add_train_long(p: argparse.ArgumentParser) -> None:
    _describe(p, TRAIN_LONG, configs=True)
    p.add_argument(
        "out",
        nargs="?",
        help="folder for the run (outside the repository, or under its runs/NAME)",
    )
    p.add_argument(
        "--dataset",
        default="SiO2",
        help="a group in configs/dataset (BaTiO3, SiO2, analytic)",
    )
    p.add_argument("--model", default="allegro_pol", help="a group in configs/model")
    p.add_argument("--data-file", help="the data file (needed for --dataset analytic)")
    p.add_argument("--chunk-epochs", type=int, default=10)
    p.add_argument("--chunks", type=int, help="stop after this many chunks in total")
    p.add_argument(
        "--cpu-hours",
        type=float,
        help="stop once training has used this many CPU hours",
    )
    p.add_argument(
        "--wall-seconds",
        type=float,
        help="stop within this many seconds of wall time: after a first chunk of --chunk-epochs "
        "(which measures the seconds per epoch), one last chunk sized to fill the rest (a GPU "
        "lent for a fixed time)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in OUT")
    p.add_argument(
        "--force", action="store_true", help="delete the run in OUT and start over"
    )
    p.add_argument(
        "--replan",
        nargs="+",
        default=[],
        metavar="lr_KEY=VALUE",
        help="with --resume: new learning-rate schedule settings from the next chunk on",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="plot the learning_curve.csv files given instead of training",
    )
    _add_config_dir(p)
    p.add_argument(
        "overrides", nargs="*", help="nequip-train overrides, e.g. batch_size=4"
    )


def _check_train_long(args: argparse.Namespace) -> int:
    if args.plot:
        if not args.out and not args.overrides:
            return input_error("train-long", "--plot needs learning_curve.csv files")
        return 0
    if not args.out:
        return input_error("train-long", "give the output folder OUT")
    if args.chunks is None and args.cpu_hours is None and args.wall_seconds is None:
        return input_error("train-long", "give --chunks, --cpu-hours or --wall-seconds")
    return 0


def _train_long(args: argparse.Namespace) -> int:
    if args.plot:
        from nequip_pol.train.curves import plot_curves

        plot_curves(args.plot, ([args.out] if args.out else []) + list(args.overrides))
        return 0
    from nequip_pol.train.long_run import train_long

    train_long(
        args.out,
        dataset=args.dataset,
        model=args.model,
        data_file=args.data_file,
        chunk_epochs=args.chunk_epochs,
        chunks=args.chunks,
        cpu_hours=args.cpu_hours,
        wall_seconds=args.wall_seconds,
        resume=args.resume,
        force=args.force,
        replan=args.replan,
        overrides=args.overrides,
        config_dir_given=args.config_dir,
    )
    return 0


def run_train_long(args: argparse.Namespace) -> int:
    return _guarded("train-long", _train_long, args)


# ------------------------------------------------------------------------------------- save-run
def add_save_run(p: argparse.ArgumentParser) -> None:
    _describe(p, SAVE_RUN)
    p.add_argument("run", help="a nequip-pol train-long folder")
    p.add_argument("dest", help="where the state goes, e.g. runs/SiO2")
    p.add_argument("--force", action="store_true", help="replace a saved state in DEST")
    p.add_argument(
        "--without-best",
        action="store_true",
        help="leave run/best.ckpt out (smaller; the resumed run forgets its best score)",
    )


def _save_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nequip_pol.train.run_state import save_state

    dest = Path(args.dest)
    epoch = save_state(
        Path(args.run).resolve(), dest.resolve(), args.force, not args.without_best
    )
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(
        f"saved {args.run} at epoch index {epoch} into {args.dest} ({size / 1e6:.2f} MB)"
    )
    return 0


def run_save_run(args: argparse.Namespace) -> int:
    return _guarded("save-run", _save_run, args)


# --------------------------------------------------------------------------------- frame-errors
def add_frame_errors(p: argparse.ArgumentParser) -> None:
    _describe(p, FRAME_ERRORS, configs=True)
    p.add_argument("model", help="shipped name, nequip-package archive or checkpoint")
    p.add_argument(
        "--dataset",
        required=True,
        metavar="DATASET",
        help="a dataset config in configs/dataset (BaTiO3, SiO2, analytic)",
    )
    p.add_argument(
        "--data-file",
        help="extended XYZ (default: the dataset's file in the shared data)",
    )
    p.add_argument(
        "--part",
        default="test",
        choices=("train", "val", "test", "all"),
        help="part of the split; all: every frame (as the published errors are given)",
    )
    p.add_argument("--top", type=int, default=8, help="frames to print")
    p.add_argument("--csv", help="write every frame's row here")
    _add_config_dir(p)


def _check_frame_errors(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.data_file and not Path(args.data_file).is_file():
        return input_error(
            "frame-errors", f"--data-file {args.data_file}: no such file"
        )
    if args.csv and Path(args.csv).exists():
        return input_error("frame-errors", f"{args.csv} exists: choose another name")
    return 0


def _frame_errors(args: argparse.Namespace) -> int:
    from nequip_pol.train.frame_errors import frame_errors, print_report, write_rows

    rows = frame_errors(
        args.model, args.dataset, args.part, args.data_file, args.config_dir
    )
    print_report(rows, args.model, args.dataset, args.part, args.top)
    if args.csv:
        write_rows(rows, args.csv)
    return 0


def run_frame_errors(args: argparse.Namespace) -> int:
    return _guarded("frame-errors", _frame_errors, args)


# ----------------------------------------------------------------------------------------- ship
def add_ship(p: argparse.ArgumentParser) -> None:
    _describe(p, SHIP, configs=True)
    p.add_argument("run", help="a nequip-pol train-long run folder")
    p.add_argument(
        "--name", required=True, help="shipped name (nequip_pol.models.SHIPPED_MODELS)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing archive")
    p.add_argument(
        "--earlier-cpu-hours",
        type=float,
        default=0.0,
        metavar="H",
        help="for a fine-tune (init_checkpoint=): the CPU hours of the stages it started from; "
        "the card records the total beside the run's own",
    )
    _add_config_dir(p)


def _ship(args: argparse.Namespace) -> int:
    from nequip_pol.train.ship import ship_model

    ship_model(args.run, args.name, args.force, args.config_dir, args.earlier_cpu_hours)
    return 0


def run_ship(args: argparse.Namespace) -> int:
    return _guarded("ship", _ship, args)


# ---------------------------------------------------------------------------------- input checks
_CHECKS = {"train-long": _check_train_long, "frame-errors": _check_frame_errors}


def check_inputs(verb: str, args: argparse.Namespace) -> int:
    """Check VERB's arguments before any heavy import; 0, or 2 after the error line."""
    check = _CHECKS.get(verb)
    return 0 if check is None else check(args)
