"""Which frames make a model's force error: per-frame test RMSEs on the shared DFT data.

    python benchmarks/frame_errors.py MODEL --dataset SiO2 [--part test|val|train|all] [--top 8] [--csv OUT.csv]
    python benchmarks/frame_errors.py best.ckpt --dataset MyMaterial --data-file my.xyz

MODEL is a shipped name (``sio2``, ``batio3``), a ``nequip-package`` archive or a checkpoint
(``RUN/run/best.ckpt``). DATASET names a ``configs/dataset/DATASET.yaml`` (its data file, found
in the shared data unless ``--data-file`` is given, and its split fractions). The frames of one
part of the split (nequip's random split with those fractions and the seed of
``configs/dft.yaml``, as ``nequip-train`` draws it) are evaluated with the ASE calculator, one at
a time. Printed: the
frames with the largest force RMSE, each with its worst atom (species, error in meV/A, the
distances to its three nearest neighbours, A) and the frame's Born-charge RMSE; then the part's
force RMSE with all frames, without the worst one, and the median frame's, and the same for Z*. A test RMSE that one
frame dominates says the target needs that kind of configuration in the training data more than
more epochs (docs/training_on_cpu.md §8). The train part beside the test part says whether the
model still falls short on what it was trained on (epochs, capacity) or generalizes poorly
(data). ``--part all`` takes every frame, as the published Allegro-pol errors are given, and
prints each part's RMSEs too. ``--csv`` writes every frame's row.

Units: forces meV/A, Z* e, distances A.
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: per-atom Born-charge keys of extended-XYZ files (the shared data use the first)
BORN_KEYS = ("born_charge", "born_effective_charges")


def nearest_distances(atoms, index: int, count: int = 3) -> list:
    """Distances (A) from atom ``index`` to its ``count`` nearest neighbours (periodic images)."""
    others = [i for i in range(len(atoms)) if i != index]
    distances = atoms.get_distances(index, others, mic=any(atoms.pbc))
    return sorted(float(d) for d in distances)[:count]


def frame_rows(calc, frames, indices) -> list:
    """One dict per frame: force and Z* squared-error sums, the worst atom and its surroundings."""
    rows = []
    for index in indices:
        frame = frames[index]
        result = calc.evaluate(frame)  # zero field, as in the data
        forces = result["forces"]
        ref = frame.get_forces()
        atom_error = np.linalg.norm(forces - ref, axis=1)
        worst = int(np.argmax(atom_error))
        born_sq = None
        born_key = next((k for k in BORN_KEYS if k in frame.arrays), None)
        if born_key is not None:
            ref_born = frame.arrays[born_key].reshape(len(frame), 3, 3)
            born_sq = float(((result["born_effective_charges"] - ref_born) ** 2).sum())
        rows.append(
            {
                "frame": index,
                "n_atoms": len(frame),
                "force_sq_sum": float(((forces - ref) ** 2).sum()),
                "born_sq_sum": born_sq,
                "worst_atom": worst,
                "worst_symbol": frame[worst].symbol,
                "worst_error_meV_A": 1e3 * float(atom_error[worst]),
                "worst_neighbours_A": nearest_distances(frame, worst),
            }
        )
    return rows


def rmse_meV(rows) -> float:
    """Force RMSE over all components of the given frames, meV/A."""
    total = sum(r["force_sq_sum"] for r in rows)
    count = sum(3 * r["n_atoms"] for r in rows)
    return 1e3 * float(np.sqrt(total / count))


def born_rmse(rows) -> float:
    """Born-charge RMSE over all components of the given frames, e."""
    total = sum(r["born_sq_sum"] for r in rows)
    count = sum(9 * r["n_atoms"] for r in rows)
    return float(np.sqrt(total / count))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "model", help="shipped name, nequip-package archive or checkpoint"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=sorted(p.stem for p in (ROOT / "configs" / "dataset").glob("*.yaml")),
    )
    parser.add_argument(
        "--data-file",
        help="extended XYZ (default: the dataset's file in the shared data)",
    )
    parser.add_argument(
        "--part",
        default="test",
        choices=("train", "val", "test", "all"),
        help="part of the split; all: every frame (as the published errors are given)",
    )
    parser.add_argument("--top", type=int, default=8, help="frames to print")
    parser.add_argument("--csv", help="write every frame's row here")
    args = parser.parse_args()

    import ase.io

    import nequip_pol.models as shipped
    from nequip_pol.data_path import shared_data_dir
    from nequip_pol.integrations.ase import NequIPPolCalculator
    from ship_model import config_seed, read_dataset_config, split_indices

    config = read_dataset_config(args.dataset)
    if args.data_file:
        data_file = Path(args.data_file)
        if not data_file.is_file():
            sys.exit(f"--data-file {data_file}: no such file")
    else:
        data_file = shared_data_dir() / "dft" / config["dataset_file"]
        if not data_file.is_file():
            sys.exit(
                f"{data_file}: not found (set NEQUIP_POL_DATA to the shared data folder, "
                "or give --data-file)"
            )
    model = shipped.resolve(args.model)
    if not Path(model).is_file():
        sys.exit(f"{args.model}: neither a shipped model name nor a file")
    if args.csv and Path(args.csv).exists():
        sys.exit(f"{args.csv} exists: choose another name")
    frames = ase.io.read(data_file, ":")
    split = config["split"]
    fractions = [split["train"], split["val"], split["test"]]
    part_of = {
        i: part
        for part in ("train", "val", "test")
        for i in split_indices(len(frames), fractions, config_seed(), part)
    }
    indices = sorted(i for i, part in part_of.items() if args.part in ("all", part))
    calc = NequIPPolCalculator.from_saved_model(
        model, chemical_species_to_atom_type_map=True
    )
    rows = frame_rows(calc, frames, indices)
    for row in rows:
        row["part"] = part_of[row["frame"]]
        row["force_rmse_meV_A"] = rmse_meV([row])
        row["born_rmse_e"] = (
            born_rmse([row]) if row["born_sq_sum"] is not None else None
        )
    rows.sort(key=lambda r: -r["force_rmse_meV_A"])

    print(
        f"{args.model} on "
        + ("all frames" if args.part == "all" else f"the {args.part} split")
        + f" of {args.dataset} ({len(rows)} frames)"
    )
    print(
        "frame  part   F rmse  Z* rmse  worst atom  its error  its 3 nearest neighbours (A)"
    )
    for row in rows[: args.top]:
        born = f"{row['born_rmse_e']:.4f}" if row["born_rmse_e"] is not None else "-"
        neighbours = ", ".join(f"{d:.2f}" for d in row["worst_neighbours_A"])
        print(
            f"{row['frame']:5d}  {row['part']:<5} {row['force_rmse_meV_A']:7.1f} {born:>8} "
            f"{row['worst_symbol']:>6} {row['worst_atom']:<4d} "
            f"{row['worst_error_meV_A']:9.0f}  {neighbours}"
        )
    median = float(np.median([r["force_rmse_meV_A"] for r in rows]))
    print(
        f"F rmse: {rmse_meV(rows):.1f} meV/A all frames, {rmse_meV(rows[1:]):.1f} without "
        f"frame {rows[0]['frame']}, median frame {median:.1f}"
    )
    if all(r["born_sq_sum"] is not None for r in rows):
        print(
            f"Z* rmse: {born_rmse(rows):.4f} e all frames, {born_rmse(rows[1:]):.4f} without "
            f"frame {rows[0]['frame']}"
        )
    if args.part == "all":
        for part in ("train", "val", "test"):
            members = [r for r in rows if r["part"] == part]
            born = (
                f", Z* {born_rmse(members):.4f} e"
                if all(r["born_sq_sum"] is not None for r in members)
                else ""
            )
            print(
                f"{part}: F {rmse_meV(members):.1f} meV/A{born} ({len(members)} frames)"
            )
    if args.csv:
        fields = [
            "frame",
            "part",
            "n_atoms",
            "force_rmse_meV_A",
            "born_rmse_e",
            "worst_atom",
            "worst_symbol",
            "worst_error_meV_A",
            "worst_neighbours_A",
        ]
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for row in sorted(rows, key=lambda r: r["frame"]):
                writer.writerow(
                    row
                    | {
                        "worst_neighbours_A": " ".join(
                            f"{d:.3f}" for d in row["worst_neighbours_A"]
                        )
                    }
                )
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
