"""Accuracy on the shared DFT data: train, then print test RMSEs next to the spread of each target.

For each dataset (BaTiO3, SiO2) and model (allegro_pol, nequip_pol) it runs ``nequip-train`` with
``configs/dft.yaml`` under a wall-clock budget, writing everything under OUT (outside the
repository: trained models are never committed), then prints the test-split RMSE of energy
(meV/atom), forces (meV/A), polarization (e*A per cell, nearest branch, and per atom), Born
charges (e) and polarizability (e*A^2/V), the standard deviation of each target over the whole
dataset, and the training time.

    python benchmarks/dft_accuracy.py OUT --minutes 60
    python benchmarks/dft_accuracy.py OUT --datasets SiO2 --models allegro_pol --minutes 20 \
        model.num_layers=1 model.num_tensor_features=8      # a smaller model for a CPU budget

The data folder is ``$NEQUIP_POL_DATA`` (default ``../shared/data``).

Bar to beat (published Allegro-pol, RMSE over all frames, training frames included):
BaTiO3 energy 0.53 meV/atom, forces 21 meV/A, P 0.066 e*A, Z* 0.019 e, alpha 0.024 e*A^2/V;
SiO2 forces 36 meV/A, P 0.013 e*A, Z* 0.007 e, alpha 0.017 e*A^2/V.
"""

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nequip_pol.data_path import shared_data_dir, DATA_ENV_VAR  # noqa: E402
from nequip_pol.train.callbacks import PROGRESS_COLUMNS  # noqa: E402

PUBLISHED = {
    "BaTiO3": {"E": 0.53, "F": 21, "P": 0.066, "Z*": 0.019, "alpha": 0.024},
    "SiO2": {"F": 36, "P": 0.013, "Z*": 0.007, "alpha": 0.017},
}
# (logged metric, column, factor to the printed unit, unit): the training progress table without
# stress (no published figure), with P per atom beside P per cell
COLUMNS = [c for c in PROGRESS_COLUMNS if c[1] != "stress"]
COLUMNS.insert(3, ("per_atom_polarization_rmse", "P/atom", 1.0, "e*A/atom"))


def target_spread(path: Path) -> dict:
    """Standard deviation of each target over the whole file (P: component std after folding to
    the branch nearest zero, i.e. the spread the model has to learn, up to branch jumps)."""
    import ase.io

    frames = ase.io.read(path, ":")
    energy = [a.info["total_energy"] / len(a) for a in frames]
    forces = np.concatenate([a.get_forces().ravel() for a in frames])
    pol = np.array([a.calc.results["polarization"] for a in frames])
    born = np.concatenate([a.arrays["born_charge"].ravel() for a in frames])
    alpha = np.array([np.ravel(a.info["polarizability"]) for a in frames])
    return {
        "E": 1000.0 * np.std(energy),
        "F": 1000.0 * np.std(forces),
        "P": float(np.std(pol)),
        "P/atom": float(np.std(pol / len(frames[0]))),
        "Z*": float(np.std(born)),
        "alpha": float(np.std(alpha)),
    }


def train(
    dataset: str, model: str, out: Path, minutes: float, data_dir: Path, overrides=()
) -> tuple:
    run_dir = out / f"{dataset}_{model}"
    hours, mins = divmod(int(minutes), 60)
    command = [
        sys.executable,
        "-m",
        "nequip.scripts.train",
        "-cp",
        str(ROOT / "configs"),
        "-cn",
        "dft",
        f"dataset={dataset}",
        f"model={model}",
        f"data_dir={data_dir}",
        f"max_time=00:{hours:02d}:{mins:02d}:00",
        "max_epochs=100000",
        "++trainer.logger._target_=lightning.pytorch.loggers.CSVLogger",
        f"++trainer.logger.save_dir={run_dir}",
        "++trainer.logger.name=log",
        "++trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    print("+ " + " ".join(command), flush=True)
    start = time.time()
    subprocess.run(command, check=True)
    elapsed = time.time() - start
    metrics = {}
    for path in sorted(run_dir.glob("log/*/metrics.csv")):
        for row in csv.DictReader(open(path)):
            for key, value in row.items():
                if key.startswith("test0_epoch/") and value not in ("", None):
                    metrics[key.split("/", 1)[1]] = float(value)
    return metrics, elapsed


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out", help="folder for runs and trained models (outside the repository)"
    )
    parser.add_argument("--datasets", nargs="+", default=["BaTiO3", "SiO2"])
    parser.add_argument("--models", nargs="+", default=["allegro_pol", "nequip_pol"])
    parser.add_argument(
        "--minutes", type=float, default=60.0, help="training wall-clock budget per run"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra nequip-train overrides, e.g. model.num_layers=1",
    )
    args = parser.parse_intermixed_args()

    out = Path(args.out).resolve()
    if ROOT in out.parents or out == ROOT:
        sys.exit(f"{out} is inside the repository; trained models must live outside it")
    data_dir = shared_data_dir()
    if not (data_dir / "dft").is_dir():
        sys.exit(f"no DFT data at {data_dir}: set {DATA_ENV_VAR}")
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    for dataset in args.datasets:
        spread = target_spread(data_dir / "dft" / f"{dataset}.xyz")
        for model in args.models:
            metrics, elapsed = train(
                dataset, model, out, args.minutes, data_dir, args.overrides
            )
            rows.append((dataset, model, metrics, spread, elapsed))

    print()
    header = (
        f"{'dataset':8s} {'model':12s} "
        + " ".join(f"{c:>18s}" for _, c, _, _ in COLUMNS)
        + f" {'train min':>9s}"
    )
    print(header)
    print(" " * 22 + " ".join(f"{u:>18s}" for _, _, _, u in COLUMNS))
    for dataset, model, metrics, spread, elapsed in rows:
        cells = []
        for key, column, factor, _ in COLUMNS:
            value = metrics.get(key, float("nan")) * factor
            cells.append(f"{value:8.4g} (std {spread[column]:6.3g})")
        print(
            f"{dataset:8s} {model:12s} "
            + " ".join(f"{c:>18s}" for c in cells)
            + f" {elapsed / 60:9.1f}"
        )
        published = PUBLISHED.get(dataset, {})
        print(
            f"{'':8s} {'published':12s} "
            + " ".join(
                f"{published.get(c, float('nan')):>18.3g}" for _, c, _, _ in COLUMNS
            )
            + "   (all frames)"
        )


if __name__ == "__main__":
    main()
