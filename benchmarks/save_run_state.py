"""Save what a learning-curve run needs to continue on another machine: a small folder to commit.

    python benchmarks/save_run_state.py RUN models/NAME [--force]

RUN is a folder of ``benchmarks/learning_curve.py`` (possibly still training). The copy holds

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

Not copied: the chunk consoles, hydra's folder. ``learning_curve.py --resume`` points the
checkpoint's records at the folder it resumes in (any path). Continue anywhere with

    cp -r models/NAME ~/runs/NAME
    python benchmarks/learning_curve.py ~/runs/NAME --dataset ... --chunk-epochs ... --chunks ... --resume

DEST is replaced only with ``--force`` (an older saved state of the same run, say); a DEST that
is not a saved run state is never deleted.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

FILES = ["learning_curve.json", "learning_curve.csv", "val_curve.csv"]
LOG_FILES = ["metrics.csv", "hparams.yaml"]


def copy_checkpoint(source: Path, target: Path, tries: int = 5) -> int:
    """Copy ``source`` to ``target`` until the copy loads whole; returns its epoch counter."""
    import torch

    for _ in range(tries):
        shutil.copyfile(source, target)
        try:
            checkpoint = torch.load(target, map_location="cpu", weights_only=False)
        except Exception:  # caught mid-write: the running chunk rewrites it every epoch
            time.sleep(2.0)
            continue
        return int(checkpoint["epoch"])
    sys.exit(
        f"{source}: no whole copy in {tries} tries (is it being written, or damaged?)"
    )


def save_state(
    run: Path, dest: Path, force: bool = False, with_best: bool = True
) -> int:
    """Copy the continuation state of ``run`` into ``dest``; returns the checkpoint's epoch."""
    if not (run / "learning_curve.json").is_file():
        sys.exit(f"{run} is not a learning-curve run (no learning_curve.json)")
    if not (run / "run" / "last.ckpt").is_file():
        sys.exit(f"{run} has no run/last.ckpt yet: nothing to continue from")
    if dest.exists():
        if not (dest / "learning_curve.json").is_file():
            sys.exit(f"{dest} exists and is not a saved run state: not touching it")
        if not force:
            sys.exit(f"{dest} holds a saved run state: --force to replace it")
        shutil.rmtree(dest)
    (dest / "run").mkdir(parents=True)
    epoch = copy_checkpoint(run / "run" / "last.ckpt", dest / "run" / "last.ckpt")
    if with_best and (run / "run" / "best.ckpt").is_file():
        copy_checkpoint(run / "run" / "best.ckpt", dest / "run" / "best.ckpt")
    for name in FILES:
        if (run / name).is_file():
            shutil.copyfile(run / name, dest / name)
    for log in sorted((run / "log").glob("chunk_*")):
        for name in LOG_FILES:
            if (log / name).is_file():
                (dest / "log" / log.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log / name, dest / "log" / log.name / name)
    return epoch


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a benchmarks/learning_curve.py folder")
    parser.add_argument(
        "dest", type=Path, help="where the state goes, e.g. models/SiO2"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a saved state in DEST"
    )
    parser.add_argument(
        "--without-best",
        action="store_true",
        help="leave run/best.ckpt out (smaller; the resumed run forgets its best score)",
    )
    args = parser.parse_args()
    epoch = save_state(
        args.run.resolve(), args.dest.resolve(), args.force, not args.without_best
    )
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(
        f"saved {args.run} at epoch index {epoch} into {args.dest} ({size / 1e6:.2f} MB)"
    )


if __name__ == "__main__":
    main()
