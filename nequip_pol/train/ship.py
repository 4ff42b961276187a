"""Ship a trained model (``nequip-pol ship``): package a long run's best checkpoint into
``nequip_pol/models/`` of the checkout, with its card.

:func:`ship_model` packages ``RUN/run/best.ckpt`` with ``nequip-package build`` into
``nequip_pol/models/NAME.nequip.zip`` (an existing archive is kept unless ``force``), writes
``NAME.json`` (data, split, recipe, epochs, CPU hours, test RMSEs in base units beside the
published Allegro-pol errors and the project's targets) and the draft card ``NAME.md`` (kept when
it exists: a card is finished by hand). A developer action: it writes into the checkout the
package runs from, and refuses to run from an installed wheel. Errors are
:class:`~nequip_pol.train.checkout.TrainingToolError`. Only the standard library is imported at
module level.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .checkout import (
    TrainingToolError,
    checkout_root,
    config_dir,
    config_seed,
    dataset_files,
    read_dataset_config,
    split_parts,
)

__all__ = [
    "COLUMNS",
    "PUBLISHED",
    "TARGETS",
    "UNITS",
    "models_dir",
    "ship_model",
    "error_table",
    "card_text",
]

# learning_curve.csv column -> (card key, factor to base units)
COLUMNS = {
    "energy_rmse_meV_atom": ("E", 1e-3),
    "forces_rmse_meV_A": ("F", 1e-3),
    "stress_rmse_meV_A3": ("stress", 1e-3),
    "P_rmse_eA": ("P", 1.0),
    "Zstar_rmse_e": ("Z*", 1.0),
    "alpha_rmse_eA2_V": ("alpha", 1.0),
}
# published Allegro-pol RMSEs (Falletta et al. 2025, all frames) and the project's targets (test
# split): SiO2 from issue 19, BaTiO3 from issue 39 (test split with domain frames)
PUBLISHED = {
    "SiO2": {"F": 0.036, "P": 0.013, "Z*": 0.007, "alpha": 0.017},
    "BaTiO3": {"E": 0.00053, "F": 0.021, "P": 0.066, "Z*": 0.019, "alpha": 0.024},
}
TARGETS = {
    "SiO2": {"F": 0.050, "P": 0.02, "Z*": 0.012, "alpha": 0.025},
    "BaTiO3": {"E": 0.001, "F": 0.060, "P": 0.1, "Z*": 0.04, "alpha": 0.05},
}
UNITS = {
    "E": ("meV/atom", 1e3),
    "F": ("meV/A", 1e3),
    "stress": ("meV/A^3", 1e3),
    "P": ("e*A", 1.0),
    "Z*": ("e", 1.0),
    "alpha": ("e*A^2/V", 1.0),
}


def models_dir() -> Path:
    """``nequip_pol/models`` of the checkout; ``TrainingToolError`` when the package is not
    run from a checkout (shipping a model is a change to the repository)."""
    root = checkout_root()
    if root is None:
        raise TrainingToolError(
            "ship writes the model into nequip_pol/models/ of a checkout of the repository "
            "(a developer action); run it from a checkout (pip install -e .), not an installed wheel"
        )
    return root / "nequip_pol" / "models"


def ship_model(
    run,
    name: str,
    force: bool = False,
    config_dir_given=None,
    earlier_cpu_hours: float = 0.0,
) -> Path:
    """Package the best checkpoint of the long run in ``run`` as the shipped model ``name``
    (see the module docstring); returns the archive's path. ``earlier_cpu_hours``: the CPU
    hours of the stages a fine-tune started from (``init_checkpoint=``), recorded beside the
    run's own so that the card states what the model cost in all."""
    import nequip_pol.models as shipped

    run = Path(run).resolve()
    if not shipped.is_shipped_name(name):
        raise TrainingToolError(
            f"--name must be one of {', '.join(shipped.SHIPPED_MODELS)}"
        )
    if not earlier_cpu_hours >= 0.0:
        raise TrainingToolError(
            f"--earlier-cpu-hours must be a number >= 0, got {earlier_cpu_hours}"
        )
    configs = config_dir(config_dir_given)
    root = checkout_root()
    name = name.lower()
    archive = models_dir() / shipped.SHIPPED_MODELS[name][0]
    if archive.exists() and not force:
        raise TrainingToolError(f"{archive} exists (--force replaces it)")
    if not (run / "learning_curve.json").is_file():
        raise TrainingToolError(
            f"{run} is not a learning-curve run (no learning_curve.json)"
        )
    settings = json.loads((run / "learning_curve.json").read_text())
    curve = (
        list(csv.DictReader(open(run / "learning_curve.csv")))
        if (run / "learning_curve.csv").is_file()
        else []
    )
    if not curve:
        raise TrainingToolError(f"{run} has no finished chunk")
    last = curve[-1]
    dataset = settings["dataset"]
    dataset_settings = read_dataset_config(dataset, configs)
    # the card needs the frame counts and the test split
    paths = dataset_files(dataset_settings)
    import ase.io

    frame_counts = [len(ase.io.read(path, ":")) for path in paths]
    n_frames = sum(frame_counts)
    split = dataset_settings["split"]
    fractions = [split["train"], split["val"], split["test"]]
    overrides = [o for o in settings["overrides"] if not o.startswith("seed=")]
    seed = int(
        next(
            (
                o.split("=", 1)[1]
                for o in settings["overrides"]
                if o.startswith("seed=")
            ),
            config_seed(configs),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / archive.name
        # nequip-package reads the checkpoint's training data (for example inputs) from the path
        # recorded at training time, relative to where training ran: the project root. Run
        # as a module of this Python (its console script may not be on PATH)
        package = [sys.executable, "-m", "nequip.scripts.package", "build"]
        built = subprocess.run(
            [*package, str(run / "run" / "best.ckpt"), str(target)], cwd=root
        )
        if built.returncode != 0:
            raise TrainingToolError(
                f"nequip-package build failed for {run / 'run' / 'best.ckpt'} (above); it needs "
                "the training data at the path the checkpoint recorded, relative to the project root"
            )
        shutil.move(target, archive)
    card = {
        "name": name,
        "dataset": dataset,
        "data": {
            "file": f"dft/{dataset_settings['dataset_file']}",
            # every file in reading order (frame indices count through them)
            "files": [f"{Path(path).parent.name}/{Path(path).name}" for path in paths],
            "frames_per_file": frame_counts,
            "frames": n_frames,
            "source": "Falletta et al., Nat. Commun. 16, 4031 (2025), mir-group/allegro-pol (MIT)",
        },
        "split": {
            "seed": seed,
            "fractions": fractions,
            "test_indices": sorted(
                i
                for i, part in split_parts(frame_counts, split, seed).items()
                if part == "test"
            ),
        },
        "recipe": {
            "config": "configs/dft.yaml",
            "model": settings["model"],
            "overrides": overrides,
            # a schedule re-planned mid-run (train-long --replan), from which epoch on
            "replans": [
                {
                    "from_epoch": int(curve[r["from_chunk"] - 2]["epochs"])
                    if r["from_chunk"] > 1
                    else 0,
                    "overrides": r["overrides"],
                }
                for r in settings.get("replans", [])
                if "overrides" in r  # (the others changed only the chunk length)
            ],
        },
        "training": {
            "epochs": int(last["epochs"]),
            # the shipped weights: best.ckpt, the best validation epoch of those trained
            "best_epoch": int(last["tested_epoch"])
            if last.get("tested_epoch")
            else None,
            "cpu_hours": float(last["cpu_hours"]),
            "wall_hours": float(last["wall_hours"]),
            "threads": 1,
            # a fine-tune's total: the stages it started from plus this run
            **(
                {"cpu_hours_all_stages": earlier_cpu_hours + float(last["cpu_hours"])}
                if earlier_cpu_hours
                else {}
            ),
        },
        "test_rmse": {
            key: float(last[column]) * factor
            for column, (key, factor) in COLUMNS.items()
            if last.get(column) not in (None, "")
        },
        "published_rmse": PUBLISHED.get(dataset, {}),
        "target_rmse": TARGETS.get(dataset, {}),
        "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
    }
    json_path = archive.with_name(f"{name}.json")
    json_path.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {archive} ({archive.stat().st_size / 1e6:.2f} MB) and {json_path}")
    text = card_text(card, archive)
    card_md = archive.with_name(f"{name}.md")
    if card_md.exists():
        # the card is edited by hand after the first draft: never overwritten
        print(f"{card_md} exists (kept); its generated part would read:\n")
        print(text)
    else:
        card_md.write_text(text)
        print(f"wrote the draft card {card_md}: add the known limits")
    return archive


def error_table(card: dict) -> str:
    """Markdown table: the model's test RMSEs beside the targets and the published errors."""
    lines = [
        "| | " + " | ".join(f"{k} ({UNITS[k][0]})" for k in UNITS) + " |",
        "|" + " --- |" * (1 + len(UNITS)),
    ]
    for label, values in (
        ("**this model**, test split", card["test_rmse"]),
        ("target, test split", card["target_rmse"]),
        ("published Allegro-pol (all frames)", card["published_rmse"]),
    ):
        cells = [f"{values[k] * UNITS[k][1]:.3g}" if k in values else "" for k in UNITS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def card_text(card: dict, archive: Path) -> str:
    """The generated part of a model card (facts from NAME.json)."""
    train, data, split = card["training"], card["data"], card["split"]
    n_test = len(split["test_indices"])
    size_mb = archive.stat().st_size / 1e6
    best = f" (epoch {train['best_epoch']})" if train.get("best_epoch") else ""
    replanned = "".join(
        f" (re-planned after epoch {r['from_epoch']}: `{' '.join(r['overrides'])}`)"
        for r in card["recipe"].get("replans", [])
    )
    files = ", ".join(f"`{f}`" for f in data.get("files", [data["file"]]))
    per_file = (
        ": " + " + ".join(str(n) for n in data["frames_per_file"])
        if len(data.get("frames_per_file", [])) > 1
        else ""
    )
    all_stages = (
        f"; {train['cpu_hours_all_stages']:.2f} CPU hours with the stages it was fine-tuned from"
        if "cpu_hours_all_stages" in train
        else ""
    )
    return f"""# Shipped model `{card["name"]}`: {card["dataset"]}

`nequip_pol.models.load("{card["name"]}")` in Python; MODEL `{card["name"]}` in every
`nequip-pol` verb and in the examples. Archive: `{archive.name}` (`nequip-package`,
{size_mb:.1f} MB, sha256 `{card["archive_sha256"][:16]}...`).

## Data

- {files} of the shared data ({data["frames"]} frames{per_file}): {data["source"]}.
  Quantum ESPRESSO, PBE, Berry-phase polarization, Born charges and polarizability from
  finite fields; zero field in every frame.
- Split: nequip's random split with seed {split["seed"]}, fractions train/val/test
  {split["fractions"]}, each file split on its own (`nequip_pol.data.ASEFilesDataModule`);
  the {n_test} test frames (indices in reading order over the files, in `{card["name"]}.json`:
  {", ".join(str(i) for i in split["test_indices"])}) were never trained on nor used to choose
  the checkpoint.

## Recipe

`{card["recipe"]["config"]}` with `model={card["recipe"]["model"]}` and
`{" ".join(card["recipe"]["overrides"])}`{replanned}; the best checkpoint by validation score{best}.
{train["epochs"]} epochs, **{train["cpu_hours"]:.2f} CPU hours** on {train["threads"]}
thread ({train["wall_hours"]:.2f} h wall on a shared 2-core machine){all_stages}.

## Test errors (RMSE)

{error_table(card)}

`tests/test_shipped_models.py` recomputes these numbers with the ASE calculator on the test
frames (shared data needed).
"""
