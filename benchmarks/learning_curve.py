"""Long trainings in chunks, resumable, with a learning curve: test-split RMSEs against CPU hours.

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
under OUT (outside the repository; they are never committed).

    python benchmarks/learning_curve.py OUT --dataset SiO2 --chunk-epochs 10 --cpu-hours 4
    python benchmarks/learning_curve.py OUT --dataset SiO2 --chunk-epochs 10 --cpu-hours 8 --resume
    # a GPU lent for 10 minutes: a 3-epoch chunk measures the pace, one more fills the time
    python benchmarks/learning_curve.py OUT --dataset SiO2 --chunk-epochs 3 --wall-seconds 540 --resume
    python benchmarks/learning_curve.py OUT --dataset analytic --data-file analytic.xyz \\
        --model allegro_pol_small --chunk-epochs 5 --chunks 4 born_charge_training=full
    python benchmarks/learning_curve.py --plot docs/figures/learning_curve.png OUT1/learning_curve.csv OUT1/val_curve.csv ...

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

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUANTITIES = [
    # (column, logged metric)
    ("energy_rmse_meV_atom", "per_atom_energy_rmse", 1000.0),
    ("forces_rmse_meV_A", "forces_rmse", 1000.0),
    ("stress_rmse_meV_A3", "stress_rmse", 1000.0),
    ("P_rmse_eA", "polarization_rmse", 1.0),
    ("Zstar_rmse_e", "born_effective_charges_rmse", 1.0),
    ("alpha_rmse_eA2_V", "polarizability_rmse", 1.0),
]
CURVE_COLUMNS = (
    ["chunk", "epochs", "cpu_hours", "wall_hours", "tested_epoch"]
    + [q for q, _, _ in QUANTITIES]
    + ["command"]
)


def read_csv_rows(path: Path):
    """The rows of a CSV file with a header (nequip's metrics.csv, learning_curve.csv) as dicts
    of strings; ``[]`` when the file does not exist (yet)."""
    return list(csv.DictReader(open(path))) if path.exists() else []


def _value(row, key):
    value = row.get(key)
    return float(value) if value not in (None, "") else None


def chunk_command(
    out: Path, args, chunk: int, max_epochs: int, resume_from, max_time="99:00:00:00"
) -> list:
    data = [f"data_file={Path(args.data_file).resolve()}"] if args.data_file else []
    command = [
        sys.executable,
        "-m",
        "nequip.scripts.train",
        "-cp",
        str(ROOT / "configs"),
        "-cn",
        "dft",
        f"dataset={args.dataset}",
        f"model={args.model}",
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
        *args.overrides,
    ]
    if resume_from is not None:
        command.append(f"++ckpt_path={resume_from}")
    return command


# configs/dft.yaml keys of the learning-rate schedule -> WarmupStableDecayLR arguments
SCHEDULE_KEYS = {
    "lr_total_epochs": "total_epochs",
    "lr_warmup_epochs": "warmup_epochs",
    "lr_decay_epochs": "decay_epochs",
    "lr_decay_fraction": "decay_fraction",
    "lr_final_factor": "final_lr_factor",
}


def relocate_checkpoint_records(checkpoint: Path, run_dir: Path) -> int:
    """Point the ``ModelCheckpoint`` records in ``checkpoint`` at ``run_dir`` (this run's ``run/``).

    Lightning restores a callback's record (best score, best and last paths) only when the
    checkpoint's ``dirpath`` is the callback's own, and the best path whatever it is: a run copied
    to another folder or machine (``benchmarks/save_run_state.py``) would point at the old one.
    Paths are moved to ``run_dir``; when ``run_dir/best.ckpt`` is missing (a state saved without
    it) the best record is reset, so the first validation after the resume is the best one.
    Returns the checkpoint's epoch counter.
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
            sys.exit(
                f"--replan needs nequip_pol.train.WarmupStableDecayLR, not {scheduler['_target_']}"
            )
        scheduler.update(values)
    torch.save(state, checkpoint)


def tested_epoch(out: Path):
    """The epoch (counted from 1, like ``epochs``) whose model the chunk tested: the best by
    validation score, ``run/best.ckpt``. When validation stops improving, later rows repeat its
    test RMSEs; this column says so. None without a best checkpoint."""
    import torch

    best = out / "run" / "best.ckpt"
    if not best.is_file():
        return None
    return int(torch.load(best, map_location="cpu", weights_only=False)["epoch"]) + 1


def summarize_chunk(out: Path, chunk: int) -> dict:
    """Epochs, CPU/wall hours and test RMSEs of one finished chunk, from its CSV log."""
    rows = read_csv_rows(out / "log" / f"chunk_{chunk:03d}" / "metrics.csv")
    timed = [r for r in rows if _value(r, "cpu_hours") is not None]
    tested = [r for r in rows if _value(r, "test0_epoch/forces_rmse") is not None]
    if not timed or not tested:
        raise RuntimeError(
            f"chunk {chunk} logged no epochs or no test metrics (see {out / 'log'})"
        )
    last = timed[-1]
    point = {
        "chunk": chunk,
        "epochs": int(float(last["epoch"])) + 1,
        "cpu_hours": _value(last, "cpu_hours"),
        "wall_hours": _value(last, "wall_hours"),
        "tested_epoch": tested_epoch(out),
    }
    for column, key, factor in QUANTITIES:
        value = _value(tested[-1], f"test0_epoch/{key}")
        point[column] = None if value is None else value * factor
    return point


def chunk_pace(out: Path, chunk: int, wall_s: float):
    """(seconds per epoch, restart cost in seconds) of a finished chunk, from its log."""
    rows = read_csv_rows(out / "log" / f"chunk_{chunk:03d}" / "metrics.csv")
    walls = sorted({_value(r, "wall_hours") for r in rows} - {None})
    if len(walls) < 2:
        return wall_s, 0.0
    per_epoch = (walls[-1] - walls[0]) * 3600.0 / (len(walls) - 1)
    return per_epoch, max(wall_s - len(walls) * per_epoch, 0.0)


def _planned_epochs(overrides):
    """The schedule's planned length (the lr_total_epochs override), or None."""
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == "lr_total_epochs":
            return int(float(value))
    return None


def collect_val_curve(out: Path) -> None:
    """Validation RMSEs of every epoch against CPU hours, over all chunks, into OUT/val_curve.csv."""
    by_epoch = {}
    for path in sorted((out / "log").glob("chunk_*/metrics.csv")):
        rows = read_csv_rows(path)
        for row in rows:
            if row.get("epoch") in (None, ""):
                continue
            epoch = int(float(row["epoch"])) + 1
            entry = by_epoch.setdefault(epoch, {"epochs": epoch})
            if _value(row, "cpu_hours") is not None:
                entry["cpu_hours"] = _value(row, "cpu_hours")
            for column, key, factor in QUANTITIES:
                value = _value(row, f"val0_epoch/{key}")
                if value is not None:
                    entry[column] = value * factor
    with open(out / "val_curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f,
            ["epochs", "cpu_hours"] + [q for q, _, _ in QUANTITIES],
            extrasaction="ignore",
        )
        writer.writeheader()
        for epoch in sorted(by_epoch):
            if "cpu_hours" in by_epoch[epoch]:
                writer.writerow(by_epoch[epoch])


def train(args) -> None:
    out = Path(args.out).resolve()
    # inside the repository only under runs/: a long run's resumable state, committed while it
    # runs so that it survives a move to a new machine, removed when its result ships
    if (ROOT in out.parents or out == ROOT) and (ROOT / "runs") not in out.parents:
        sys.exit(
            f"{out} is inside the repository; runs live outside it, or under runs/NAME "
            "(a long run's resumable state, committed while it runs)"
        )
    if args.data_file and not Path(args.data_file).is_file():
        sys.exit(f"--data-file {args.data_file}: no such file")
    if args.chunk_epochs < 1:
        sys.exit("--chunk-epochs must be at least 1")
    settings_path = out / "learning_curve.json"
    curve_path = out / "learning_curve.csv"
    settings = {
        k: getattr(args, k)
        for k in ("dataset", "model", "chunk_epochs", "data_file", "overrides")
    }
    if args.replan and not args.resume:
        sys.exit(
            "--replan changes the schedule of a run being resumed: give --resume too"
        )
    bad = [
        o
        for o in args.replan
        if not o.split("=", 1)[0].lstrip("+").startswith("lr_") or "=" not in o
    ]
    if bad:
        sys.exit(
            f"--replan takes lr_*=VALUE settings of configs/dft.yaml only, not {' '.join(bad)}"
        )
    if settings_path.exists():
        if args.force:
            for name in (
                "run",
                "log",
                "learning_curve.csv",
                "val_curve.csv",
                "learning_curve.json",
            ):
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        elif not args.resume:
            sys.exit(
                f"{out} holds a learning-curve run: --resume to continue it, --force to start over"
            )
        else:
            stored = json.loads(settings_path.read_text())
            replans = stored.pop("replans", [])
            if not args.overrides and not args.data_file:
                args.overrides, args.data_file = (
                    stored["overrides"],
                    stored["data_file"],
                )
            settings = {k: getattr(args, k) for k in stored}
            # the chunk length is bookkeeping (where the test points fall), not training: it may
            # change on resume, e.g. long chunks on a GPU, short ones on a CPU core
            done = (
                len(list(csv.DictReader(open(curve_path))))
                if curve_path.exists()
                else 0
            )
            if settings["chunk_epochs"] != stored["chunk_epochs"]:
                replans.append(
                    {"from_chunk": done + 1, "chunk_epochs": settings["chunk_epochs"]}
                )
                stored["chunk_epochs"] = settings["chunk_epochs"]
            if settings != stored:
                sys.exit(
                    f"--resume with other settings than the run in {out}: stored {stored}, given {settings}"
                )
            if args.replan:
                keys = {o.split("=", 1)[0] for o in args.replan}
                args.overrides = [
                    o for o in args.overrides if o.split("=", 1)[0] not in keys
                ] + list(args.replan)
                replans.append({"from_chunk": done + 1, "overrides": list(args.replan)})
                settings["overrides"] = args.overrides
            if replans:
                settings["replans"] = replans
    elif args.resume:
        sys.exit(f"nothing to resume in {out} (no learning_curve.json)")
    if _planned_epochs(args.overrides) is None:
        # configs/dft.yaml plans the schedule over max_epochs, but nequip-train's restart keeps
        # the plan of the first chunk (whose max_epochs is one chunk): plan the whole run here
        if args.chunks is None:
            sys.exit(
                "give the schedule's length: --chunks N (plans N x --chunk-epochs epochs) or "
                "the override lr_total_epochs=EPOCHS"
            )
        args.overrides = list(args.overrides) + [
            f"lr_total_epochs={args.chunks * args.chunk_epochs}"
        ]
        settings["overrides"] = args.overrides
    out.mkdir(parents=True, exist_ok=True)
    settings_path.write_text(json.dumps(settings, indent=1))
    args.replan_active = bool(settings.get("replans"))

    points = (
        [dict(r) for r in csv.DictReader(open(curve_path))]
        if curve_path.exists()
        else []
    )
    chunk = len(points)
    started, pace, sized = time.time(), None, False
    while True:
        cpu_so_far = float(points[-1]["cpu_hours"]) if points else 0.0
        if args.chunks is not None and chunk >= args.chunks:
            break
        if args.cpu_hours is not None and cpu_so_far >= args.cpu_hours:
            break
        chunk_epochs, max_time = args.chunk_epochs, "99:00:00:00"
        if args.wall_seconds is not None:
            left = args.wall_seconds - (time.time() - started)
            if sized or left <= 0:
                break
            if pace is not None:
                # the last chunk fills what is left of the budget (pace: the previous chunk's
                # seconds per epoch and restart cost), never past the planned schedule
                per_epoch, overhead = pace
                chunk_epochs = int((left - overhead - 10.0) / per_epoch)
                planned = _planned_epochs(args.overrides)
                done = int(points[-1]["epochs"]) if points else 0
                if planned is not None:
                    chunk_epochs = min(chunk_epochs, planned - done)
                if chunk_epochs < 1:
                    break
                sized = True
            # nequip-train's own clock (started after its restart) stops the chunk at the budget
            seconds = int(max(left - (pace[1] if pace else 0.0), 60.0))
            max_time = f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        chunk += 1
        last = out / "run" / "last.ckpt"
        resume_from, resume_epoch = None, None
        if last.exists():
            # a copy: the running chunk rewrites last.ckpt
            resume_from = out / "run" / "resume_from.ckpt"
            shutil.copyfile(last, resume_from)
            resume_epoch = relocate_checkpoint_records(
                resume_from, out.resolve() / "run"
            )
            if args.replan_active:
                set_schedule(resume_from, args.overrides)
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
        max_epochs = (int(points[-1]["epochs"]) if points else 0) + chunk_epochs
        if resume_epoch is not None and resume_epoch >= max_epochs:
            max_epochs = resume_epoch + chunk_epochs
        command = chunk_command(out, args, chunk, max_epochs, resume_from, max_time)
        print("+ " + " ".join(command), flush=True)
        start = time.time()
        proc = subprocess.run(
            command,
            stdout=open(out / f"chunk_{chunk:03d}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        if proc.returncode != 0:
            sys.exit(
                f"chunk {chunk} failed (exit {proc.returncode}); see {out / f'chunk_{chunk:03d}.log'}"
            )
        point = summarize_chunk(out, chunk)
        pace = chunk_pace(out, chunk, time.time() - start)
        reproduce = [
            sys.executable,
            "benchmarks/learning_curve.py",
            "OUT",
            "--dataset",
            args.dataset,
            "--model",
            args.model,
            "--chunk-epochs",
            str(args.chunk_epochs),
            "--chunks",
            str(chunk),
        ]
        if args.data_file:
            reproduce += ["--data-file", str(args.data_file)]
        point["command"] = " ".join(["python"] + reproduce[1:] + list(args.overrides))
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


def plot(png: str, csv_paths) -> None:
    """RMSE of each quantity against CPU hours, log axes, one line per CSV (``learning_curve.csv``:
    test split per chunk, markers; ``val_curve.csv``: validation split per epoch, lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for path in csv_paths:
        rows = list(csv.DictReader(open(path)))
        # a run folder's own CSVs are named after the folder, copies (docs/figures) after the file
        stem = Path(path).stem
        name = (
            Path(path).resolve().parent.name
            if stem in ("learning_curve", "val_curve")
            else stem
        )
        kind = "validation, every epoch" if "val" in stem else "test"
        label = f"{name} ({kind})"
        cpu = [float(r["cpu_hours"]) for r in rows]
        for ax, (column, _, _) in zip(axes.flat, QUANTITIES):
            values = [
                float(r[column]) if r.get(column) not in (None, "") else float("nan")
                for r in rows
            ]
            ax.plot(cpu, values, "o-" if "test" in label else "-", label=label, ms=4)
    from matplotlib.ticker import NullFormatter

    titles = [
        "E (meV/atom)",
        "F (meV/A)",
        "stress (meV/A^3)",
        "P (e*A per cell)",
        "Z* (e)",
        "alpha (e*A^2/V)",
    ]
    for ax, title in zip(axes.flat, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("CPU hours (training)")
        ax.set_title("RMSE " + title)
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out", nargs="?", help="folder for the run (outside the repository)"
    )
    parser.add_argument(
        "--dataset",
        default="SiO2",
        help="a group in configs/dataset (BaTiO3, SiO2, analytic)",
    )
    parser.add_argument(
        "--model", default="allegro_pol", help="a group in configs/model"
    )
    parser.add_argument(
        "--data-file", help="the data file (needed for --dataset analytic)"
    )
    parser.add_argument("--chunk-epochs", type=int, default=10)
    parser.add_argument(
        "--chunks", type=int, help="stop after this many chunks in total"
    )
    parser.add_argument(
        "--cpu-hours",
        type=float,
        help="stop once training has used this many CPU hours",
    )
    parser.add_argument(
        "--wall-seconds",
        type=float,
        help="stop within this many seconds of wall time: after a first chunk of --chunk-epochs "
        "(which measures the seconds per epoch), one last chunk sized to fill the rest (a GPU "
        "lent for a fixed time)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT")
    parser.add_argument(
        "--force", action="store_true", help="delete the run in OUT and start over"
    )
    parser.add_argument(
        "--replan",
        nargs="+",
        default=[],
        metavar="lr_KEY=VALUE",
        help="with --resume: new learning-rate schedule settings from the next chunk on",
    )
    parser.add_argument(
        "--plot",
        metavar="PNG",
        help="plot the learning_curve.csv files given instead of training",
    )
    parser.add_argument(
        "overrides", nargs="*", help="nequip-train overrides, e.g. batch_size=4"
    )
    args = parser.parse_intermixed_args()
    if args.plot:
        paths = ([args.out] if args.out else []) + list(args.overrides)
        if not paths:
            sys.exit("--plot needs learning_curve.csv files")
        plot(args.plot, paths)
        return
    if not args.out:
        sys.exit("give the output folder OUT")
    if args.chunks is None and args.cpu_hours is None and args.wall_seconds is None:
        sys.exit("give --chunks, --cpu-hours or --wall-seconds")
    train(args)


if __name__ == "__main__":
    main()
