"""Long trainings in chunks, resumable, with a learning curve (``nequip-pol train-long``).

:func:`train_long` runs ``nequip-train`` with ``dft.yaml`` of the configs folder
(:func:`~nequip_pol.train.checkout.config_dir`) in chunks of ``chunk_epochs`` epochs. Each chunk
trains that many epochs more than the last finished one, resuming from its ``last.ckpt``
(nequip's own restart: model, EMA weights, optimizer, learning-rate schedule, epoch counter; the
data split comes from the config's fixed seed, so it is the same in every chunk), then evaluates
the best model so far (by validation score) on the test split; after each chunk one row goes to
``OUT/learning_curve.csv`` and the validation RMSEs of every epoch to ``OUT/val_curve.csv``
(:mod:`nequip_pol.train.curves`). An interrupted run continues with ``resume=True`` from the
last completed epoch; :mod:`nequip_pol.train.run_state` saves, moves and re-plans its state.
The verb's description (``nequip-pol train-long --help``) tells the whole workflow.

Errors in the settings are :class:`~nequip_pol.train.checkout.TrainingToolError`; a chunk that
fails is :class:`ChunkFailedError`. Only the standard library is imported at module level.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .checkout import TrainingToolError, checkout_root, config_dir
from .curves import (
    CURVE_COLUMNS,
    QUANTITIES,
    chunk_pace,
    collect_val_curve,
    summarize_chunk,
)
from .run_state import relocate_checkpoint_records, set_schedule

__all__ = [
    "SETTINGS_KEYS",
    "ChunkFailedError",
    "chunk_command",
    "reproduce_command",
    "planned_epochs",
    "train_long",
]

#: the settings of a run stored in OUT/learning_curve.json (the same in every chunk)
SETTINGS_KEYS = ("dataset", "model", "chunk_epochs", "data_file", "overrides")
_NO_LIMIT = "99:00:00:00"


class ChunkFailedError(RuntimeError):
    """A chunk's nequip-train exited with an error (the message names its log)."""


def chunk_command(
    out: Path,
    settings: dict,
    chunk: int,
    max_epochs: int,
    resume_from,
    max_time=_NO_LIMIT,
    configs=None,
) -> list:
    """The ``nequip-train`` command of one chunk (``settings``: :data:`SETTINGS_KEYS`;
    ``configs``: the configs folder, default :func:`~nequip_pol.train.checkout.config_dir`)."""
    configs = config_dir() if configs is None else configs
    data_file = settings.get("data_file")
    data = [f"data_file={Path(data_file).resolve()}"] if data_file else []
    command = [
        sys.executable,
        "-m",
        "nequip.scripts.train",
        "-cp",
        str(configs),
        "-cn",
        "dft",
        f"dataset={settings['dataset']}",
        f"model={settings['model']}",
        *data,
        "run=[train,test]",
        f"max_epochs={max_epochs}",
        f"max_time={max_time}",
        "++trainer.logger._target_=lightning.pytorch.loggers.CSVLogger",
        f"++trainer.logger.save_dir={out}",
        "++trainer.logger.name=log",
        f"++trainer.logger.version=chunk_{chunk:03d}",
        "++trainer.enable_progress_bar=false",
        f"hydra.run.dir={out / 'run'}",
        *settings["overrides"],
    ]
    if resume_from is not None:
        command.append(f"++ckpt_path={resume_from}")
    return command


def reproduce_command(settings: dict, chunks: int, config_dir_given=None) -> str:
    """The command that trains a run with these settings up to ``chunks`` chunks (the
    ``command`` column of ``learning_curve.csv``; OUT stands for the run's folder)."""
    words = [
        "nequip-pol",
        "train-long",
        "OUT",
        "--dataset",
        settings["dataset"],
        "--model",
        settings["model"],
        "--chunk-epochs",
        str(settings["chunk_epochs"]),
        "--chunks",
        str(chunks),
    ]
    if settings.get("data_file"):
        words += ["--data-file", str(settings["data_file"])]
    if config_dir_given is not None:
        words += ["--config-dir", str(config_dir_given)]
    return " ".join(words + list(settings["overrides"]))


def planned_epochs(overrides):
    """The schedule's planned length (the lr_total_epochs override), or None."""
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == "lr_total_epochs":
            return int(float(value))
    return None


def _check_location(out: Path) -> None:
    """Runs live outside the checkout, or under its ``runs/`` (a long run's resumable state,
    committed while it runs so that it survives a move to a new machine)."""
    root = checkout_root()
    if root is None:
        return
    if (root in out.parents or out == root) and (root / "runs") not in out.parents:
        raise TrainingToolError(
            f"{out} is inside the repository; runs live outside it, or under runs/NAME "
            "(a long run's resumable state, committed while it runs)"
        )


