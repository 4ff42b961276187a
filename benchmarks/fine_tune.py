"""Fine-tuning an energy model into a field-aware one vs training from scratch (analytic material).

Setting: many frames with energies/forces/stress only (zero field), few with everything
(E, F, stress, P, Z*, alpha; half of them under a random field), as when DFT energies and forces
are cheap and DFPT / finite-field response is expensive. For each number of response frames
(``--n-response``) it trains, with ``configs/fine_tune``:

  (a) frozen    FieldAwareModel of the energy model, original weights frozen, on the response frames
  (b) all       FieldAwareModel, all weights (original ones at lr/10), on the response frames
  (c) scratch   AllegroPolModel (same architecture) from scratch on the response frames only
  (d) masked    AllegroPolModel from scratch on all frames, missing P/Z*/alpha NaN-masked

after training the stock Allegro energy model (``energy_model.yaml``) on the E/F frames. Budgets:
(a)-(c) ``--minutes`` each; (d) ``--energy-minutes + --minutes`` (the compute of energy model plus
fine-tuning). Test errors against the exact values on fresh frames: E and F on zero-field frames
(what the energy model already does), F under a field, P (exact branch), Z*, alpha.

    OMP_NUM_THREADS=1 python benchmarks/fine_tune.py OUT --n-ef 100 --n-response 5 10 20 --minutes 1.5 --energy-minutes 3
    # the same OUT again reuses data, energy model and finished runs; e.g. (a), (b) at another learning rate:
    OMP_NUM_THREADS=1 python benchmarks/fine_tune.py OUT --n-ef 100 --variants a b --fine-tune-lr 0.005

Results and discussion: docs/fine_tuning.md.

Everything is written under OUT (never commit it); the table is printed and saved as OUT/table_<variants>.md.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "fine_tune"
sys.path.insert(0, str(ROOT))

COLUMNS = [
    # name, unit, scale
    ("E0", "meV/atom", 1000.0),
    ("F0", "meV/A", 1000.0),
    ("F(E)", "meV/A", 1000.0),
    ("P", "e*A", 1.0),
    ("Z*", "e", 1.0),
    ("alpha", "e*A^2/V", 1.0),
]


def strip_response(frames):
    """Keep only E, F, stress (as a plain DFT energy/force data set would have)."""
    for atoms in frames:
        for key in (
            "polarization",
            "polarization_exact",
            "polarizability",
            "electric_field",
        ):
            atoms.info.pop(key, None)
        atoms.arrays.pop("born_effective_charges", None)
    return frames


def make_data(out: Path, n_ef: int, n_response: int, n_test: int, seed: int) -> dict:
    from nequip_pol.reference import generate_dataset, write_dataset

    paths = {
        k: out / f"{k}.xyz"
        for k in ("ef", "ef_val", "response", "response_val", "test")
    }
    if all(p.exists() for p in paths.values()):
        return paths
    write_dataset(
        strip_response(generate_dataset(n_ef, seed=seed, field_fraction=0.0)),
        paths["ef"],
        force=True,
    )
    write_dataset(
        strip_response(generate_dataset(10, seed=seed + 1, field_fraction=0.0)),
        paths["ef_val"],
        force=True,
    )
    write_dataset(
        generate_dataset(n_response, seed=seed + 2), paths["response"], force=True
    )
    write_dataset(generate_dataset(5, seed=seed + 3), paths["response_val"], force=True)
    write_dataset(generate_dataset(n_test, seed=seed + 4), paths["test"], force=True)
    return paths


def subset(path: Path, n: int, out: Path) -> Path:
    import ase.io

    target = out / f"{path.stem}_{n}.xyz"
    if not target.exists():
        ase.io.write(target, ase.io.read(path, f":{n}"), format="extxyz")
    return target


def concatenate(paths, out: Path) -> Path:
    """One file (nequip-train takes a single training data set)."""
    if not out.exists():
        out.write_text("".join(Path(p).read_text() for p in paths))
    return out


def budget(minutes: float) -> str:
    seconds = int(round(minutes * 60))
    return f"00:00:{seconds // 60:02d}:{seconds % 60:02d}"


def train(config: str, run_dir: Path, minutes: float, overrides) -> dict:
    checkpoint = run_dir / "best.ckpt"
    log = run_dir.with_suffix(".log")
    if not checkpoint.exists():
        command = [
            sys.executable,
            "-m",
            "nequip.scripts.train",
            "-cp",
            str(CONFIGS),
            "-cn",
            config,
            f"max_time={budget(minutes)}",
            "max_epochs=10000",
            f"hydra.run.dir={run_dir}",
            *overrides,
        ]
        start = time.time()
        with open(log, "w") as handle:
            subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
        (run_dir / "wall_seconds").write_text(f"{time.time() - start:.1f}")
    import torch

    epochs = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=False)[
        "epoch"
    ]
    return {
        "checkpoint": checkpoint,
        "epochs": epochs,
        "wall_s": float((run_dir / "wall_seconds").read_text()),
    }


def evaluate(checkpoint: Path, test_frames) -> dict:
    """RMSE of each column (in the units of COLUMNS), NaN where the model has no such output."""
    from nequip_pol.demo import predict

    predictions = predict(checkpoint, test_frames, r_max=5.0)
    errors = {name: [] for name, _, _ in COLUMNS}
    for atoms, pred in zip(test_frames, predictions):
        field = np.linalg.norm(atoms.info["electric_field"]) > 0
        n = len(atoms)
        if not field:
            errors["E0"].append(
                np.ravel(pred["total_energy"] / n - atoms.info["total_energy"] / n)
            )
            errors["F0"].append(np.ravel(pred["forces"] - atoms.arrays["forces"]))
        else:
            errors["F(E)"].append(np.ravel(pred["forces"] - atoms.arrays["forces"]))
        if "polarization" in pred:
            errors["P"].append(
                np.ravel(pred["polarization"] - atoms.info["polarization_exact"])
            )
            errors["Z*"].append(
                np.ravel(pred["born_effective_charges"])
                - np.ravel(atoms.arrays["born_effective_charges"])
            )
            errors["alpha"].append(
                np.ravel(pred["polarizability"] - atoms.info["polarizability"])
            )
    return {
        name: (
            float(np.sqrt(np.mean(np.concatenate(errors[name]) ** 2))) * scale
            if errors[name]
            else float("nan")
        )
        for name, _, scale in COLUMNS
    }


def spreads(test_frames) -> dict:
    zero = [a for a in test_frames if np.linalg.norm(a.info["electric_field"]) == 0]
    field = [a for a in test_frames if np.linalg.norm(a.info["electric_field"]) > 0]
    e = np.array([a.info["total_energy"] / len(a) for a in zero])
    return {
        "E0": 1000 * e.std(),
        "F0": 1000 * np.concatenate([a.arrays["forces"].ravel() for a in zero]).std(),
        "F(E)": 1000
        * np.concatenate([a.arrays["forces"].ravel() for a in field]).std(),
        "P": np.array([a.info["polarization_exact"] for a in test_frames]).std(),
        "Z*": np.concatenate(
            [a.arrays["born_effective_charges"].ravel() for a in test_frames]
        ).std(),
        "alpha": np.array(
            [np.ravel(a.info["polarizability"]) for a in test_frames]
        ).std(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--n-ef", type=int, default=200, help="energy/force frames (zero field)"
    )
    parser.add_argument(
        "--n-response",
        type=int,
        nargs="+",
        default=[5, 10, 20],
        help="frames with P, Z*, alpha",
    )
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument(
        "--minutes", type=float, default=1.5, help="budget of (a), (b), (c)"
    )
    parser.add_argument(
        "--energy-minutes", type=float, default=3.0, help="budget of the energy model"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["a", "b", "c", "d"],
        choices=["a", "b", "c", "d"],
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=None,
        help="learning rate of the field part in (a), (b) (default: the config's, 0.005)",
    )
    args = parser.parse_args(argv)

    from nequip_pol.reference import read_dataset

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = make_data(out, args.n_ef, max(args.n_response), args.n_test, args.seed)
    test_frames = read_dataset(paths["test"])

    energy = train(
        "energy_model",
        out / "energy_model",
        args.energy_minutes,
        [f"train_files={paths['ef']}", f"val_file={paths['ef_val']}"],
    )
    rows = [
        (
            "energy model (E/F only)",
            args.n_ef,
            0,
            energy,
            evaluate(energy["checkpoint"], test_frames),
        )
    ]
    for n in args.n_response:
        response = subset(paths["response"], n, out)
        common = [f"val_file={paths['response_val']}"]
        fine = common + [
            f"energy_checkpoint={energy['checkpoint']}",
            f"train_files={response}",
        ]
        lr_tag = ""
        if args.fine_tune_lr is not None:
            fine.append(f"learning_rate={args.fine_tune_lr}")
            lr_tag = f"_lr{args.fine_tune_lr:g}"
        runs = [
            ("(a) fine-tuned, frozen", 0, "fine_tune_frozen", args.minutes, fine),
            (
                "(b) fine-tuned, all weights",
                0,
                "fine_tune_all_weights",
                args.minutes,
                fine,
            ),
            (
                "(c) scratch, response frames",
                0,
                "scratch",
                args.minutes,
                common + [f"train_files={response}"],
            ),
            (
                "(d) scratch, all frames (NaN-masked)",
                args.n_ef,
                "scratch",
                args.energy_minutes + args.minutes,
                common
                + [
                    f"train_files={concatenate([paths['ef'], response], out / f'all_{n}.xyz')}"
                ],
            ),
        ]
        for (label, n_ef, config, minutes, overrides), variant in zip(runs, "abcd"):
            if variant not in args.variants:
                continue
            tag = lr_tag if variant in "ab" else ""
            label += f" (lr {args.fine_tune_lr:g})" if tag else ""
            run_dir = out / f"n{n}_{config}{'_all' if n_ef else ''}{tag}"
            result = train(config, run_dir, minutes, overrides)
            rows.append(
                (label, n_ef, n, result, evaluate(result["checkpoint"], test_frames))
            )
            print(f"{label} n={n}: {rows[-1][-1]}", flush=True)

    spread = spreads(test_frames)
    header = (
        "| model | E/F frames | response frames | epochs | wall (s) | "
        + " | ".join(f"{name} ({unit})" for name, unit, _ in COLUMNS)
        + " |"
    )
    lines = [header, "|" + " --- |" * (5 + len(COLUMNS))]
    for label, n_ef, n, result, errors in rows:
        values = " | ".join(
            "-" if np.isnan(errors[name]) else f"{errors[name]:.3g}"
            for name, _, _ in COLUMNS
        )
        lines.append(
            f"| {label} | {n_ef} | {n} | {result['epochs']} | {result['wall_s']:.0f} | {values} |"
        )
    lines.append(
        "| test-set std (for scale) | | | | | "
        + " | ".join(f"{spread[name]:.3g}" for name, _, _ in COLUMNS)
        + " |"
    )
    table = "\n".join(lines)
    conditions = (
        f"\nOMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, budgets: energy model "
        f"{args.energy_minutes} min, (a)-(c) {args.minutes} min, (d) {args.energy_minutes + args.minutes} min; "
        f"{args.n_ef} E/F frames, test {args.n_test} frames (half under a field), seed {args.seed}\n"
    )
    print(table + conditions)
    name = (
        "table"
        + ("" if args.fine_tune_lr is None else f"_lr{args.fine_tune_lr:g}")
        + "_"
        + "".join(args.variants)
    )
    (out / f"{name}.md").write_text(table + "\n" + conditions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
