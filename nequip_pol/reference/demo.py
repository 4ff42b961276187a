"""The main job: the whole method on the analytic reference material, in one command.

``nequip-pol demo OUT_DIR`` generates labelled frames of the analytic material (random
displacements, strains and fields; P on random branches like Berry-phase data), trains a small
Allegro-pol model with ``nequip-train`` and the shipped config ``analytic_allegro_pol.yaml``,
then evaluates it on fresh frames against the exact E, F, P, Z*, alpha, printing the errors next
to the spread of each target and writing parity plots (PNG).
"""

import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from .analytic_material import AnalyticPolarMaterial, generate_dataset, write_dataset

CONFIG_NAME = "analytic_allegro_pol"
QUANTITIES = (
    # key, label, unit
    ("per_atom_energy", "energy per atom", "meV/atom"),
    ("forces", "forces", "meV/A"),
    ("polarization", "polarization (cell)", "e*A"),
    ("born_effective_charges", "Born charges", "e"),
    ("polarizability", "polarizability", "e*A^2/V"),
)
_SCALE = {"per_atom_energy": 1000.0, "forces": 1000.0}


def _log(message: str) -> None:
    print(f"[nequip-pol demo] {message}", flush=True)


def train(out_dir: Path, data_file: Path, num_train: int, num_val: int, max_minutes: float, max_epochs: int) -> Path:
    """Run ``nequip-train`` with the shipped config; return the best checkpoint."""
    config_dir = out_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files(__package__) / f"{CONFIG_NAME}.yaml") as source:
        shutil.copy(source, config_dir / f"{CONFIG_NAME}.yaml")
    run_dir = out_dir / "train"
    minutes = int(max_minutes)
    seconds = int(round((max_minutes - minutes) * 60))
    command = [
        sys.executable, "-m", "nequip.scripts.train",
        "-cp", str(config_dir.resolve()), "-cn", CONFIG_NAME,
        f"data_file={data_file.resolve()}",
        f"num_train={num_train}", f"num_val={num_val}", "num_test=0",
        "run=[train]",
        f"max_epochs={max_epochs}",
        f"++trainer.max_time=00:00:{minutes:02d}:{seconds:02d}",
        f"hydra.run.dir={run_dir.resolve()}",
    ]
    _log("training: " + " ".join(command[2:]))
    subprocess.run(command, check=True)
    checkpoint = run_dir / "best.ckpt"
    if not checkpoint.exists():
        raise RuntimeError(f"training finished without writing {checkpoint}")
    return checkpoint


def predict(checkpoint: Path, frames, r_max: float):
    """Model predictions (numpy) for each frame, with its field as input."""
    import torch
    from nequip.data import from_ase
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.utils.global_state import set_global_state

    set_global_state()
    model = load_saved_model(str(checkpoint), "eager").eval()
    dtype = model.model_dtype
    mapper = ChemicalSpeciesToAtomTypeMapper(model.type_names)
    neighbors = NeighborListTransform(r_max=r_max)
    predictions = []
    for atoms in frames:
        data = neighbors(mapper(from_ase(atoms)))
        data["electric_field"] = torch.as_tensor(np.asarray(atoms.info["electric_field"]).reshape(1, 3))
        data = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in data.items()}
        out = model(data)
        predictions.append({k: v.detach().double().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)})
    return predictions


def compare(frames, predictions):
    """Pairs (reference, prediction) per quantity, flattened, in the units of QUANTITIES."""
    pairs = {key: ([], []) for key, _, _ in QUANTITIES}

    def add(key, ref, pred):
        scale = _SCALE.get(key, 1.0)
        pairs[key][0].append(np.ravel(ref) * scale)
        pairs[key][1].append(np.ravel(pred) * scale)

    for atoms, pred in zip(frames, predictions):
        n = len(atoms)
        add("per_atom_energy", atoms.info["total_energy"] / n, pred["total_energy"] / n)
        add("forces", atoms.arrays["forces"], pred["forces"])
        # the exact (unshifted) branch: the model's P is a continuous function of the structure
        add("polarization", atoms.info["polarization_exact"], pred["polarization"])
        add("born_effective_charges", atoms.arrays["born_effective_charges"], pred["born_effective_charges"])
        add("polarizability", atoms.info["polarizability"], pred["polarizability"])
    return {key: (np.concatenate(ref), np.concatenate(pred)) for key, (ref, pred) in pairs.items()}


def report(pairs) -> str:
    lines = [f"{'quantity':<22}{'test RMSE':>12}{'target std':>12}{'RMSE/std':>10}  unit"]
    for key, label, unit in QUANTITIES:
        ref, pred = pairs[key]
        rmse = float(np.sqrt(np.mean((ref - pred) ** 2)))
        std = float(np.std(ref))
        lines.append(f"{label:<22}{rmse:>12.4g}{std:>12.4g}{rmse / std:>10.3f}  {unit}")
    return "\n".join(lines)


def parity_plots(pairs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(4 * len(QUANTITIES), 4))
    for ax, (key, label, unit) in zip(axes, QUANTITIES):
        ref, pred = pairs[key]
        ax.scatter(ref, pred, s=3, alpha=0.5)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(label)
        ax.set_xlabel(f"exact ({unit})")
        ax.set_ylabel(f"Allegro-pol ({unit})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(
    out_dir,
    num_train: int = 170,
    num_val: int = 20,
    num_test: int = 30,
    max_minutes: float = 6.0,
    max_epochs: int = 1000,
    seed: int = 0,
    force: bool = False,
) -> dict:
    """Generate, train, evaluate; returns the (reference, prediction) pairs per quantity."""
    start = time.time()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another folder or pass --force")
    if force and (out_dir / "train").exists():
        shutil.rmtree(out_dir / "train")
    out_dir.mkdir(parents=True, exist_ok=True)

    _log(f"generating {num_train + num_val} training/validation frames and {num_test} test frames")
    data_file = out_dir / "analytic_train.xyz"
    write_dataset(generate_dataset(num_train + num_val, seed=seed), data_file, force=True)
    test_frames = generate_dataset(num_test, seed=seed + 1000)
    write_dataset(test_frames, out_dir / "analytic_test.xyz", force=True)

    checkpoint = train(out_dir, data_file, num_train, num_val, max_minutes, max_epochs)

    _log(f"evaluating {checkpoint} on {num_test} unseen frames against the exact values")
    predictions = predict(checkpoint, test_frames, r_max=5.0)
    pairs = compare(test_frames, predictions)
    table = report(pairs)
    print(table, flush=True)
    (out_dir / "test_errors.txt").write_text(table + "\n")
    parity_plots(pairs, out_dir / "parity.png")
    _log(f"wrote {out_dir / 'test_errors.txt'} and {out_dir / 'parity.png'}; total {time.time() - start:.0f} s")
    return pairs


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", nargs="?", default="nequip-pol-demo", help="folder to write into (default: nequip-pol-demo)")
    parser.add_argument("--num-train", type=int, default=170)
    parser.add_argument("--num-val", type=int, default=20)
    parser.add_argument("--num-test", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=6.0, help="wall-clock budget of the training (default 6)")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="write into an existing non-empty folder")


def main(args) -> int:
    try:
        run_demo(args.out_dir, args.num_train, args.num_val, args.num_test, args.minutes, args.max_epochs,
                 args.seed, args.force)
    except FileExistsError as error:
        print(f"nequip-pol demo: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