def _read_points(curve_path: Path) -> list:
    return (
        [dict(r) for r in csv.DictReader(open(curve_path))]
        if curve_path.exists()
        else []
    )


def _settings(out: Path, given: dict, resume: bool, force: bool, replan) -> dict:
    """The run's settings (:data:`SETTINGS_KEYS`, plus ``replans`` when the plan or the chunk
    length changed): ``given`` for a new run, the stored ones (checked against ``given``) for a
    resumed one. ``given`` takes the stored overrides and data file when it has none."""
    settings_path = out / "learning_curve.json"
    curve_path = out / "learning_curve.csv"
    settings = dict(given)
    if replan and not resume:
        raise TrainingToolError(
            "--replan changes the schedule of a run being resumed: give --resume too"
        )
    bad = [
        o
        for o in replan
        if not o.split("=", 1)[0].lstrip("+").startswith("lr_") or "=" not in o
    ]
    if bad:
        raise TrainingToolError(
            f"--replan takes lr_*=VALUE settings of configs/dft.yaml only, not {' '.join(bad)}"
        )
    if settings_path.exists():
        if force:
            for name in (
                "run",
                "log",
                "learning_curve.csv",
                "val_curve.csv",
                "learning_curve.json",
            ):
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        elif not resume:
            raise TrainingToolError(
                f"{out} holds a learning-curve run: --resume to continue it, --force to start over"
            )
        else:
            stored = json.loads(settings_path.read_text())
            replans = stored.pop("replans", [])
            if not given["overrides"] and not given["data_file"]:
                given["overrides"], given["data_file"] = (
                    stored["overrides"],
                    stored["data_file"],
                )
            settings = {k: given.get(k) for k in stored}
            # the chunk length is bookkeeping (where the test points fall), not training: it may
            # change on resume, e.g. long chunks on a GPU, short ones on a CPU core
            done = len(_read_points(curve_path))
            if settings["chunk_epochs"] != stored["chunk_epochs"]:
                replans.append(
                    {"from_chunk": done + 1, "chunk_epochs": settings["chunk_epochs"]}
                )
                stored["chunk_epochs"] = settings["chunk_epochs"]
            if settings != stored:
                raise TrainingToolError(
                    f"--resume with other settings than the run in {out}: stored {stored}, given {settings}"
                )
            if replan:
                keys = {o.split("=", 1)[0] for o in replan}
                settings["overrides"] = [
                    o for o in settings["overrides"] if o.split("=", 1)[0] not in keys
                ] + list(replan)
                replans.append({"from_chunk": done + 1, "overrides": list(replan)})
            if replans:
                settings["replans"] = replans
    elif resume:
        raise TrainingToolError(f"nothing to resume in {out} (no learning_curve.json)")
    return settings


