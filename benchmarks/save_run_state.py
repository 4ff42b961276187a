"""Save what a learning-curve run needs to continue on another machine: a small folder to commit.

    python benchmarks/save_run_state.py RUN models/NAME [--force]

RUN is a folder of ``benchmarks/learning_curve.py`` (possibly still training). The copy holds

- ``run/last.ckpt``: nequip-train's restart state (weights, EMA weights, Adam state, schedule
  epoch counter, CPU hours so far), copied and then loaded back to check that it is whole (the
  running chunk rewrites it once per epoch; a copy caught mid-write is taken again);
- ``learning_curve.json`` (settings, re-plans), ``learning_curve.csv`` (test RMSEs per chunk),
  ``val_curve.csv`` (validation RMSEs per epoch, when present);
- ``log/chunk_*/metrics.csv`` and ``hparams.yaml``: the per-epoch logs, a chunk still running
  included (``--resume`` keeps its epochs up to ``last.ckpt`` as ``chunk_NNN.interrupted1``).

Not copied: ``best.ckpt``, the chunk consoles, hydra's folder. Without ``best.ckpt`` the copy of
``last.ckpt`` forgets its best validation score (Lightning would otherwise keep pointing at the
missing file and the next chunk's test, which uses the best checkpoint, would fail when validation
does not improve): after a move the best model is the best one since the resume. Continue anywhere with

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


def forget_best(checkpoint: dict) -> None:
    """Reset the best-model record of every monitoring ``ModelCheckpoint`` state in ``checkpoint``.

    Lightning restores ``best_model_path`` from the checkpoint whatever folder the run resumes in;
    a reset record makes the first validation after the resume the best one.
    """
    import torch

    for name, state in checkpoint.get("callbacks", {}).items():
        if name.startswith("ModelCheckpoint") and state.get("monitor") is not None:
            state.update(
                best_model_score=None,
                best_model_path="",
                best_k_models={},
                kth_best_model_path="",
                kth_value=torch.tensor(
                    torch.inf if state.get("mode", "min") == "min" else -torch.inf
                ),
            )


def copy_checkpoint(source: Path, target: Path, tries: int = 5) -> int:
    """Copy ``source`` to ``target`` without its best-model record until the copy loads whole.

    Returns the checkpoint's epoch counter.
    """
    import torch

    for _ in range(tries):
        shutil.copyfile(source, target)
        try:
            checkpoint = torch.load(target, map_location="cpu", weights_only=False)
        except Exception:  # caught mid-write: the running chunk rewrites it every epoch
            time.sleep(2.0)
            continue
        forget_best(checkpoint)
        torch.save(checkpoint, target)
        return int(checkpoint["epoch"])
    sys.exit(
        f"{source}: no whole copy in {tries} tries (is it being written, or damaged?)"
    )


def save_state(run: Path, dest: Path, force: bool = False) -> int:
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
    args = parser.parse_args()
    epoch = save_state(args.run.resolve(), args.dest.resolve(), args.force)
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(
        f"saved {args.run} at epoch index {epoch} into {args.dest} ({size / 1e6:.2f} MB)"
    )


if __name__ == "__main__":
    main()
