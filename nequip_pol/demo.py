"""The main job: the whole method on the analytic reference material, in one command.

``nequip-pol demo OUT_DIR`` generates labelled frames of the analytic material (random
displacements, strains and fields; P on random branches like Berry-phase data), trains a small
Allegro-pol model with ``nequip-train`` and the shipped config ``analytic_allegro_pol.yaml``,
then evaluates it on fresh frames against the exact E, F, P, Z*, alpha, printing the errors next
to the spread of each target and writing parity plots (PNG).

The training runs a fixed number of epochs (:data:`DEMO_EPOCHS`) on a fixed schedule, so the
result does not depend on how fast or how loaded the machine is; a wall-time limit far above a
normal run only guards against a stuck machine. The demo then judges its own result: each test
RMSE/std is compared with :data:`TARGETS`, and a missed target (or a run stopped by the time
limit) is reported on a line starting with ``RESULT: MISSED`` and exit status 3.
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
#: epochs of the shipped schedule (cosine learning-rate decay over exactly these epochs)
DEMO_EPOCHS = 40
#: exit status when a target is missed
EXIT_TARGET_MISSED = 3
QUANTITIES = (
    # key, label, unit
    ("per_atom_energy", "energy per atom", "meV/atom"),
    ("forces", "forces", "meV/A"),
    ("polarization", "polarization (cell)", "e*A"),
    ("born_effective_charges", "Born charges", "e"),
    ("polarizability", "polarizability", "e*A^2/V"),
)
_SCALE = {"per_atom_energy": 1000.0, "forces": 1000.0}
#: key -> (RMSE/std of the reference run, pass limit). Reference: `nequip-pol demo` with the
#: defaults on 2 cores under a load of ~9 (1 training thread, 40 epochs, 20.7 min wall, 8.5 min CPU;
#: docs/reference_material.md); the limits are about twice those values.
TARGETS = {
    "per_atom_energy": (0.054, 0.15),
    "forces": (0.042, 0.10),
    "polarization": (0.030, 0.10),
    "born_effective_charges": (0.052, 0.10),
    "polarizability": (0.018, 0.10),
}


def _log(message: str) -> None:
    print(f"[nequip-pol demo] {message}", flush=True)


def training_threads() -> int:
    """Threads for the training: the cores not already busy (at least one).

    Torch's threads wait for each other at every operation, so on a machine whose cores are
    taken by other jobs a second thread slows the training down instead of speeding it up.
    ``OMP_NUM_THREADS`` set by the user wins.
    """
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(round(cores - busy))))


def train(out_dir: Path, data_file: Path, num_train: int, num_val: int, max_minutes: float, max_epochs: int) -> Path:
    """Run ``nequip-train`` with the shipped config for ``max_epochs`` epochs (stopped early only by
    the safety limit ``max_minutes``); return the last checkpoint (the end of the schedule)."""
    config_dir = out_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files(__package__) / f"{CONFIG_NAME}.yaml") as source:
        shutil.copy(source, config_dir / f"{CONFIG_NAME}.yaml")
    run_dir = out_dir / "train"
    total_seconds = int(round(max_minutes * 60))
    hours, rest = divmod(total_seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    command = [
        sys.executable, "-m", "nequip.scripts.train",
        "-cp", str(config_dir.resolve()), "-cn", CONFIG_NAME,
        f"data_file={data_file.resolve()}",
        f"num_train={num_train}", f"num_val={num_val}", "num_test=0",
        "run=[train]",
        f"max_epochs={max_epochs}",
        f"++trainer.max_time=00:{hours:02d}:{minutes:02d}:{seconds:02d}",
        f"hydra.run.dir={run_dir.resolve()}",
    ]
    env = dict(os.environ)
    threads = env.setdefault("OMP_NUM_THREADS", str(training_threads()))
    _log(f"training {max_epochs} epochs on {threads} thread(s) (one line per epoch below; safety limit "
         f"{max_minutes:g} min): " + " ".join(command[2:]))
    subprocess.run(command, check=True, env=env)
    checkpoint = run_dir / "last.ckpt"
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


def errors(pairs) -> dict:
    """key -> (test RMSE, target std, RMSE/std), in the units of QUANTITIES."""
    result = {}
    for key, _, _ in QUANTITIES:
        ref, pred = pairs[key]
        rmse = float(np.sqrt(np.mean((ref - pred) ** 2)))
        std = float(np.std(ref))
        result[key] = (rmse, std, rmse / std)
    return result


def report(pairs) -> tuple:
    """The error table with the reference run and the pass limit of each quantity, and the
    labels of the quantities that missed their limit."""
    header = f"{'quantity':<22}{'test RMSE':>11}{'target std':>12}{'RMSE/std':>10}{'reference':>11}{'limit':>7}  unit"
    lines, missed = [header], []
    for (key, label, unit), (rmse, std, ratio) in zip(QUANTITIES, errors(pairs).values()):
        reference, limit = TARGETS[key]
        ok = ratio <= limit
        if not ok:
            missed.append(label)
        ref_text = "-" if reference is None else f"{reference:.3f}"
        lines.append(f"{label:<22}{rmse:>11.4g}{std:>12.4g}{ratio:>10.3f}{ref_text:>11}{limit:>7.2f}  {unit}"
                     + ("" if ok else "   <- MISSED"))
    return "\n".join(lines), missed


def epochs_trained(run_dir: Path) -> int:
    """Epochs completed by the training (from the progress CSV written during training)."""
    progress = run_dir / "progress.csv"
    if not progress.exists():
        return 0
    rows = progress.read_text().strip().splitlines()[1:]
    return int(rows[-1].split(",")[0]) if rows else 0


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
    epochs: int = DEMO_EPOCHS,
    max_minutes: float = 120.0,
    seed: int = 0,
    force: bool = False,
) -> dict:
    """Generate, train, evaluate, judge.

    Returns a dict with ``pairs`` (reference, prediction per quantity), ``errors`` (key -> (RMSE,
    std, RMSE/std)), ``missed`` (labels of quantities over their limit), ``epochs`` (trained) and
    ``passed``.
    """
    start = time.time()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is a file; choose a folder name")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another folder or pass --force")
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    if force and (out_dir / "train").exists():
        shutil.rmtree(out_dir / "train")
    out_dir.mkdir(parents=True, exist_ok=True)

    _log(f"step 1/3: generating {num_train + num_val} training/validation frames and {num_test} test frames "
         f"of the analytic material in {out_dir}")
    data_file = out_dir / "analytic_train.xyz"
    write_dataset(generate_dataset(num_train + num_val, seed=seed), data_file, force=True)
    test_frames = generate_dataset(num_test, seed=seed + 1000)
    write_dataset(test_frames, out_dir / "analytic_test.xyz", force=True)

    _log("step 2/3: training")
    checkpoint = train(out_dir, data_file, num_train, num_val, max_minutes, epochs)
    trained = epochs_trained(out_dir / "train")

    _log(f"step 3/3: evaluating {checkpoint} on {num_test} unseen frames against the exact values")
    predictions = predict(checkpoint, test_frames, r_max=5.0)
    pairs = compare(test_frames, predictions)
    table, missed = report(pairs)
    print(table, flush=True)
    (out_dir / "test_errors.txt").write_text(table + "\n")
    parity_plots(pairs, out_dir / "parity.png")
    _log(f"wrote {out_dir / 'test_errors.txt'}, {out_dir / 'parity.png'}, the model {checkpoint} "
         f"and the training log {out_dir / 'train'}; total {time.time() - start:.0f} s")

    passed = not missed and trained >= epochs
    if passed:
        print(f"RESULT: OK: all test errors within their limits after {trained} epochs", flush=True)
    else:
        reasons = []
        if trained < epochs:
            reasons.append(f"the safety time limit ({max_minutes:g} min) stopped training after {trained} of {epochs} "
                           "epochs (a very slow or overloaded machine; raise --max-minutes)")
        elif epochs < DEMO_EPOCHS:
            reasons.append(f"only {epochs} epoch{'' if epochs == 1 else 's'} asked for (the shipped schedule has {DEMO_EPOCHS})")
        if missed:
            reasons.append("over the limit: " + ", ".join(missed))
        print("RESULT: MISSED: the model is under-trained or inaccurate; " + "; ".join(reasons), flush=True)
    return {"pairs": pairs, "errors": errors(pairs), "missed": missed, "epochs": trained, "passed": passed}


def main(args) -> int:
    try:
        result = run_demo(args.out_dir, epochs=DEMO_EPOCHS if args.epochs is None else args.epochs,
                          max_minutes=args.max_minutes, seed=args.seed, force=args.force)
    except (FileExistsError, ValueError) as error:
        print(f"nequip-pol demo: error: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"nequip-pol demo: error: nequip-train failed (exit status {error.returncode}); its messages are above",
              file=sys.stderr)
        return 1
    return 0 if result["passed"] else EXIT_TARGET_MISSED
