"""Per-cell view of a P-E loop: does the crystal switch as one, or through domains?

Input: one loop run with structure snapshots, e.g. the 9x9x9 BaTiO3 cell (3645 atoms) in LAMMPS::

    nequip-pol hysteresis nb.nequip.pt2 poled.xyz --repeat 3x3x3 -o loop_999 --amplitude 0.3636 \\
        --period 2000 --temperatures 300 --waveform sine --timestep 2 --cycles 1 --discard 0 \\
        --seed 1 --lammps-plugin nequip_polplugin.so --snapshot-interval 5
    python examples/batio3_domains.py loop_999/loop_T300K_period2000fs.csv --out domains_999

For every snapshot, the Ti off-centring from its O6 cage u (A) in every unit cell
(:mod:`nequip_pol.analysis.domains`). For every reversal of the cells' mean u_z within a
half-period of the field (an *event*):

* ``t50``: when half of the cells have reversed, and the field then (MV/cm);
* the spread of the cells' switching times (standard deviation, 10-90 % width, fs) against the
  time the whole crystal takes (mean u_z from 1/2 to -1/2 of its starting value);
* the correlation between neighbouring cells along a, b and c, of their switching times and of
  their u_z at ``t50`` (beside the same for u_z at the half-period's start: neighbouring cells
  share O atoms, so their thermal fluctuations are correlated without any domain). Independent
  cells give about 0 within the noise level 1/sqrt(n_cells); a domain that nucleates and grows
  makes neighbours alike (up to 1), most along the direction the domain grows.

Writes ``OUT/cells.npz`` (time_fs, u_z per cell, the grid, the switching times per event),
``OUT/events.csv`` and the figure ``OUT/domains.png``: mean u_z and switched fraction against
time with the field; the histogram of switching times per event; the map of u_z in one a-c plane
of cells at two times of the first event (half its 10-90 % width before t50, and t50); the map of the first event's switching times
in that plane. Units: A, fs, V/A and MV/cm.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Optional

import numpy as np

EVENT_COLUMNS = (
    "event",
    "direction",
    "t50_fs",
    "field_at_t50_MV_cm",
    "switched_cells",
    "cells",
    "spread_std_fs",
    "spread_10_90_fs",
    "crystal_50_50_fs",
    "corr_t_a",
    "corr_t_b",
    "corr_t_c",
    "corr_u_a",
    "corr_u_b",
    "corr_u_c",
    "corr_u0_a",
    "corr_u0_b",
    "corr_u0_c",
    "noise_level",
)


def field_half_periods(time_fs, field_axis):
    """(start, end) fs of the stretches where the field keeps its sign (zero crossings)."""
    sign = np.sign(field_axis)
    nz = np.flatnonzero(sign != 0)
    edges = [time_fs[0]]
    for a, b in zip(nz[:-1], nz[1:]):
        if sign[a] != sign[b]:
            # linear interpolation of the zero crossing
            fa, fb = field_axis[a], field_axis[b]
            edges.append(time_fs[a] + (time_fs[b] - time_fs[a]) * fa / (fa - fb))
    edges.append(time_fs[-1])
    return list(zip(edges[:-1], edges[1:]))


def crossing_time(t, y, level):
    """First time y(t) passes ``level`` (linear interpolation); NaN if never."""
    s = np.sign(y - level)
    k = np.flatnonzero(s[:-1] * s[1:] <= 0)
    k = k[s[k] != 0] if len(k) else k
    if len(k) == 0:
        return float("nan")
    k = k[0]
    return float(t[k] + (t[k + 1] - t[k]) * (level - y[k]) / (y[k + 1] - y[k]))


def analyse(loop_csv: Path, axis: int = 2):
    from nequip_pol.analysis import domains
    from nequip_pol.analysis.hysteresis import read_loop, snapshot_path

    snaps = snapshot_path(loop_csv, lammps=True)
    if not snaps.exists():
        snaps = snapshot_path(loop_csv)
    if not snaps.exists():
        raise FileNotFoundError(
            f"no snapshots beside {loop_csv} (.snapshots.lammpstrj or .snapshots.extxyz): run "
            "the loop with --snapshot-interval N"
        )
    time_fs, frames = domains.read_snapshots(snaps)
    u = domains.off_centring(frames)[:, :, axis]  # (frames, cells)
    index, shape = domains.cell_grid(frames[0])
    series = read_loop(loop_csv)
    field = np.interp(time_fs, series.time_fs, series.field[:, axis])
    noise = 1.0 / np.sqrt(u.shape[1])
    events = []
    for start, end in field_half_periods(series.time_fs, series.field[:, axis]):
        inside = (time_fs >= start) & (time_fs <= end)
        if inside.sum() < 3:
            continue
        mean = u[inside].mean(axis=1)
        if np.sign(mean[0]) == np.sign(mean[-1]):
            continue
        t_switch, direction = domains.switching_times(time_fs, u, (start, end))
        frac = domains.switched_fraction(u, direction)
        t_in = time_fs[inside]
        t50 = crossing_time(t_in, frac[inside], 0.5)
        k50 = int(np.argmin(np.abs(time_fs - t50)))
        m0 = mean[0]
        crystal = crossing_time(t_in, mean, -0.5 * m0) - crossing_time(
            t_in, mean, 0.5 * m0
        )
        ok = np.isfinite(t_switch)
        q10, q90 = np.percentile(t_switch[ok], [10, 90])
        corr_t = domains.neighbour_correlation(t_switch, index, shape)
        corr_u = domains.neighbour_correlation(u[k50], index, shape)
        # the thermal baseline: neighbours share anions, so their u_z fluctuations are
        # correlated (or anticorrelated) without any domain; taken at the half-period's start
        k0 = int(np.flatnonzero(inside)[0])
        corr_u0 = domains.neighbour_correlation(u[k0], index, shape)
        events.append(
            {
                "event": len(events) + 1,
                "direction": direction,
                "t50_fs": t50,
                "field_at_t50_MV_cm": float(np.interp(t50, time_fs, field)) * 100.0,
                "switched_cells": int(ok.sum()),
                "cells": int(len(ok)),
                "spread_std_fs": float(np.std(t_switch[ok])),
                "spread_10_90_fs": float(q90 - q10),
                "crystal_50_50_fs": float(crystal),
                "corr_t_a": corr_t[0],
                "corr_t_b": corr_t[1],
                "corr_t_c": corr_t[2],
                "corr_u_a": corr_u[0],
                "corr_u_b": corr_u[1],
                "corr_u_c": corr_u[2],
                "corr_u0_a": corr_u0[0],
                "corr_u0_b": corr_u0[1],
                "corr_u0_c": corr_u0[2],
                "noise_level": float(noise),
                "_t_switch": t_switch,
                "_k50": k50,
            }
        )
    return time_fs, u, field, index, shape, events


def plot(out: Path, time_fs, u, field, index, shape, events, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nequip_pol.analysis import domains

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = axes[0, 0]
    ax.plot(time_fs, u.mean(axis=1), color="k", label="mean u_z (A)")
    ax.set_xlabel("t (fs)")
    ax.set_ylabel("mean Ti off-centring u_z (A)")
    ax2 = ax.twinx()
    ax2.plot(time_fs, field * 100.0, color="tab:red", lw=0.8, label="E_z")
    ax2.set_ylabel("E_z (MV/cm)", color="tab:red")
    for e in events:
        ax.axvline(e["t50_fs"], color="tab:blue", ls=":", lw=0.8)
    ax.set_title("mean u_z, field; dotted: t50 of each event")
    ax = axes[0, 1]
    for e in events:
        d = e["direction"]
        ax.plot(
            time_fs - e["t50_fs"],
            domains.switched_fraction(u, d),
            label=f"event {e['event']} ({'up' if d > 0 else 'down'})",
        )
    ax.set_xlim(-300, 300)
    ax.set_xlabel("t - t50 (fs)")
    ax.set_ylabel("fraction of cells switched")
    ax.legend(fontsize=8)
    ax = axes[0, 2]
    for e in events:
        t = e["_t_switch"]
        t = t[np.isfinite(t)] - e["t50_fs"]
        ax.hist(t, bins=30, histtype="step", label=f"event {e['event']}")
    ax.set_xlabel("cell switching time - t50 (fs)")
    ax.set_ylabel("cells")
    ax.legend(fontsize=8)
    if events:
        e = events[0]
        plane = shape[1] // 2  # the a-c plane of cells in the middle of b
        in_plane = index[:, 1] == plane
        dt = max(e["spread_10_90_fs"], 20.0)
        for col, offset in enumerate((-0.5 * dt, 0.0)):
            k = int(np.argmin(np.abs(time_fs - (e["t50_fs"] + offset))))
            grid = np.full((shape[0], shape[2]), np.nan)
            grid[index[in_plane, 0], index[in_plane, 2]] = u[k, in_plane]
            ax = axes[1, col]
            im = ax.imshow(grid.T, origin="lower", cmap="RdBu_r", vmin=-0.35, vmax=0.35)
            ax.set_title(f"u_z (A), plane b = {plane}, t = {time_fs[k]:.0f} fs")
            ax.set_xlabel("cell along a")
            ax.set_ylabel("cell along c")
            fig.colorbar(im, ax=ax, shrink=0.8)
        grid = np.full((shape[0], shape[2]), np.nan)
        grid[index[in_plane, 0], index[in_plane, 2]] = (
            e["_t_switch"][in_plane] - e["t50_fs"]
        )
        ax = axes[1, 2]
        im = ax.imshow(grid.T, origin="lower", cmap="viridis")
        ax.set_title(f"event 1: switching time - t50 (fs), plane b = {plane}")
        ax.set_xlabel("cell along a")
        ax.set_ylabel("cell along c")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "domains.png", dpi=110)
    plt.close(fig)


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("loop", type=Path, help="the loop's P(t) file (snapshots beside it)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--title", default="", help="figure title: model, cell, T, drive, machine"
    )
    p.add_argument("--force", action="store_true", help="overwrite outputs in OUT")
    args = p.parse_args(argv)
    outputs = [args.out / n for n in ("cells.npz", "events.csv", "domains.png")]
    if not args.force and any(o.exists() for o in outputs):
        print(
            f"{args.out} holds earlier outputs; not overwriting (--force)",
            file=sys.stderr,
        )
        return 1
    try:
        time_fs, u, field, index, shape, events = analyse(args.loop)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out / "cells.npz",
        time_fs=time_fs,
        u_z=u,
        field_z=field,
        grid_index=index,
        grid_shape=np.asarray(shape),
        t_switch=np.array([e["_t_switch"] for e in events]).reshape(len(events), -1),
    )
    with open(args.out / "events.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=EVENT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for e in events:
            w.writerow(
                {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in e.items()}
            )
    print(
        f"{u.shape[1]} cells ({shape[0]}x{shape[1]}x{shape[2]}), {len(time_fs)} snapshots, "
        f"{len(events)} switching events"
    )
    for e in events:
        print(
            f"event {e['event']} ({'up' if e['direction'] > 0 else 'down'}): t50 = {e['t50_fs']:.0f} fs at "
            f"{e['field_at_t50_MV_cm']:+.1f} MV/cm; {e['switched_cells']}/{e['cells']} cells; switching "
            f"times spread {e['spread_std_fs']:.0f} fs (std), {e['spread_10_90_fs']:.0f} fs (10-90 %); "
            f"crystal 50-50 % {e['crystal_50_50_fs']:.0f} fs; neighbour correlation of times "
            f"a/b/c {e['corr_t_a']:+.2f}/{e['corr_t_b']:+.2f}/{e['corr_t_c']:+.2f}, of u_z at t50 "
            f"{e['corr_u_a']:+.2f}/{e['corr_u_b']:+.2f}/{e['corr_u_c']:+.2f} (before the switch "
            f"{e['corr_u0_a']:+.2f}/{e['corr_u0_b']:+.2f}/{e['corr_u0_c']:+.2f}; noise {e['noise_level']:.2f})"
        )
    plot(
        args.out, time_fs, u, field, index, shape, events, args.title or str(args.loop)
    )
    print(f"wrote {args.out}/cells.npz, events.csv, domains.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
