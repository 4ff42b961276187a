"""Ferroelectric switching of tetragonal BaTiO3 with a field-aware model: polar ground state, P-E loops.

Steps:

1. Build a tetragonal 3x3x3 BaTiO3 cell (135 atoms; lattice a, c of the shared DFT data by
   default: a = 3.966 A, c = 4.304 A) with Ti displaced along +z, relax the positions at zero
   field (fixed cell), and report the polarization relative to the centrosymmetric structure of
   the same cell (cell dipole, e*A, and uC/cm^2) and the mean Ti off-centring from its O6 cage:
   the model has a polar ground state if both stay clearly nonzero; then its zero-temperature
   intrinsic coercive field (``nequip_pol.analysis.coercive.intrinsic_coercive_field``, as
   ``nequip-pol coercive MODEL STRUCTURE``: the +P state of the 5-atom cell followed under a growing
   opposite field until it disappears). Writes ``poled.xyz`` (and ``poled.data`` for LAMMPS,
   ``lammps_patch/examples/in.hysteresis``).
2. P-E loops (``nequip_pol.analysis.hysteresis.run_sweep``, as ``nequip-pol hysteresis``) at the
   given temperatures and periods (default: the published drive, a 0.3636 V/A sine of period
   2 ps at 10 and 300 K, 2 fs steps): ``hysteresis.csv`` (Ec+, Ec-, Pr+, Pr-, loop area, each with
   its spread over cycles), one P(t) file per run, ``loops.png``, ``ec_vs_temperature.png``,
   ``ec_vs_frequency.png``. In ASE by default; with ``--lammps-model`` in LAMMPS
   (``LammpsLoopRunner``: ``pair_style allegro/pol``, ``--ranks`` MPI ranks), about 3x faster per
   step on a CPU than the eager ASE calculator at 135 atoms.

Usage::

    # the model that ships with nequip-pol (nequip_pol.models, card: nequip_pol/models/batio3.md)
    python examples/batio3_switching.py --model batio3 --out batio3_switching
    nequip-compile best.ckpt batio3.nequip.pt2 --mode aotinductor --device cpu --target nequip_pol_ase
    python examples/batio3_switching.py --model batio3.nequip.pt2 --out batio3_switching \\
        --periods 2000 20000
    # loops in LAMMPS: relax with the checkpoint (ASE), loops with the compiled pair-style model
    nequip-compile best.ckpt nb.nequip.pt2 --mode aotinductor --device cpu \\
        --target nequip_pol_pair_allegro_no_born --modifiers disable_born_charges
    python examples/batio3_switching.py --model best.ckpt --lammps-model nb.nequip.pt2 \\
        --plugin lammps_patch/build/nequip_polplugin.so --ranks 1 --out batio3_switching
    # several sweeps (other seeds, periods, temperatures; nequip-pol hysteresis or this script)
    # combined: mean and run-to-run spread per (T, period), one figure in MV/cm and uC/cm^2
    python examples/batio3_switching.py --report loops_2ps ect_seed1 ect_seed2 --out summary
    # no model at hand: the same workflow on the exact analytic ferroelectric (5-atom cells)
    python examples/batio3_switching.py --model reference:ferroelectric --out fe_switching --repeat 1 \\
        --temperatures 5 30 --periods 1600 --amplitude 0.12 --waveform triangle --timestep 4 --friction 0.02

The model is never written by this script; do not commit models or DFT data.
Units: eV, A, fs, V/A, e*A, K.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np


def tetragonal_cell(a: float, c: float, repeat: int, ti_shift: float):
    """Tetragonal ABO3 cell (Ba corner, Ti body centre) repeated n x n x n, Ti shifted by
    ``ti_shift`` A along +z; and the centrosymmetric cell of the same atoms."""
    from nequip_pol.reference.paraelectric import ideal_structure

    centro = ideal_structure((repeat, repeat, repeat), a=a, c=c)
    atoms = centro.copy()
    atoms.positions[atoms.numbers == 22] += [0.0, 0.0, ti_shift]
    return atoms, centro


def lattice_from_data(path: Path):
    """(a, c) per perovskite unit from the first frame of an extended XYZ (3x3x3 cells in the shared data)."""
    from ase.io import read

    frame = read(str(path), index=0)
    n_units = round(len(frame) / 5)
    rep = round(n_units ** (1 / 3))
    lengths = frame.cell.lengths() / rep
    return float(lengths[:2].mean()), float(lengths[2])


def report(
    sweeps, out: Path, force: bool = False, intrinsic_ec: Optional[float] = None
) -> int:
    """Combine finished sweeps into one table and one figure (literature units).

    Reads ``SWEEP/hysteresis.csv`` of each folder, averages the runs of each (T, period)
    (``combine_runs``: mean over runs, sample spread between them; a single run keeps the
    spread over its cycles), writes ``OUT/switching_summary.csv`` (V/A, e*A, eV) and
    ``OUT/switching.png``: the loops (first run of each (T, period), P centred) in MV/cm and
    uC/cm^2, and Ec vs temperature per period with the spread as error bars (and the
    zero-temperature ``intrinsic_ec``, V/A, as a line if given). Prints a Markdown table in
    MV/cm and uC/cm^2.
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nequip_pol.analysis.hysteresis import (
        analyze_series,
        combine_runs,
        read_loop,
        read_table,
    )
    from nequip_pol.units import E_ANGSTROM2_TO_UC_CM2, V_PER_A_TO_MV_PER_CM

    outputs = [out / "switching_summary.csv", out / "switching.png"]
    if not force and any(path.exists() for path in outputs):
        print(
            f"batio3_switching: error: {out} has a report already (--force replaces it)",
            file=sys.stderr,
        )
        return 2
    rows = []
    try:
        for sweep in map(Path, sweeps):
            for row in read_table(sweep / "hysteresis.csv"):
                rows.append(dict(row, sweep=sweep))
    except (OSError, ValueError) as exc:
        print(f"batio3_switching: error: {exc}", file=sys.stderr)
        return 2
    combined = combine_runs(rows)
    for group in combined:
        runs = [
            r
            for r in rows
            if (r["temperature_K"], r["period_fs"])
            == (group["temperature_K"], group["period_fs"])
        ]
        if group["n_runs"] == 1:  # one run: the spread over its cycles
            group.update({k: runs[0][k] for k in runs[0] if k.endswith("_std")})
        group["cycles_analysed"] = int(sum(r["n_cycles"] for r in runs))
        first = runs[0]
        series = read_loop(first["sweep"] / first["loop_csv"])
        group["series"] = series
        # the sweep dropped the cycles before its n_cycles analysed ones (poling)
        period = first["period_fs"]
        total = int(round((series.time_fs[-1] - 0.25 * period) / period))
        group["analysis"] = analyze_series(
            series, "z", period, discard_cycles=max(total - int(first["n_cycles"]), 0)
        )
        group["volume_A3"] = float(np.mean(series.volume))
    out.mkdir(parents=True, exist_ok=True)
    columns = ["temperature_K", "period_fs", "amplitude_V_A", "waveform", "n_runs"]
    columns += ["cycles_analysed", "volume_A3"]
    columns += [k for k in combined[0] if k.startswith(("ec", "pr", "area"))]
    with open(outputs[0], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for group in combined:
            writer.writerow(
                {
                    k: (f"{v:.6g}" if isinstance(v, float) else v)
                    for k, v in group.items()
                }
            )

    mv, uc = V_PER_A_TO_MV_PER_CM, E_ANGSTROM2_TO_UC_CM2
    print(
        "| T (K) | period (ps) | runs (cycles) | Ec (MV/cm) | Ec+ / Ec- (MV/cm) | "
        "Pr (uC/cm^2) | loop area (eV per cycle) |\n|---|---|---|---|---|---|---|"
    )
    for g in combined:
        v = g["volume_A3"]
        print(
            f"| {g['temperature_K']:g} | {g['period_fs'] / 1000:g} | {g['n_runs']} "
            f"({g['cycles_analysed']}) | {g['ec'] * mv:.2f} +- {g['ec_std'] * mv:.2f} | "
            f"{g['ec_plus'] * mv:.1f} / {g['ec_minus'] * mv:.1f} | "
            f"{g['pr'] * uc / v:.1f} +- {g['pr_std'] * uc / v:.1f} | "
            f"{g['area']:.1f} +- {g['area_std']:.1f} |"
        )

    periods = sorted({g["period_fs"] for g in combined})
    temps = sorted({g["temperature_K"] for g in combined})
    cmap = plt.get_cmap("plasma")
    color = {
        t: cmap(0.0 if len(temps) == 1 else 0.85 * k / (len(temps) - 1))
        for k, t in enumerate(temps)
    }
    fig, axes = plt.subplots(
        1, len(periods) + 1, figsize=(4.0 * (len(periods) + 1), 3.6), squeeze=False
    )
    for ax, period in zip(axes[0], periods):
        for g in (g for g in combined if g["period_fs"] == period):
            series, analysis = g["series"], g["analysis"]
            keep = series.time_fs >= analysis.cycle_start_fs[0] - 1e-9
            ax.plot(
                mv * series.field[keep, 2],
                uc
                / g["volume_A3"]
                * (series.polarization[keep, 2] - analysis.polarization_offset),
                color=color[g["temperature_K"]],
                lw=0.8,
                label=f"{g['temperature_K']:g} K",
            )
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel("E along c (MV/cm)")
        ax.set_ylabel("P along c (uC/cm^2, centred)")
        ax.set_title(f"period {period / 1000:g} ps")
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    for period in periods:
        sel = [g for g in combined if g["period_fs"] == period]
        ax.errorbar(
            [g["temperature_K"] for g in sel],
            [mv * g["ec"] for g in sel],
            yerr=[
                0.0 if not np.isfinite(g["ec_std"]) else mv * g["ec_std"] for g in sel
            ],
            marker="o",
            capsize=3,
            label=f"period {period / 1000:g} ps",
        )
    if intrinsic_ec is not None:
        ax.axhline(
            mv * intrinsic_ec,
            color="0.4",
            ls="--",
            lw=1,
            label="intrinsic (0 K, homogeneous)",
        )
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("coercive field Ec (MV/cm)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(outputs[1], dpi=130)
    plt.close(fig)
    print(f"wrote {outputs[0]} and {outputs[1]}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--report",
        nargs="+",
        metavar="SWEEP",
        default=None,
        help="instead of running: combine finished sweep folders (their hysteresis.csv) into "
        "OUT/switching_summary.csv and OUT/switching.png (mean and spread over runs)",
    )
    p.add_argument(
        "--intrinsic-ec",
        type=float,
        default=None,
        metavar="V_PER_A",
        help="with --report: the model's intrinsic coercive field (V/A; printed by a run, or "
        "nequip-pol coercive), drawn beside the dynamic Ec",
    )
    p.add_argument(
        "--model",
        default=None,
        help="the shipped model 'batio3', a compiled model (.nequip.pt2, --target "
        "nequip_pol_ase), a checkpoint/package, or 'reference:ferroelectric'",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--data",
        default=None,
        help="extended XYZ to take a, c from (default: a = 3.966, c = 4.304 A)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="n for an n x n x n cell (default 3: 135 atoms)",
    )
    # the defaults are the drive of the published Allegro-pol inputs (amplitude 0.3636 V/A, a
    # cosine there; the sine here starts at zero field on the poled state), near 0 K and at 300 K
    p.add_argument("--temperatures", type=float, nargs="+", default=[10.0, 300.0])
    p.add_argument(
        "--periods",
        dest="period",  # the option names of `nequip-pol hysteresis` (loop_protocol)
        metavar="PERIODS",
        type=float,
        nargs="+",
        default=[2000.0],
        help="fs (the published inputs: 2000 and 20000)",
    )
    p.add_argument(
        "--amplitude",
        type=float,
        default=0.3636,
        help="V/A; above the field at which the model switches (the printed intrinsic Ec is a guide)",
    )
    p.add_argument("--waveform", default="sine", choices=["triangle", "sine"])
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--discard", type=int, default=1)
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--friction", type=float, default=0.01, help="1/fs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fmax", type=float, default=0.005, help="relaxation threshold, eV/A"
    )
    p.add_argument(
        "--lammps-model",
        default=None,
        help="run the loops in LAMMPS with this model (--target nequip_pol_pair_allegro[_no_born])",
    )
    p.add_argument(
        "--plugin",
        default="lammps_patch/build/nequip_polplugin.so",
        help="LAMMPS plugin (with --lammps-model)",
    )
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks of the LAMMPS loops")
    p.add_argument("--force", action="store_true", help="overwrite outputs")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the rule of nequip-pol's verbs, nequip_pol.threads: "
        "OMP_NUM_THREADS, else the free cores; one for a small cell)",
    )
    # the hysteresis verb's options this script does not offer: the loops run along z
    p.set_defaults(axis="z", sample_interval=1, snapshot_interval=0)
    args = p.parse_args(argv)
    if args.report:
        return report(
            args.report,
            Path(args.out),
            force=args.force,
            intrinsic_ec=args.intrinsic_ec,
        )
    if args.model is None:
        p.error(
            "--model is required (or --report SWEEP ... to combine finished sweeps)"
        )

    from ase.io import write
    from ase.optimize import FIRE

    from nequip_pol import models
    from nequip_pol.analysis.coercive import intrinsic_coercive_field
    from nequip_pol.analysis.hysteresis import (
        LammpsLoopRunner,
        check_output_dir,
        run_sweep,
    )
    from nequip_pol.cli.switching import loop_protocol
    from nequip_pol.integrations.model_arguments import load_calculator
    from nequip_pol.reference.ferroelectric import AnalyticFerroelectric
    from nequip_pol.threads import apply_threads, choose_threads
    from nequip_pol.units import E_ANGSTROM2_TO_UC_CM2, V_PER_A_TO_MV_PER_CM

    # the thread rule of the verbs, for the n x n x n cell of the relaxation and the loops
    threads, why = choose_threads(5 * args.repeat**3, args.threads)
    apply_threads(threads)
    print(f"threads: {threads} ({why})", flush=True)
    protocol = loop_protocol(args)
    try:
        protocol.validate()
        out = check_output_dir(args.out, args.temperatures, args.period, args.force)
        runner = None
        if args.lammps_model:
            if args.model.startswith("reference:"):
                raise ValueError(
                    "--lammps-model runs a trained model; the reference material runs in ASE only"
                )
            runner = LammpsLoopRunner(
                args.lammps_model, ["Ba", "Ti", "O"], args.plugin, ranks=args.ranks
            )
            runner.check(protocol)
        # the MODEL argument as every verb reads it (reference:ferroelectric, shipped names,
        # files); relaxation and loops need E, F and P only: a checkpoint or package runs
        # without the Born-charge passes (a compiled model has its outputs fixed)
        calc = load_calculator(args.model, modifiers=["disable_born_charges"])
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"batio3_switching: error: {exc}", file=sys.stderr)
        return 2

    if args.model.startswith("reference:"):
        from nequip_pol.reference.paraelectric import LATTICE_CONSTANT

        a = c = LATTICE_CONSTANT
    else:
        if models.is_shipped_name(args.model):
            print(models.describe(args.model))
        a, c = lattice_from_data(Path(args.data)) if args.data else (3.966, 4.304)

    # 1. polar ground state at zero field
    atoms, centro = tetragonal_cell(a, c, args.repeat, ti_shift=0.1)
    calc.set_field([0.0, 0.0, 0.0])
    atoms.calc = calc
    t0 = time.time()
    FIRE(atoms, logfile=None).run(fmax=args.fmax, steps=2000)
    fmax = float(np.abs(atoms.get_forces()).max())
    p_polar = np.asarray(calc.get_polarization(atoms))
    p_centro = np.asarray(calc.evaluate(centro, field=np.zeros(3))["polarization"])
    dp = p_polar - p_centro
    u = AnalyticFerroelectric().off_centering(
        atoms
    )  # geometric: Ti minus the centroid of its O6 cage
    volume = atoms.get_volume()
    print(
        f"relaxed {len(atoms)} atoms at zero field in {time.time() - t0:.0f} s (max |F| = {fmax:.2g} eV/A)"
    )
    print(
        f"P - P(centrosymmetric) = {np.round(dp, 4).tolist()} e*A = "
        f"{np.round(dp / volume * E_ANGSTROM2_TO_UC_CM2, 2).tolist()} uC/cm^2"
    )
    print(
        f"Ti off-centring along z: {u[:, 2].mean():.4f} +- {u[:, 2].std():.4f} A (x, y: {u[:, 0].mean():.4f}, "
        f"{u[:, 1].mean():.4f})"
    )
    polar = abs(u[:, 2].mean()) > 0.02 and abs(dp[2]) > 1e-3 * len(atoms)
    print(
        "polar ground state:",
        "yes"
        if polar
        else "NO (the model relaxes to a (nearly) centrosymmetric state)",
    )
    if polar:
        # the +P state of the 5-atom cell followed under a growing -E along z (continuation, bisection)
        cell, cell_centro = tetragonal_cell(a, c, 1, ti_shift=0.1)
        ec = intrinsic_coercive_field(cell, calc, "z", reference=cell_centro)
        low, high = ec["bracket_low"], ec["bracket_high"]
        print(
            f"intrinsic coercive field (0 K, homogeneous switching of the 5-atom cell, fixed cell): "
            f"{0.5 * (low + high):.3f} V/A = {0.5 * (low + high) * V_PER_A_TO_MV_PER_CM:.1f} MV/cm "
            f"(between {low:.4f} and {high:.4f} V/A); loops need --amplitude above "
            "the field at which they switch, which is lower at finite temperature"
        )
    out.mkdir(parents=True, exist_ok=True)
    atoms.calc = None
    write(out / "poled.xyz", atoms)
    write(
        out / "poled.data",
        atoms,
        format="lammps-data",
        specorder=["Ba", "Ti", "O"],
        masses=True,
    )

    # 2. loops
    rows = run_sweep(
        atoms,
        calc,
        protocol,
        args.temperatures,
        args.period,
        out,
        force=True,
        runner=runner,
    )
    # the units of the ferroelectrics literature beside the model's (V/A, e*A per cell)
    print(
        "\n T (K)  period (ps)   Ec (MV/cm)        Pr (uC/cm^2)      "
        "Ec (V/A)            Pr (e*A)          area (eV)"
    )
    for r in rows:
        ec_mv = r["ec"] * V_PER_A_TO_MV_PER_CM
        pr_uc = r["pr"] / volume * E_ANGSTROM2_TO_UC_CM2
        print(
            f"{r['temperature_K']:6g} {r['period_fs'] / 1000:10g}   "
            f"{ec_mv:.2f} +- {r['ec_std'] * V_PER_A_TO_MV_PER_CM:.2f}      "
            f"{pr_uc:.1f} +- {r['pr_std'] / volume * E_ANGSTROM2_TO_UC_CM2:.1f}      "
            f"{r['ec']:.4f} +- {r['ec_std']:.4f}   "
            f"{r['pr']:.4f} +- {r['pr_std']:.4f}   {r['area']:.4f} +- {r['area_std']:.4f}"
        )
    print(
        f"wrote {out}/hysteresis.csv, loops.png, ec_vs_temperature.png, ec_vs_frequency.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
