"""A long run's resumable state (:mod:`nequip_pol.train.long_run`): save it, move it, re-plan it.

:func:`save_state` copies what a run needs to continue on another machine into a small folder
(to commit, or to copy); :func:`relocate_checkpoint_records` points the records of a checkpoint
at the folder it resumes in; :func:`set_schedule` writes a new learning-rate plan into a
checkpoint. Errors are :class:`~nequip_pol.train.checkout.TrainingToolError`. Only the standard
library is imported at module level (torch when a checkpoint is read).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .checkout import TrainingToolError

__all__ = [
    "SCHEDULE_KEYS",
    "STATE_FILES",
    "LOG_FILES",
    "relocate_checkpoint_records",
    "set_schedule",
    "copy_checkpoint",
    "save_state",
]

# configs/dft.yaml keys of the learning-rate schedule -> WarmupStableDecayLR arguments
SCHEDULE_KEYS = {
    "lr_total_epochs": "total_epochs",
    "lr_warmup_epochs": "warmup_epochs",
    "lr_decay_epochs": "decay_epochs",
    "lr_decay_fraction": "decay_fraction",
    "lr_final_factor": "final_lr_factor",
}
#: the files of a run's folder that a saved state keeps
STATE_FILES = ["learning_curve.json", "learning_curve.csv", "val_curve.csv"]
#: the files of each chunk's log folder that a saved state keeps
LOG_FILES = ["metrics.csv", "hparams.yaml"]


def relocate_checkpoint_records(checkpoint: Path, run_dir: Path) -> int:
    """Point the ``ModelCheckpoint`` records in ``checkpoint`` at ``run_dir`` (this run's ``run/``).

    Lightning restores a callback's record (best score, best and last paths) only when the
    checkpoint's ``dirpath`` is the callback's own, and the best path whatever it is: a run copied
    to another folder or machine (:func:`save_state`, ``nequip-pol save-run``) would point at the
    old one. Paths are moved to ``run_dir``; when ``run_dir/best.ckpt`` is missing (a state saved
    without it) the best record is reset, so the first validation after the resume is the best
    one. Returns the checkpoint's epoch counter.
    """
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    has_best = (run_dir / "best.ckpt").is_file()

    def moved(path):
        return str(run_dir / Path(path).name) if path else path

    for name, record in state.get("callbacks", {}).items():
        if not name.startswith("ModelCheckpoint"):
            continue
        record["dirpath"] = str(run_dir)
        record["last_model_path"] = moved(record.get("last_model_path", ""))
        if record.get("monitor") is None:
            continue
        if has_best:
            record["best_model_path"] = moved(record.get("best_model_path", ""))
            record["kth_best_model_path"] = moved(record.get("kth_best_model_path", ""))
            record["best_k_models"] = {
                moved(k): v for k, v in record.get("best_k_models", {}).items()
            }
        else:
            record.update(
                best_model_score=None,
                best_model_path="",
                best_k_models={},
                kth_best_model_path="",
                kth_value=torch.tensor(
                    torch.inf if record.get("mode", "min") == "min" else -torch.inf
                ),
            )
    torch.save(state, checkpoint)
    return int(state["epoch"])


def set_schedule(checkpoint: Path, overrides) -> None:
    """Write the schedule settings among ``overrides`` into a checkpoint's hyperparameters.

    nequip-train rebuilds the training module of a resumed run from the checkpoint, not from the
    config (its restart rule), so a new plan must go into the checkpoint; the scheduler's own
    state is only the epoch counter (nequip_pol.train.WarmupStableDecayLR), so the resumed run
    follows the new plan from its current epoch.
    """
    import torch

    values = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") in SCHEDULE_KEYS:
            parsed = None if value in ("null", "None") else float(value)
            if parsed is not None and parsed.is_integer() and "factor" not in key:
                parsed = int(parsed)
            values[SCHEDULE_KEYS[key.lstrip("+")]] = parsed
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hyper = state["hyper_parameters"]
    for config in (
        hyper["lr_scheduler"],
        hyper["info_dict"]["training_module"]["lr_scheduler"],
    ):
        scheduler = config["scheduler"]
        if not scheduler["_target_"].endswith("WarmupStableDecayLR"):
            raise TrainingToolError(
                f"--replan needs nequip_pol.train.WarmupStableDecayLR, not {scheduler['_target_']}"
            )
        scheduler.update(values)
    torch.save(state, checkpoint)


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
    raise TrainingToolError(
        f"{source}: no whole copy in {tries} tries (is it being written, or damaged?)"
    )


def save_state(
    run: Path, dest: Path, force: bool = False, with_best: bool = True
) -> int:
    """Copy the continuation state of ``run`` into ``dest``; returns the checkpoint's epoch.

    ``run/last.ckpt`` (and ``run/best.ckpt`` unless ``with_best`` is false) copied until the copy
    loads whole, the run's settings and curves (:data:`STATE_FILES`) and each chunk's log
    (:data:`LOG_FILES`). ``dest`` is replaced only with ``force``, and only when it is a saved
    run state itself.
    """
    run, dest = Path(run), Path(dest)
    if not (run / "learning_curve.json").is_file():
        raise TrainingToolError(
            f"{run} is not a learning-curve run (no learning_curve.json)"
        )
    if not (run / "run" / "last.ckpt").is_file():
        raise TrainingToolError(
            f"{run} has no run/last.ckpt yet: nothing to continue from"
        )
    if dest.exists():
        if not (dest / "learning_curve.json").is_file():
            raise TrainingToolError(
                f"{dest} exists and is not a saved run state: not touching it"
            )
        if not force:
            raise TrainingToolError(
                f"{dest} holds a saved run state: --force to replace it"
            )
        shutil.rmtree(dest)
    (dest / "run").mkdir(parents=True)
    epoch = copy_checkpoint(run / "run" / "last.ckpt", dest / "run" / "last.ckpt")
    if with_best and (run / "run" / "best.ckpt").is_file():
        copy_checkpoint(run / "run" / "best.ckpt", dest / "run" / "best.ckpt")
    for name in STATE_FILES:
        if (run / name).is_file():
            shutil.copyfile(run / name, dest / name)
    for log in sorted((run / "log").glob("chunk_*")):
        for name in LOG_FILES:
            if (log / name).is_file():
                (dest / "log" / log.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log / name, dest / "log" / log.name / name)
    return epoch
