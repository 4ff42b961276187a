"""Sweeps of P-E loops over temperatures x periods: the driver per run, one CSV table, figures.

:func:`run_sweep` runs one loop per (temperature, period) with the same starting structure and
protocol (:func:`~nequip_pol.analysis.loop_drivers.run_loop` in ASE by default, or a
:class:`~nequip_pol.analysis.loop_drivers.LammpsLoopRunner`), writes the table
``hysteresis.csv`` (columns :data:`TABLE_COLUMNS`: Ec+, Ec-, Pr+, Pr-, loop area, each with its
spread over cycles), one P(t) CSV per run (``loop_T<K>K_period<fs>fs.csv``) and the figures
``loops.png`` (loops coloured by temperature, one panel per period), ``ec_vs_temperature.png``
and ``ec_vs_frequency.png``. The command line ``nequip-pol hysteresis`` runs it.
:func:`read_table` reads such a table back, and :func:`combine_runs` averages independent runs
(sweeps with other seeds) of the same temperature and period: thermal switching is stochastic,
so Ec at a temperature is a mean over runs with their spread.

Units: time fs, field V/A, P e*A (cell dipole), work eV, temperature K, frequency GHz; the figures
show the field in MV/cm and P in uC/cm^2 (the ferroelectrics literature's units).
"""

from __future__ import annotations

import csv
import time as _time
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from .loop_drivers import check_field_calculator, run_loop
from .loops import LOOP_QUANTITIES
from ..units import E_ANGSTROM2_TO_UC_CM2, V_PER_A_TO_MV_PER_CM
from .protocol import LoopProtocol, axis_vector

__all__ = [
    "TABLE_COLUMNS",
    "OUTPUT_FILES",
    "loop_file_name",
    "check_output_dir",
    "run_sweep",
    "write_table",
    "read_table",
    "combine_runs",
    "plot_sweep",
]

#: columns of the sweep table (``hysteresis.csv``)
TABLE_COLUMNS = (
    [
        "temperature_K",
        "period_fs",
        "frequency_GHz",
        "amplitude_V_A",
        "waveform",
        "n_cycles",
    ]
    + [f"{k}{s}" for k in LOOP_QUANTITIES for s in ("", "_std")]
    + ["n_atoms", "steps", "wall_s", "loop_csv"]
)
OUTPUT_FILES = (
    "hysteresis.csv",
    "loops.png",
    "ec_vs_temperature.png",
    "ec_vs_frequency.png",
)


def loop_file_name(temperature: float, period: float) -> str:
    return f"loop_T{temperature:g}K_period{period:g}fs.csv"


