"""Training-recipe study: variants of configs/dft.yaml at equal CPU time, test error vs CPU hours.

Each variant is configs/dft.yaml with a few settings changed (``VARIANTS`` below: one change at a
time from the ``cosine`` recipe, plus the recipe of the earlier runs, ``constant``). For each
variant and dataset the study

1. measures the CPU seconds per epoch of the variant with a one-epoch probe run (model size,
   dtype and batch size change the cost per epoch; the probe's own model is thrown away); the
   variants that change only the schedule, the loss or the averaging share the ``cosine`` plan;
2. plans ``floor(budget / cost)`` epochs, so that the learning-rate schedule (warm-up, decay to
   ``learning_rate * lr_final_factor``) ends when the budget is spent;
3. trains them with ``nequip-pol train-long`` in ``--points`` chunks (same seed, same
   train/validation/test split as every other variant: the config's fixed split), recording the
   test-split RMSEs after each chunk and the validation RMSEs after every epoch.

``--report`` reads the finished runs and writes a Markdown table (test RMSEs at the end of the
budget, the command of each row) and a plot of test error vs CPU hours per variant. The recipe is
chosen by the error at equal CPU time.

    OMP_NUM_THREADS=1 python benchmarks/recipe_study.py ~/study/SiO2 --dataset SiO2 --cpu-hours 0.5
    OMP_NUM_THREADS=1 python benchmarks/recipe_study.py ~/study/SiO2 --dataset SiO2 --cpu-hours 0.5 \\
        --variants cosine batch1 lr_2e-3                       # some variants only; --resume goes on
    python benchmarks/recipe_study.py --report ~/study/SiO2 ~/study/BaTiO3 \\
        --table recipe.md --plot docs/figures/recipe_study.png
    python benchmarks/recipe_study.py --list                   # the variants and their settings

Runs live under OUT/<variant>/ (outside the repository). Interrupted? The same command with
``--resume`` continues the unfinished variants (finished ones are skipped).
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

# the CSV reader of the learning curves
from nequip_pol.train.curves import read_csv_rows

ROOT = Path(__file__).resolve().parent.parent
#: the long-run verb, run in a subprocess per variant (nequip_pol.train.long_run)
TRAIN_LONG = [sys.executable, "-m", "nequip_pol.cli", "train-long"]

# name -> (nequip-train overrides, what changes); "cosine" is the base the others change one thing of
_COSINE = [
    "learning_rate=0.005",
    "batch_size=2",
    "lr_warmup_epochs=2",
    "lr_decay_epochs=null",
    "lr_decay_fraction=null",
]
#: the round-two winner: batch 1, peak lr 0.01, WSD
_BATCH1_LR1E2_WSD = [
    "batch_size=1",
    "learning_rate=0.01",
    *_COSINE[2:3],
    "lr_decay_epochs={third}",
]
VARIANTS = {
    "constant": (
        [
            "learning_rate=0.005",
            "batch_size=2",
            "lr_warmup_epochs=0",
            "lr_decay_epochs=0",
            "lr_decay_fraction=null",
        ],
        "the earlier recipe: constant lr 0.005 (ReduceLROnPlateau never fired in those runs), batch 2",
    ),
    "cosine": (
        _COSINE,
        "warm-up 2 epochs, cosine decay to 1e-5 at the end of the budget, lr 0.005, batch 2",
    ),
    "wsd": (
        _COSINE[:3] + ["lr_decay_epochs={third}"],
        "warm-up, constant, cosine decay over the last third (warm-up-stable-decay)",
    ),
    "wsd_energy_final": (
        _COSINE[:3]
        + ["lr_decay_epochs={third}", "decay_stage_loss_scale={{total_energy:10.0}}"],
        "WSD, energy weight x10 in the decay (a final stage)",
    ),
    "lr_2e-3": (_COSINE[1:] + ["learning_rate=0.002"], "peak lr 0.002"),
    "lr_1e-2": (_COSINE[1:] + ["learning_rate=0.01"], "peak lr 0.01"),
    "batch1": (
        [o for o in _COSINE if not o.startswith("batch")] + ["batch_size=1"],
        "batch 1 (twice the steps)",
    ),
    "batch1_lr2e-3": (
        ["batch_size=1", "learning_rate=0.002"] + _COSINE[2:],
        "batch 1, peak lr 0.002",
    ),
    "forces_x4": (
        _COSINE + ["training_module.loss.coeffs.forces=4.0"],
        "forces weight 4 (response terms 1)",
    ),
    "energy_x10": (
        _COSINE + ["training_module.loss.coeffs.total_energy=100.0"],
        "per-atom energy weight 100 (10)",
    ),
    "ema_0.999": (
        _COSINE + ["training_module.ema_decay=0.999"],
        "EMA decay 0.999 (0.99)",
    ),
    "zstar_x4": (
        _COSINE + ["training_module.loss.coeffs.born_effective_charges=4.0"],
        "Born-charge weight 4 (1)",
    ),
    # the batch-1 winner of the first round combined with the other round-one gains
    "batch1_lr1e-2": (
        ["batch_size=1", "learning_rate=0.01"] + _COSINE[2:],
        "batch 1, peak lr 0.01",
    ),
    "batch1_forces_x4": (
        ["batch_size=1"]
        + _COSINE[:1]
        + _COSINE[2:]
        + ["training_module.loss.coeffs.forces=4.0"],
        "batch 1, forces weight 4",
    ),
    # the recipe of configs/dft.yaml (batch 1, WSD) at lr 0.005 and at the round-two winner's 0.01
    "batch1_wsd": (
        ["batch_size=1"] + _COSINE[:1] + _COSINE[2:3] + ["lr_decay_epochs={third}"],
        "batch 1, WSD (decay over the last third)",
    ),
    "batch1_lr1e-2_wsd": (_BATCH1_LR1E2_WSD, "batch 1, peak lr 0.01, WSD"),
    # the round-two winner with the Born-charge weight that lowered Z* in round one
    "batch1_lr1e-2_wsd_zstar_x4": (
        _BATCH1_LR1E2_WSD + ["training_module.loss.coeffs.born_effective_charges=4.0"],
        "batch 1, peak lr 0.01, WSD, Born-charge weight 4",
    ),
    # the architecture axis (issue 39): the recipe of configs/dft.yaml as it is now, with the
    # family chosen by --model (nequip_pol: message passing; allegro_pol: strictly local)
    "arch_base": (
        _BATCH1_LR1E2_WSD + ["training_module.loss.coeffs.born_effective_charges=4.0"],
        "the recipe (configs/dft.yaml), the --model config as it is",
    ),
    "arch_lmax2": (
        _BATCH1_LR1E2_WSD
        + ["training_module.loss.coeffs.born_effective_charges=4.0", "model.l_max=2"],
        "the recipe, l_max 2 (1)",
    ),
    "arch_layers4": (
        _BATCH1_LR1E2_WSD
        + [
            "training_module.loss.coeffs.born_effective_charges=4.0",
            "model.num_layers=4",
        ],
        "the recipe, 4 layers (NequIP-pol: 3)",
    ),
    "arch_wide_lmax2": (
        _BATCH1_LR1E2_WSD
        + [
            "training_module.loss.coeffs.born_effective_charges=4.0",
            "model.l_max=2",
            "model.num_scalar_features=128",
            "model.num_tensor_features=64",
        ],
        "the recipe, Allegro-pol l_max 2, 128 scalar / 64 tensor features (64 / 32)",
    ),
    "wide": (
        _COSINE + ["model.num_scalar_features=128", "model.num_tensor_features=64"],
        "128 scalar / 64 tensor features (64 / 32)",
    ),
    "lmax2": (_COSINE + ["model.l_max=2"], "l_max 2 (1)"),
    "layers3": (_COSINE + ["model.num_layers=3"], "3 Allegro layers (2)"),
    "float64": (_COSINE + ["model_dtype=float64"], "float64 model (float32)"),
    "full_zstar": (
        _COSINE + ["born_charge_training=full"],
        "all nine Z* components every step (projected)",
    ),
}

COLUMNS = [
    ("energy_rmse_meV_atom", "E meV/atom"),
    ("forces_rmse_meV_A", "F meV/A"),
    ("stress_rmse_meV_A3", "stress meV/A^3"),
    ("P_rmse_eA", "P e*A"),
    ("Zstar_rmse_e", "Z* e"),
    ("alpha_rmse_eA2_V", "alpha e*A^2/V"),
]


def _run(command, log: Path) -> None:
    print("+ " + " ".join(map(str, command)), flush=True)
    with open(log, "a") as f:
        proc = subprocess.run(
            list(map(str, command)), stdout=f, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        sys.exit(f"failed (exit {proc.returncode}); see {log}")


#: settings of configs/dft.yaml before the study that the study changed (its winner's), pinned
#: in every variant that does not set them (learning rate and batch size every variant sets)
BEFORE_STUDY = ["training_module.loss.coeffs.born_effective_charges=1.0"]

#: variant -> the variant whose plan (epochs, chunks) it shares. These change only the schedule,
#: the loss or the averaging: the same cost per epoch as the variant they point to, so they run its
#: epochs (no probe of their own; equal epochs make the CPU hours equal up to noise, where separate
#: probes on a loaded machine differed by 30 %)
SAME_COST_AS = {
    **{
        v: "cosine"
        for v in (
            "constant",
            "wsd",
            "wsd_energy_final",
            "lr_2e-3",
            "lr_1e-2",
            "forces_x4",
            "energy_x10",
            "ema_0.999",
            "zstar_x4",
        )
    },
    **{
        v: "batch1"
        for v in (
            "batch1_lr2e-3",
            "batch1_lr1e-2",
            "batch1_forces_x4",
            "batch1_wsd",
            "batch1_lr1e-2_wsd",
            "batch1_lr1e-2_wsd_zstar_x4",
        )
    },
}


def variant_overrides(variant: str, total_epochs: int) -> list:
    """The nequip-train overrides of ``variant`` for a run of ``total_epochs`` planned epochs.

    ``{third}`` in an override stands for ``total_epochs // 3`` (at least 1): the decay length of
    the WSD variant, computed here because nequip's ``int_div`` resolver needs exact division."""
    overrides, _ = VARIANTS[variant]
    third = max(1, total_epochs // 3)
    overrides = [o.format(third=third) for o in overrides]
    # the study changes configs/dft.yaml as it was before it: the loss weights the study has since
    # changed there are pinned to their old values unless the variant sets them
    for pinned in BEFORE_STUDY:
        key = pinned.split("=")[0]
        if not any(o.startswith(key + "=") for o in overrides):
            overrides.append(pinned)
    return overrides + [f"lr_total_epochs={total_epochs}"]


def probe_cost(out: Path, variant: str, args) -> float:
    """CPU seconds per training epoch of ``variant`` (one-epoch run, cached in OUT/<variant>/plan.json)."""
    plan_path = out / variant / "plan.json"
    if plan_path.exists():
        return json.loads(plan_path.read_text())["cpu_s_per_epoch"]
    probe = out / variant / "probe"
    command = [
        *TRAIN_LONG,
        probe,
        "--dataset",
        args.dataset,
        "--model",
        args.model,
        "--chunk-epochs",
        1,
        "--chunks",
        1,
        "--force",
        *variant_overrides(variant, 100),
    ]
    if args.data_file:
        command += ["--data-file", args.data_file]
    _run(command, out / variant / "probe.log")
    cost = 3600.0 * float(read_csv_rows(probe / "learning_curve.csv")[-1]["cpu_hours"])
    plan_path.write_text(json.dumps({"cpu_s_per_epoch": cost}))
    return cost


def plan(out: Path, variant: str, args):
    """(CPU s per epoch, epochs, chunk epochs, chunks) of ``variant``: from its own probe, or
    the plan of the variant it shares one with (SAME_COST_AS)."""
    variant = SAME_COST_AS.get(variant, variant)
    (out / variant).mkdir(parents=True, exist_ok=True)
    cost = probe_cost(out, variant, args)
    epochs = max(args.points, int(args.cpu_hours * 3600.0 // cost))
    chunk_epochs = max(1, round(epochs / args.points))
    chunks = max(1, round(epochs / chunk_epochs))
    return cost, chunk_epochs * chunks, chunk_epochs, chunks


def run_variant(out: Path, variant: str, args) -> None:
    (out / variant).mkdir(parents=True, exist_ok=True)
    cost, epochs, chunk_epochs, chunks = plan(out, variant, args)
    run = out / variant / "run"
    command = [
        *TRAIN_LONG,
        run,
        "--dataset",
        args.dataset,
        "--model",
        args.model,
        "--chunk-epochs",
        chunk_epochs,
        "--chunks",
        chunks,
        *variant_overrides(variant, epochs),
    ]
    if args.data_file:
        command += ["--data-file", args.data_file]
    finished = read_csv_rows(run / "learning_curve.csv")
    if finished and len(finished) >= chunks:
        print(f"{variant}: finished ({epochs} epochs)", flush=True)
        return
    if (run / "learning_curve.json").exists():
        command.append("--resume")
    print(
        f"{variant}: {cost:.0f} CPU s/epoch -> {epochs} epochs in {chunks} chunks",
        flush=True,
    )
    _run(command, out / variant / "run.log")


def planned_epochs(settings: dict):
    """The planned length of a run (its last ``lr_total_epochs`` override or replan), or None."""
    planned = None
    overrides = list(settings.get("overrides") or [])
    for replan in settings.get("replans") or []:
        overrides += (
            list(replan.get("overrides", [])) if isinstance(replan, dict) else []
        )
    for override in overrides:
        if str(override).startswith("lr_total_epochs="):
            planned = int(str(override).split("=", 1)[1])
    return planned


#: the study's settings, written when it runs: what the per-row command of the report repeats
STUDY_SETTINGS = "study.json"


def row_command(study: Path, dataset: str, variant: str, model: str = "") -> str:
    """The command that reruns one variant of a study (from the study's settings file and the
    run's model family), or ""."""
    path = study / STUDY_SETTINGS
    if not path.exists():
        return ""
    settings = json.loads(path.read_text())
    return (
        f"python benchmarks/recipe_study.py OUT --dataset {dataset} "
        + (f"--model {model} " if model else "")
        + f"--cpu-hours {settings['cpu_hours']:g} --points {settings['points']} "
        f"--variants {variant}"
    )


def report(paths, table_path, plot_path) -> None:
    """The table (Markdown) and plot of every variant under the given study folders (a run still
    going or stopped early shows its epochs as ``done of planned``)."""
    rows = []
    commands = []
    for study in map(Path, paths):
        dataset = json.loads(next(study.glob("*/run/learning_curve.json")).read_text())[
            "dataset"
        ]
        for variant_dir in sorted(
            p for p in study.iterdir() if (p / "run" / "learning_curve.csv").exists()
        ):
            curve = read_csv_rows(variant_dir / "run" / "learning_curve.csv")
            settings = json.loads(
                (variant_dir / "run" / "learning_curve.json").read_text()
            )
            rows.append((dataset, variant_dir.name, curve, settings))
            commands.append(
                row_command(
                    study, dataset, variant_dir.name, settings.get("model") or ""
                )
            )
    lines = [
        "| dataset | model | variant | change | epochs | CPU h | "
        + " | ".join(c for _, c in COLUMNS)
        + " | command |",
        "|" + " --- |" * (7 + len(COLUMNS)),
    ]
    for (dataset, variant, curve, settings), command in zip(rows, commands):
        last = curve[-1]
        values = [
            f"{float(last[k]):.3g}" if last.get(k) not in (None, "") else ""
            for k, _ in COLUMNS
        ]
        change = VARIANTS.get(variant, ([], variant))[1]
        planned = planned_epochs(settings)
        epochs = last["epochs"]
        if planned is not None and int(epochs) < planned:
            epochs = f"{epochs} of {planned}"
        lines.append(
            f"| {dataset} | {settings.get('model') or ''} | {variant} | {change} | {epochs} | "
            f"{float(last['cpu_hours']):.2f} | "
            + " | ".join(values)
            + (f" | `{command}` |" if command else " | |")
        )
    lines.append("")
    lines.append(
        "The nequip-train runs behind each row (nequip-pol train-long; OUT = the variant's run "
        "folder):"
    )
    lines.append("")
    for dataset, variant, curve, settings in rows:
        family = f" {settings['model']}" if settings.get("model") else ""
        lines.append(f"- {dataset}{family} {variant}: `{curve[-1]['command']}`")
    text = "\n".join(lines) + "\n"
    print(text)
    if table_path:
        Path(table_path).write_text(text)
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        datasets = sorted({r[0] for r in rows})

        def name(variant, settings):
            # the family too: the architecture axis runs the same variant for two families
            return (
                f"{settings['model']} {variant}" if settings.get("model") else variant
            )

        # one style per run name on every panel (20 colours, then dashed), one legend for all
        names = sorted({name(r[1], r[3]) for r in rows})
        colours = plt.get_cmap("tab20").colors
        style = {
            v: dict(color=colours[k % 20], ls="-" if k < 20 else "--")
            for k, v in enumerate(names)
        }
        fig, axes = plt.subplots(
            len(datasets),
            len(COLUMNS),
            figsize=(3.2 * len(COLUMNS) + 2.0, 3.0 * len(datasets)),
            squeeze=False,
        )
        for i, dataset in enumerate(datasets):
            for ds, variant, curve, settings in rows:
                if ds != dataset:
                    continue
                run_label = name(variant, settings)
                cpu = [float(r["cpu_hours"]) for r in curve]
                for ax, (key, label) in zip(axes[i], COLUMNS):
                    values = [
                        float(r[key]) if r.get(key) not in (None, "") else math.nan
                        for r in curve
                    ]
                    ax.plot(
                        cpu,
                        values,
                        marker="o",
                        ms=3,
                        label=run_label,
                        **style[run_label],
                    )
            for ax, (_, label) in zip(axes[i], COLUMNS):
                ax.set_yscale("log")
                ax.set_xlabel("CPU hours (training, 1 thread)")
                ax.set_title(f"{dataset}: test RMSE {label}", fontsize=9)
                ax.grid(True, which="both", alpha=0.3)
        handles = [
            plt.Line2D([], [], marker="o", ms=3, label=v, **style[v]) for v in names
        ]
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 1 - 1.9 / fig.get_figwidth(), 1))
        fig.savefig(plot_path, dpi=100)
        print(f"wrote {plot_path}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out",
        nargs="*",
        help="the study folder (with --report: one or more study folders)",
    )
    parser.add_argument("--dataset", default="SiO2", help="a group in configs/dataset")
    parser.add_argument(
        "--model", default="allegro_pol", help="a group in configs/model"
    )
    parser.add_argument(
        "--data-file", help="the data file (needed for --dataset analytic)"
    )
    parser.add_argument(
        "--cpu-hours",
        type=float,
        default=0.5,
        help="CPU-hour budget per variant (default 0.5)",
    )
    parser.add_argument(
        "--points", type=int, default=4, help="test-split evaluations per run (chunks)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        help="variants to run (default all)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a study (finished variants are skipped)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="write the table and plot of finished runs",
    )
    parser.add_argument("--table", help="with --report: Markdown table file")
    parser.add_argument("--plot", help="with --report: PNG file")
    parser.add_argument(
        "--list", action="store_true", help="print the variants and exit"
    )
    args = parser.parse_args()
    if args.list:
        for name, (overrides, what) in VARIANTS.items():
            print(f"{name:14s} {what}\n{'':14s} {' '.join(overrides)}")
        return
    if args.report:
        if not args.out:
            sys.exit("--report needs one or more study folders")
        report(args.out, args.table, args.plot)
        return
    if len(args.out) != 1:
        sys.exit("give one study folder OUT")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; --list shows them")
    out = Path(args.out[0]).resolve()
    # inside the repository only under runs/ (a study that spans sessions keeps its resumable
    # state there while it runs, as nequip-pol train-long allows)
    if (ROOT in out.parents or out == ROOT) and (ROOT / "runs") not in out.parents:
        sys.exit(
            f"{out} is inside the repository; studies live outside it, or under runs/NAME "
            "while they run"
        )
    if out.exists() and any(out.iterdir()) and not args.resume:
        sys.exit(f"{out} is not empty: --resume to continue the study in it")
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "dataset": args.dataset,
        "cpu_hours": args.cpu_hours,
        "points": args.points,
    }
    previous = out / STUDY_SETTINGS
    if previous.exists():
        stored = json.loads(previous.read_text())
        if stored != settings:
            sys.exit(
                f"{out} is a study with {stored}; this call asks for {settings}: "
                "one budget per study folder (use another folder)"
            )
    previous.write_text(json.dumps(settings))
    for variant in args.variants:
        run_variant(out, variant, args)


if __name__ == "__main__":
    main()
