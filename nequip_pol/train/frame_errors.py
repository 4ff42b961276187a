"""Which frames make a model's error (``nequip-pol frame-errors``): per-frame RMSEs on one part
of a dataset's split.

:func:`frame_errors` evaluates the frames of one part of nequip's random split of a dataset
config (its fractions, the seed of ``dft.yaml``, as ``nequip-train`` draws it) with the ASE
calculator, one at a time, and returns one row per frame (force and Born-charge RMSE, the worst
atom, the distances to its nearest neighbours); :func:`print_report` prints the worst frames and
the part's RMSEs with all frames, without the worst one and the median frame's;
:func:`write_rows` writes every row to CSV. Units: forces meV/A, Z* e, distances A. Errors are
:class:`~nequip_pol.train.checkout.TrainingToolError`. Only the standard library is imported at
module level.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .checkout import (
    TrainingToolError,
    config_dir,
    config_seed,
    dataset_files,
    read_dataset_config,
    split_parts,
)

__all__ = [
    "BORN_KEYS",
    "PARTS",
    "nearest_distances",
    "frame_rows",
    "rmse_meV",
    "born_rmse",
    "frame_errors",
    "print_report",
    "write_rows",
]

#: per-atom Born-charge keys of extended-XYZ files (the shared data use the first)
BORN_KEYS = ("born_charge", "born_effective_charges")
#: the parts of the split (``all``: every frame, as the published errors are given)
PARTS = ("train", "val", "test", "all")


def nearest_distances(atoms, index: int, count: int = 3) -> list:
    """Distances (A) from atom ``index`` to its ``count`` nearest neighbours (periodic images)."""
    others = [i for i in range(len(atoms)) if i != index]
    distances = atoms.get_distances(index, others, mic=any(atoms.pbc))
    return sorted(float(d) for d in distances)[:count]


def frame_rows(calc, frames, indices) -> list:
    """One dict per frame: force and Z* squared-error sums, the worst atom and its surroundings."""
    import numpy as np

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
    return 1e3 * math.sqrt(total / count)


def born_rmse(rows) -> float:
    """Born-charge RMSE over all components of the given frames, e."""
    total = sum(r["born_sq_sum"] for r in rows)
    count = sum(9 * r["n_atoms"] for r in rows)
    return math.sqrt(total / count)


def frame_errors(
    model: str, dataset: str, part: str = "test", data_file=None, config_dir_given=None
) -> list:
    """The rows of :func:`frame_rows` for the frames of ``part`` (one of :data:`PARTS`), worst
    force RMSE first, each with its ``part``, ``force_rmse_meV_A`` and ``born_rmse_e``.

    ``model``: a shipped name (``sio2``, ``batio3``), a ``nequip-package`` archive or a
    checkpoint; ``dataset``: a config in ``CONFIGS/dataset`` (its data file, found in the shared
    data unless ``data_file`` is given, and its split fractions).
    """
    import ase.io

    import nequip_pol.models as shipped
    from nequip_pol.integrations.ase import NequIPPolCalculator

    if part not in PARTS:
        raise TrainingToolError(
            f"--part must be one of {', '.join(PARTS)}, not {part!r}"
        )
    configs = config_dir(config_dir_given)
    config = read_dataset_config(dataset, configs)
    paths = dataset_files(config, data_file)
    resolved = shipped.resolve(model)
    if not Path(resolved).is_file():
        raise TrainingToolError(f"{model}: neither a shipped model name nor a file")
    per_file = [ase.io.read(path, ":") for path in paths]
    frames = [atoms for file_frames in per_file for atoms in file_frames]
    part_of = split_parts(
        [len(f) for f in per_file], config["split"], config_seed(configs)
    )
    indices = sorted(i for i, name in part_of.items() if part in ("all", name))
    calc = NequIPPolCalculator.from_saved_model(
        resolved, chemical_species_to_atom_type_map=True
    )
    rows = frame_rows(calc, frames, indices)
    for row in rows:
        row["part"] = part_of[row["frame"]]
        row["force_rmse_meV_A"] = rmse_meV([row])
        row["born_rmse_e"] = (
            born_rmse([row]) if row["born_sq_sum"] is not None else None
        )
    rows.sort(key=lambda r: -r["force_rmse_meV_A"])
    return rows


def print_report(rows, model: str, dataset: str, part: str, top: int = 8) -> None:
    """Print the ``top`` worst frames (worst atom, its error and nearest neighbours) and the
    part's force and Z* RMSEs with all frames, without the worst one and the median frame's
    (``part`` ``all``: each part's RMSEs too)."""
    import numpy as np

    print(
        f"{model} on "
        + ("all frames" if part == "all" else f"the {part} split")
        + f" of {dataset} ({len(rows)} frames)"
    )
    print(
        "frame  part   F rmse  Z* rmse  worst atom  its error  its 3 nearest neighbours (A)"
    )
    for row in rows[:top]:
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
    if part == "all":
        for name in ("train", "val", "test"):
            members = [r for r in rows if r["part"] == name]
            born = (
                f", Z* {born_rmse(members):.4f} e"
                if all(r["born_sq_sum"] is not None for r in members)
                else ""
            )
            print(
                f"{name}: F {rmse_meV(members):.1f} meV/A{born} ({len(members)} frames)"
            )


def write_rows(rows, path) -> None:
    """Every frame's row, ordered by frame index, to the CSV file ``path``."""
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
    with open(path, "w", newline="") as handle:
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
    print(f"wrote {path}")