def check_output_dir(out_dir, temperatures, periods, force: bool = False) -> Path:
    """Refuse (``FileExistsError``) when any output of a sweep exists in ``out_dir`` unless ``force``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and not force:
        names = list(OUTPUT_FILES) + [
            loop_file_name(t, p) for t in temperatures for p in periods
        ]
        existing = [n for n in names if (out / n).exists()]
        if existing:
            raise FileExistsError(
                f"{out} already holds {', '.join(existing[:3])}{' ...' if len(existing) > 3 else ''}; "
                "not overwriting (use --force / force=True)"
            )
    return out


def run_sweep(
    atoms,
    calc,
    protocol: LoopProtocol,
    temperatures: Sequence[float],
    periods: Sequence[float],
    out_dir,
    force: bool = False,
    progress: Optional[Callable[[str], None]] = print,
    plots: bool = True,
    runner: Optional[Callable] = None,
) -> List[dict]:
    """Loops at every temperature (K) x period (fs); writes the table, the P(t) files and the figures.

    Every run starts from ``atoms`` (the same poled structure) with ``protocol`` (its
    ``temperature_K`` and ``period_fs`` replaced). All settings are validated, and existing
    outputs refused (unless ``force``), before anything is written. Returns the table rows
    (dicts keyed by :data:`TABLE_COLUMNS`).

    ``runner(atoms, protocol, log_path, progress)`` -> ``(series, analysis)`` runs one loop; the
    default is :func:`run_loop` with ``calc`` (ASE), :class:`LammpsLoopRunner` runs it in LAMMPS
    (``calc`` may then be None).
    """
    temperatures = [float(t) for t in temperatures]
    periods = [float(p) for p in periods]
    if not temperatures or not periods:
        raise ValueError("give at least one temperature and one period")
    runs = [
        replace(protocol, temperature_K=t, period_fs=p)
        for t in temperatures
        for p in periods
    ]
    for r in runs:
        r.validate()
    out = check_output_dir(out_dir, temperatures, periods, force)
    if runner is None:
        _check_calculator_once(atoms, calc)

        def runner(atoms, protocol, log_path, progress):
            return run_loop(
                atoms, calc, protocol, log_path=log_path, force=True, progress=progress
            )
    else:
        check = getattr(runner, "check", None)
        if check is not None:
            for r in runs:
                check(r)
    out.mkdir(parents=True, exist_ok=True)
    rows, series_by_run = [], {}
    for k, run in enumerate(runs):
        if progress:
            progress(
                f"[{k + 1}/{len(runs)}] T = {run.temperature_K:g} K, period = {run.period_fs:g} fs, "
                f"E0 = {run.amplitude:g} V/A ({run.waveform}), {run.n_steps} steps of {run.timestep_fs:g} fs"
            )
        wall = _time.time()
        name = loop_file_name(run.temperature_K, run.period_fs)
        series, analysis = runner(atoms, run, out / name, progress)
        series_by_run[(run.temperature_K, run.period_fs)] = (series, analysis)
        row = {
            "temperature_K": run.temperature_K,
            "period_fs": run.period_fs,
            "frequency_GHz": 1e6 / run.period_fs,
            "amplitude_V_A": run.amplitude,
            "waveform": run.waveform,
            "n_cycles": analysis.n_cycles,
        }
        for q in LOOP_QUANTITIES:
            row[q], row[q + "_std"] = analysis.mean[q], analysis.std[q]
        row.update(
            {
                "n_atoms": len(atoms),
                "steps": run.n_steps,
                "wall_s": round(_time.time() - wall, 1),
                "loop_csv": name,
            }
        )
        rows.append(row)
        if progress:
            progress(f"  -> {analysis.summary()}")
        write_table(
            rows, out / "hysteresis.csv", force=True
        )  # after each run: partial results survive
    if plots:
        volume = atoms.get_volume() if atoms.cell.rank == 3 else None
        plot_sweep(rows, series_by_run, out, protocol.axis, volume=volume)
    return rows


def _check_calculator_once(atoms, calc) -> None:
    work = atoms.copy()
    work.calc = calc
    check_field_calculator(work, calc)


def write_table(rows: Sequence[dict], path, force: bool = False) -> None:
    """Write sweep rows as CSV (columns :data:`TABLE_COLUMNS`)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; not overwriting it (use force)")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(TABLE_COLUMNS))
        w.writeheader()
        for row in rows:
            w.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def read_table(path) -> List[dict]:
    """The rows of a sweep table (``hysteresis.csv``): numbers as floats, ``waveform`` and
    ``loop_csv`` as text. ``ValueError`` naming the file if it is not such a table."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in TABLE_COLUMNS if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path} is not a sweep table of nequip-pol hysteresis (missing columns: "
                f"{', '.join(missing)})"
            )
        text = ("waveform", "loop_csv")
        return [
            {k: (v if k in text else float(v)) for k, v in row.items()}
            for row in reader
        ]


def combine_runs(rows: Sequence[dict]) -> List[dict]:
    """Average independent runs of the same (temperature, period, amplitude, waveform).

    ``rows``: sweep rows (:func:`read_table` of several sweeps, e.g. one per seed). Returns one
    row per group, sorted by period then temperature, with ``n_runs`` and, for each loop
    quantity q (``ec``, ``pr``, ``area``, ...), ``q`` the mean over runs of their per-run means
    and ``q_std`` the sample standard deviation over runs (NaN for one run): the run-to-run
    spread, which for thermal switching is wider than the cycle-to-cycle spread of one run.
    Units as in the rows (V/A, e*A, eV).
    """
    groups: dict = {}
    for row in rows:
        key = (
            float(row["temperature_K"]),
            float(row["period_fs"]),
            float(row["amplitude_V_A"]),
            row["waveform"],
        )
        groups.setdefault(key, []).append(row)
    combined = []
    for (temperature, period, amplitude, waveform), runs in sorted(
        groups.items(), key=lambda item: (item[0][1], item[0][0])
    ):
        out = {
            "temperature_K": temperature,
            "period_fs": period,
            "amplitude_V_A": amplitude,
            "waveform": waveform,
            "n_runs": len(runs),
        }
        for q in LOOP_QUANTITIES:
            values = np.array([float(r[q]) for r in runs])
            out[q] = float(values.mean())
            out[f"{q}_std"] = (
                float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            )
        combined.append(out)
    return combined


def plot_sweep(
    rows, series_by_run, out_dir, axis, volume: Optional[float] = None
) -> None:
    """``loops.png`` (loops coloured by T, a panel per period), ``ec_vs_temperature.png``, ``ec_vs_frequency.png``.

    The figures use the units of the ferroelectrics literature: field in MV/cm and, given the
    cell ``volume`` (A^3; the loops run at fixed cell), P in uC/cm^2; without it (no periodic
    cell) P stays the dipole in e*A. The table and the P(t) files keep V/A and e*A.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    e_axis = axis_vector(axis)
    field_scale = V_PER_A_TO_MV_PER_CM
    if volume is not None and volume > 0:
        p_scale, p_label = (
            E_ANGSTROM2_TO_UC_CM2 / volume,
            "P along axis (uC/cm^2, centred)",
        )
    else:
        p_scale, p_label = 1.0, "P along axis (e*A, centred)"
    temps = sorted({r["temperature_K"] for r in rows})
    periods = sorted({r["period_fs"] for r in rows})
    cmap = plt.get_cmap(
        "plasma"
    )  # dark (cold) to yellow-orange (hot); 0.85 keeps the hottest visible
    color = {
        t: cmap(0.0 if len(temps) == 1 else 0.85 * k / (len(temps) - 1))
        for k, t in enumerate(temps)
    }

    fig, axes = plt.subplots(
        1, len(periods), figsize=(4.2 * len(periods), 3.6), squeeze=False
    )
    for ax, period in zip(axes[0], periods):
        for t in temps:
            if (t, period) not in series_by_run:
                continue
            series, analysis = series_by_run[(t, period)]
            start = analysis.cycle_start_fs[0] if analysis.cycle_start_fs else 0.0
            keep = series.time_fs >= start - 1e-9
            ax.plot(
                field_scale * (series.field[keep] @ e_axis),
                p_scale
                * (series.polarization[keep] @ e_axis - analysis.polarization_offset),
                color=color[t],
                lw=0.8,
                label=f"{t:g} K",
            )
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel("E along axis (MV/cm)")
        ax.set_ylabel(p_label)
        ax.set_title(f"period {period:g} fs")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loops.png", dpi=130)
    plt.close(fig)

    def errplot(x_key, group_key, groups, fname, xlabel, label_fmt, xscale="linear"):
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        for g in groups:
            sel = sorted((r for r in rows if r[group_key] == g), key=lambda r: r[x_key])
            ax.errorbar(
                [r[x_key] for r in sel],
                [field_scale * r["ec"] for r in sel],
                yerr=[
                    0.0 if not np.isfinite(r["ec_std"]) else field_scale * r["ec_std"]
                    for r in sel
                ],
                marker="o",
                capsize=3,
                label=label_fmt(g),
            )
        ax.set_xscale(xscale)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("coercive field Ec (MV/cm)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=130)
        plt.close(fig)

    errplot(
        "temperature_K",
        "period_fs",
        periods,
        "ec_vs_temperature.png",
        "temperature (K)",
        lambda p: f"period {p:g} fs",
    )
    errplot(
        "frequency_GHz",
        "temperature_K",
        temps,
        "ec_vs_frequency.png",
        "frequency (GHz)",
        lambda t: f"{t:g} K",
        xscale="log",
    )
