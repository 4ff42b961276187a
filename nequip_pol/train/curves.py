"""Learning curves of a long run (:mod:`nequip_pol.train.long_run`): what a chunk logged, and
the curves of all chunks.

``OUT/learning_curve.csv`` has one row per finished chunk (:data:`CURVE_COLUMNS`): epochs, CPU
and wall hours of training so far, the epoch of the tested model, the test RMSEs and the command
that reproduces the point; ``OUT/val_curve.csv`` the validation RMSEs of every epoch against CPU
hours. Both are read from the chunks' CSV logs (``OUT/log/chunk_NNN/metrics.csv``). RMSEs in
meV/atom, meV/A, meV/A^3, e*A, e, e*A^2/V. Only the standard library is imported at module
level.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = [
    "QUANTITIES",
    "CURVE_COLUMNS",
    "read_csv_rows",
    "tested_epoch",
    "summarize_chunk",
    "chunk_pace",
    "collect_val_curve",
    "plot_curves",
]

QUANTITIES = [
    # (column, logged metric, factor)
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
    path = Path(path)
    return list(csv.DictReader(open(path))) if path.exists() else []


def _value(row, key):
    value = row.get(key)
    return float(value) if value not in (None, "") else None


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


def plot_curves(png: str, csv_paths) -> None:
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