def _max_time(seconds: int) -> str:
    return f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_long(
    out,
    *,
    dataset: str = "SiO2",
    model: str = "allegro_pol",
    data_file=None,
    chunk_epochs: int = 10,
    chunks=None,
    cpu_hours=None,
    wall_seconds=None,
    resume: bool = False,
    force: bool = False,
    replan=(),
    overrides=(),
    config_dir_given=None,
) -> list:
    """Train the run in ``out`` chunk by chunk until ``chunks`` chunks in all, ``cpu_hours`` of
    training or ``wall_seconds`` of this call (a first chunk of ``chunk_epochs`` measures the
    pace, one last chunk fills the rest); returns the rows of ``learning_curve.csv``.

    ``dataset``, ``model``: groups of the configs folder (``config_dir_given``, default the
    checkout's ``configs/``); ``data_file``: the data file (needed for ``analytic``);
    ``overrides``: nequip-train overrides, the same in every chunk (stored in
    ``learning_curve.json``; ``resume`` reuses them); ``replan``: new ``lr_*`` settings from the
    next chunk on (with ``resume``); ``force`` deletes the run in ``out`` first. Without an
    ``lr_total_epochs`` override the schedule is planned over ``chunks x chunk_epochs``.
    """
    configs = config_dir(config_dir_given)
    out = Path(out).resolve()
    _check_location(out)
    if data_file and not Path(data_file).is_file():
        raise TrainingToolError(f"--data-file {data_file}: no such file")
    if chunk_epochs < 1:
        raise TrainingToolError("--chunk-epochs must be at least 1")
    if chunks is None and cpu_hours is None and wall_seconds is None:
        raise TrainingToolError("give --chunks, --cpu-hours or --wall-seconds")
    given = {
        "dataset": dataset,
        "model": model,
        "chunk_epochs": chunk_epochs,
        "data_file": data_file,
        "overrides": list(overrides),
    }
    settings = _settings(out, given, resume, force, list(replan))
    if planned_epochs(settings["overrides"]) is None:
        # configs/dft.yaml plans the schedule over max_epochs, but nequip-train's restart keeps
        # the plan of the first chunk (whose max_epochs is one chunk): plan the whole run here
        if chunks is None:
            raise TrainingToolError(
                "give the schedule's length: --chunks N (plans N x --chunk-epochs epochs) or "
                "the override lr_total_epochs=EPOCHS"
            )
        settings["overrides"] = list(settings["overrides"]) + [
            f"lr_total_epochs={chunks * chunk_epochs}"
        ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_curve.json").write_text(json.dumps(settings, indent=1))
    replan_active = bool(settings.get("replans"))

    curve_path = out / "learning_curve.csv"
    points = _read_points(curve_path)
    chunk = len(points)
    started, pace, sized = time.time(), None, False
    while True:
        cpu_so_far = float(points[-1]["cpu_hours"]) if points else 0.0
        if chunks is not None and chunk >= chunks:
            break
        if cpu_hours is not None and cpu_so_far >= cpu_hours:
            break
        this_chunk, max_time = chunk_epochs, _NO_LIMIT
        if wall_seconds is not None:
            left = wall_seconds - (time.time() - started)
            if sized or left <= 0:
                break
            if pace is not None:
                # the last chunk fills what is left of the budget (pace: the previous chunk's
                # seconds per epoch and restart cost), never past the planned schedule
                per_epoch, overhead = pace
                this_chunk = int((left - overhead - 10.0) / per_epoch)
                planned = planned_epochs(settings["overrides"])
                done = int(points[-1]["epochs"]) if points else 0
                if planned is not None:
                    this_chunk = min(this_chunk, planned - done)
                if this_chunk < 1:
                    break
                sized = True
            # nequip-train's own clock (started after its restart) stops the chunk at the budget
            max_time = _max_time(int(max(left - (pace[1] if pace else 0.0), 60.0)))
        chunk += 1
        last = out / "run" / "last.ckpt"
        resume_from, resume_epoch = None, None
        if last.exists():
            # a copy: the running chunk rewrites last.ckpt
            resume_from = out / "run" / "resume_from.ckpt"
            shutil.copyfile(last, resume_from)
            resume_epoch = relocate_checkpoint_records(resume_from, out / "run")
            if replan_active:
                set_schedule(resume_from, settings["overrides"])
        log_dir = out / "log" / f"chunk_{chunk:03d}"
        if log_dir.exists():
            # an interrupted attempt of this chunk: its epochs up to last.ckpt stay trained, so
            # keep their validation metrics (val_curve.csv reads every chunk_* folder)
            attempt = 1
            while log_dir.with_name(f"{log_dir.name}.interrupted{attempt}").exists():
                attempt += 1
            log_dir.rename(log_dir.with_name(f"{log_dir.name}.interrupted{attempt}"))
        # a chunk trains --chunk-epochs epochs after the last finished chunk; when the checkpoint
        # it resumes from is already past that (an interrupted longer chunk), after the checkpoint
        max_epochs = (int(points[-1]["epochs"]) if points else 0) + this_chunk
        if resume_epoch is not None and resume_epoch >= max_epochs:
            max_epochs = resume_epoch + this_chunk
        command = chunk_command(
            out, settings, chunk, max_epochs, resume_from, max_time, configs
        )
        print("+ " + " ".join(command), flush=True)
        start = time.time()
        console = out / f"chunk_{chunk:03d}.log"
        proc = subprocess.run(
            command, stdout=open(console, "w"), stderr=subprocess.STDOUT
        )
        if proc.returncode != 0:
            raise ChunkFailedError(
                f"chunk {chunk} failed (exit {proc.returncode}); see {console}"
            )
        point = summarize_chunk(out, chunk)
        pace = chunk_pace(out, chunk, time.time() - start)
        point["command"] = reproduce_command(settings, chunk, config_dir_given)
        points.append(point)
        with open(curve_path, "w", newline="") as f:
            writer = csv.DictWriter(f, CURVE_COLUMNS)
            writer.writeheader()
            writer.writerows(points)
        collect_val_curve(out)
        print(
            f"chunk {chunk}: {point['epochs']} epochs, {float(point['cpu_hours']):.3f} CPU h "
            f"({time.time() - start:.0f} s wall for this chunk); test of epoch "
            f"{point['tested_epoch']} (best validation): "
            + ", ".join(
                f"{q} {point[q]:.4g}" for q, _, _ in QUANTITIES if point[q] is not None
            ),
            flush=True,
        )
    return points
