"""Tip-induced switching of tetragonal BaTiO3: a field that varies in space, with a field-aware model.

Steps:

1. Build a periodic tetragonal BaTiO3 cell wide in x and y (``--repeat NX NY NZ`` unit cells,
   default 6 6 2: 360 atoms; a = 3.966 A, c = 4.304 A, the lattice of the shared DFT data), poled
   along +z, and relax it at zero field (FIRE, fixed cell: the 5-atom cell first, then the
   repeated cell).
2. Apply a tip-like field along -z, E(r) = -E_tip exp(-rho^2 / (2 w^2)) z_hat, rho the in-plane
   distance from the tip axis through the centre of the cell (minimum image, plus the nearest
   periodic images so that the profile is smooth across the cell boundary: a square array of
   tips, one per cell). The field is uniform along z: it mimics a thin film between a tip and a
   bottom electrode, the field under the tip going straight through the film. Given to the
   calculator as a per-atom field (``set_atomic_field``) with its analytic gradient, so the
   forces include the field-gradient term sum_a p_ia dE_a/dr_ib. With the defaults (E_tip 0.3
   V/A, w 4.5 A) the four Ti columns next to the axis see 0.25 V/A, above the shipped model's
   coercive fields (0 K intrinsic 0.15-0.16 V/A, dynamic ~0.2 V/A), the next ring 0.11 V/A and
   the rest of the cell less than 0.06 V/A.
3. Langevin MD (ASE) at ``--temperature``: ``--equilibrate-fs`` without field, ``--duration-fs``
   with the tip, then ``--after-fs`` with the tip removed (does the domain persist?).
   P(t) and the per-atom dipoles p_i are logged by ``PolarizationLogger`` (``polarization.csv``,
   ``atomic_dipoles.npy``).
4. Per unit cell (the 5-atom cell around each Ti: the Ti, half of each of its six O, an eighth of
   each of its eight Ba): the Ti off-centring from its O6 cage u_z (A) and the cell's dipole, the
   weighted sum of the p_i (e*A, and uC/cm^2 with the cell volume). A cell is *switched* when u_z
   < 0, averaged over the last ``--average-fs`` of a phase. Prints the switched cells under the
   tip (rho < w) and elsewhere at the end of each phase; writes ``cells.npz`` (u_z and p_z of
   every cell at every sample) and the figure ``tip_switching.png``: maps of u_z and P_z averaged
   over each Ti column (over z) before, with and after the tip, the circle rho = w, and the
   switched cells against time.

The model sees at atom i the field at atom i (it is local). That is the first term of an
expansion of the field around each atom, good when the field changes little over one cutoff
sphere (r_max = 5 A for ``batio3``): a tip 4.5 A wide is beyond it; the training data have only
zero fields, so the response comes from the learned P, Z*, alpha (docs/tip_switching.md).

Usage::

    # the model that ships with nequip-pol (card: nequip_pol/models/batio3.md): 650 MD steps,
    # 8 min on one busy core (docs/tip_switching.md)
    python examples/batio3_tip_switching.py --model batio3 --out tip_batio3
    # the domain left on its own for 0.5 ps after the tip is removed
    python examples/batio3_tip_switching.py --model batio3 --out tip_batio3 --after-fs 500
    # no model at hand: the exact analytic ferroelectric (coercive field 0.078 V/A); 1.5 min
    python examples/batio3_tip_switching.py --model reference:ferroelectric --out tip_reference \\
        --e-tip 0.12 --temperature 30

MODEL: the shipped name ``batio3``, a checkpoint or package (``*.ckpt``, ``*.nequip.zip``) written
by this nequip-pol, a compiled model of the target ``nequip_pol_ase_atomic_field``
(``*.nequip.pt2``; the plain ``nequip_pol_ase`` takes no per-atom field), or
``reference:ferroelectric``. The model is never written by this script; do not commit models or DFT data.
Units: eV, A, fs, V/A, e*A, K.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# the lattice of the shared DFT data (examples/batio3_switching.py)
A_DFT, C_DFT = 3.966, 4.304


def gaussian_tip_field(positions, cell, centre, e_tip: float, width: float):
    """Field of a tip along -z, Gaussian in the in-plane distance rho from the tip axis.

    E(r) = -e_tip * sum_n exp(-|rho_n|^2 / (2 width^2)) z_hat, rho_n the in-plane (x, y) vector
    from the axis through ``centre`` to r, taken to the nearest image of the periodic cell
    (minimum image over the first two cell vectors) and to the eight images around it: a
    periodic array of tips, smooth across the cell boundary (the images left out are at least
    1.5 L away: below exp(-1.125 (L / w)^2) of the peak, L the shorter in-plane cell length).
    Uniform along z.

    Args:
        positions: (N, 3) A
        cell: (3, 3) A, rows the cell vectors; the first two span the plane (z along the third)
        centre: (3,) A, a point on the tip axis (its z is unused)
        e_tip: field on the axis, V/A (pointing along -z for e_tip > 0)
        width: w, A

    Returns:
        (field (N, 3) V/A, gradient (N, 3, 3) V/A^2 with [i, a, b] = dE_a/dr_b at atom i)
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    d = positions - np.asarray(centre, dtype=float)
    frac = d @ np.linalg.inv(cell)
    frac[:, :2] -= np.round(frac[:, :2])
    d = frac @ cell
    value = np.zeros(len(positions))
    grad_xy = np.zeros((len(positions), 2))
    for n1 in (-1, 0, 1):
        for n2 in (-1, 0, 1):
            rho = (d + n1 * cell[0] + n2 * cell[1])[:, :2]
            g = np.exp(-(rho**2).sum(-1) / (2.0 * width**2))
            value += g
            grad_xy += g[:, None] * (-rho / width**2)
    field = np.zeros((len(positions), 3))
    field[:, 2] = -e_tip * value
    gradient = np.zeros((len(positions), 3, 3))
    gradient[:, 2, :2] = -e_tip * grad_xy
    return field, gradient


def in_plane_distance(positions, cell, centre) -> np.ndarray:
    """rho (A): the in-plane distance from the tip axis, minimum image (the tip's own image)."""
    d = np.asarray(positions, dtype=float) - np.asarray(centre, dtype=float)
    frac = d @ np.linalg.inv(np.asarray(cell, dtype=float))
    frac[:, :2] -= np.round(frac[:, :2])
    d = frac @ np.asarray(cell, dtype=float)
    return np.linalg.norm(d[:, :2], axis=1)


def tetragonal_supercell(a: float, c: float, repeat, ti_shift: float):
    """Tetragonal ABO3 cell (Ba corner, Ti body centre) repeated (nx, ny, nz), Ti shifted along +z."""
    from nequip_pol.reference.paraelectric import ideal_structure

    atoms = ideal_structure(tuple(repeat), a=a, c=c)
    atoms.positions[atoms.numbers == 22] += [0.0, 0.0, ti_shift]
    return atoms


def unit_cells(atoms):
    """The 5-atom cell around each Ti: weights (n_Ti, N) and the Ti's scaled positions (n_Ti, 3).

    Row k: 1 on Ti k, 1/2 on each of its six O (within 3.0 A), 1/8 on each of its eight Ba
    (within 4.0 A), so that the rows sum to one formula unit and the columns to one (every atom
    shared out in full). A cell's dipole is its row times the per-atom dipoles.
    """
    from ase.neighborlist import neighbor_list

    ti = np.flatnonzero(atoms.numbers == 22)
    row = {int(t): k for k, t in enumerate(ti)}
    weights = np.zeros((len(ti), len(atoms)))
    weights[np.arange(len(ti)), ti] = 1.0
    i, j, dist = neighbor_list("ijd", atoms, 4.0)
    for a, b, r in zip(i, j, dist):
        if a not in row:
            continue
        if atoms.numbers[b] == 8 and r < 3.0:
            weights[row[a], b] += 0.5
        elif atoms.numbers[b] == 56:
            weights[row[a], b] += 0.125
    if not (
        np.allclose(weights.sum(1), 5.0)  # 1 + 6/2 + 8/8
        and np.allclose(weights.sum(0), 1.0)
    ):
        raise ValueError(
            "the cells around the Ti atoms do not share every atom out once: not a perovskite "
            "cell with six O within 3.0 A and eight Ba within 4.0 A of each Ti"
        )
    frac = atoms.get_scaled_positions(wrap=True)[ti]
    return weights, frac


def grid_indices(frac, shape) -> np.ndarray:
    """Cell index (n_Ti, 3) of each Ti from its scaled position (Ti at the cell centres)."""
    return np.floor(np.asarray(frac) * np.asarray(shape)).astype(int) % np.asarray(
        shape
    )


def column_average(values, index, shape) -> np.ndarray:
    """(nx, ny) mean over z of per-cell values (n_Ti,)."""
    total = np.zeros(shape[:2])
    count = np.zeros(shape[:2])
    np.add.at(total, (index[:, 0], index[:, 1]), values)
    np.add.at(count, (index[:, 0], index[:, 1]), 1.0)
    return total / count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        required=True,
        help="the shipped model 'batio3', a checkpoint/package, a compiled model "
        "(--target nequip_pol_ase_atomic_field), or 'reference:ferroelectric'",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--repeat",
        type=int,
        nargs=3,
        default=[6, 6, 2],
        metavar=("NX", "NY", "NZ"),
        help="unit cells along x, y, z (default 6 6 2: 360 atoms)",
    )
    p.add_argument(
        "--e-tip", type=float, default=0.3, help="field on the tip axis, V/A (along -z)"
    )
    p.add_argument("--width", type=float, default=4.5, help="w of the Gaussian, A")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin, 1/fs")
    p.add_argument(
        "--equilibrate-fs",
        type=float,
        default=100.0,
        help="MD without field before the tip, fs",
    )
    p.add_argument(
        "--duration-fs", type=float, default=1000.0, help="MD with the tip, fs"
    )
    p.add_argument(
        "--after-fs",
        type=float,
        default=200.0,
        help="MD after the tip is removed, fs (does the domain persist?)",
    )
    p.add_argument(
        "--sample-interval",
        type=int,
        default=5,
        help="MD steps between the samples of P, p_i and u",
    )
    p.add_argument(
        "--average-fs",
        type=float,
        default=50.0,
        help="the per-cell u_z and P of a phase's end: mean over its last AVERAGE_FS fs",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fmax", type=float, default=0.005, help="relaxation threshold, eV/A"
    )
    p.add_argument("--force", action="store_true", help="overwrite outputs")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the rule of nequip-pol's verbs, nequip_pol.threads)",
    )
    args = p.parse_args(argv)

    from ase import units
    from ase.md.langevin import Langevin
    from ase.optimize import FIRE

    from nequip_pol import models
    from nequip_pol.integrations.md import PolarizationLogger, thermalize
    from nequip_pol.integrations.model_arguments import load_calculator
    from nequip_pol.analysis.domains import off_centring
    from nequip_pol.threads import apply_threads, choose_threads
    from nequip_pol.units import E_ANGSTROM2_TO_UC_CM2

    nx, ny, nz = args.repeat
    problems = []
    if min(args.repeat) < 1:
        problems.append("--repeat takes three whole numbers of at least 1")
    if args.width <= 0 or args.timestep <= 0 or args.sample_interval < 1:
        problems.append("--width, --timestep and --sample-interval must be positive")
    if args.duration_fs < args.timestep * args.sample_interval:
        problems.append("--duration-fs must cover at least one sample")
    if min(args.equilibrate_fs, args.after_fs, args.temperature) < 0:
        problems.append("--equilibrate-fs, --after-fs and --temperature must be >= 0")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        problems.append(f"{out} is not empty (--force overwrites)")
    if problems:
        for text in problems:
            print(f"batio3_tip_switching: error: {text}", file=sys.stderr)
        return 2

    threads, why = choose_threads(5 * nx * ny * nz, args.threads)
    apply_threads(threads)
    print(f"threads: {threads} ({why})", flush=True)
    try:
        # E, F, P and the atomic dipoles: no Born-charge passes (checkpoints and packages)
        calc = load_calculator(args.model, modifiers=["disable_born_charges"])
    except (ValueError, FileNotFoundError) as exc:
        print(f"batio3_tip_switching: error: {exc}", file=sys.stderr)
        return 2
    reference = args.model.startswith("reference:")
    if reference:
        from nequip_pol.reference.paraelectric import CUTOFF, LATTICE_CONSTANT

        a = c = LATTICE_CONSTANT
        r_max = CUTOFF
    else:
        if models.is_shipped_name(args.model):
            print(models.describe(args.model))
        a, c = A_DFT, C_DFT
        metadata = getattr(getattr(calc, "model", None), "metadata", None) or {}
        r_max = float(metadata["r_max"]) if "r_max" in metadata else None
    out.mkdir(parents=True, exist_ok=True)

    # 1. the poled state at zero field: the 5-atom cell, then the repeated cell
    calc.set_field([0.0, 0.0, 0.0])
    t0 = time.time()
    unit = tetragonal_supercell(a, c, (1, 1, 1), ti_shift=0.1)
    unit.calc = calc
    FIRE(unit, logfile=None).run(fmax=args.fmax, steps=1000)
    atoms = unit.repeat((nx, ny, nz))
    atoms.calc = calc
    FIRE(atoms, logfile=None).run(fmax=args.fmax, steps=200)
    fmax = float(np.abs(atoms.get_forces()).max())
    print(
        f"relaxed {len(atoms)} atoms ({nx}x{ny}x{nz} cells, a = {a:.3f}, c = {c:.3f} A) at zero "
        f"field in {time.time() - t0:.0f} s (max |F| = {fmax:.2g} eV/A)",
        flush=True,
    )
    weights, frac = unit_cells(atoms)
    shape = (nx, ny, nz)
    index = grid_indices(frac, shape)
    cell = atoms.cell.array.copy()
    centre = 0.5 * (cell[0] + cell[1])
    ti = np.flatnonzero(atoms.numbers == 22)
    rho = in_plane_distance(atoms.positions[ti], cell, centre)
    under = rho < args.width
    relaxed = atoms.copy()  # the O6 cages of the Ti, found once (domains.octahedra)
    cell_volume = atoms.get_volume() / len(ti)
    to_uc = E_ANGSTROM2_TO_UC_CM2 / cell_volume

    def field(positions, time_fs):
        return gaussian_tip_field(positions, cell, centre, args.e_tip, args.width)[0]

    def gradient(positions, time_fs):
        return gaussian_tip_field(positions, cell, centre, args.e_tip, args.width)[1]

    tip_at_ti = -field(atoms.positions[ti], 0.0)[:, 2]
    grad_norm = np.linalg.norm(gradient(atoms.positions, 0.0), axis=(1, 2)).max()
    print(
        f"tip: E_tip = {args.e_tip} V/A along -z, w = {args.width} A, axis at x = {centre[0]:.2f}, "
        f"y = {centre[1]:.2f} A; {under.sum()} of {len(ti)} cells under the tip (rho < w), where "
        f"|E| = {tip_at_ti[under].min():.3f}-{tip_at_ti[under].max():.3f} V/A"
        if under.any()
        else f"tip: E_tip = {args.e_tip} V/A, w = {args.width} A: no Ti within rho < w"
    )
    print(
        f"field elsewhere: at most {tip_at_ti[~under].max() if (~under).any() else 0.0:.3f} V/A; "
        f"largest |dE/dr| {grad_norm:.3f} V/A^2"
        + (
            f" = {grad_norm * r_max / args.e_tip:.2f} E_tip per r_max = {r_max:g} A (the model "
            "assumes the field varies little over r_max)"
            if r_max
            else ""
        ),
        flush=True,
    )

    # 2-3. MD: equilibrate, tip on, tip off
    dt = args.timestep
    rng = np.random.default_rng(args.seed)
    thermalize(atoms, args.temperature, rng)
    dyn = Langevin(
        atoms,
        timestep=dt * units.fs,
        temperature_K=args.temperature,
        friction=args.friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    calc.attach_dynamics(dyn, t0=0.0)
    samples = {"time_fs": [], "u": [], "phase": []}
    phase = ["equilibrate"]

    def sample():
        samples["time_fs"].append(calc.time)
        samples["u"].append(off_centring([atoms], reference=relaxed)[0, :, 2])
        samples["phase"].append(phase[0])

    phases = [
        ("equilibrate", args.equilibrate_fs, False),
        ("tip", args.duration_fs, True),
        ("after", args.after_fs, False),
    ]
    t0 = time.time()
    step_times = []
    with PolarizationLogger(
        atoms,
        out / "polarization.csv",
        dyn=dyn,
        atomic_dipoles=out / "atomic_dipoles.npy",
    ) as log:
        # ASE calls the observers at step 0 too: the first sample is the relaxed state
        dyn.attach(log, interval=args.sample_interval)
        dyn.attach(sample, interval=args.sample_interval)
        for name, length, tip_on in phases:
            steps = int(round(length / dt))
            if steps == 0:
                continue
            phase[0] = name
            calc.set_atomic_field(field if tip_on else None, gradient=gradient)
            start = time.time()
            dyn.run(steps)
            step_times.append((time.time() - start) / steps)
            print(
                f"{name}: {steps} steps of {dt:g} fs in {time.time() - start:.0f} s "
                f"({step_times[-1]:.2f} s/step), T = {atoms.get_temperature():.0f} K",
                flush=True,
            )
        dipole_frames = log.atomic_dipole_frames
    wall = time.time() - t0
    times = np.array(samples["time_fs"])
    u = np.array(samples["u"])  # (samples, n_Ti)
    sample_phase = np.array(samples["phase"])
    # the logger's rows: the t = 0 row, then one per sample; the dipoles of every row
    cell_p = np.einsum("kn,snc->skc", weights, dipole_frames)[..., 2]  # (samples, n_Ti)
    if cell_p.shape != u.shape:
        raise RuntimeError("the logged dipoles and the samples of u do not line up")
    np.savez(
        out / "cells.npz",
        time_fs=times,
        phase=sample_phase,
        u_z=u,
        p_z=cell_p,
        grid_index=index,
        rho=rho,
        cell_volume=cell_volume,
    )

    # 4. switched cells at the end of each phase
    def end_of(name):
        keep = np.flatnonzero(sample_phase == name)
        if name == "before":
            keep = np.array([0])
        if len(keep) == 0:
            return None
        last = times[keep[-1]]
        keep = keep[times[keep] >= last - args.average_fs + 1e-9]
        return u[keep].mean(0), cell_p[keep].mean(0), times[keep[0]], last

    states = [("relaxed (0 K)", end_of("before"))]
    for name, label in (
        ("equilibrate", "before the tip"),
        ("tip", "with the tip"),
        ("after", "tip removed"),
    ):
        state = end_of(name)
        if state is not None:
            states.append((label, state))
    print(
        f"\nswitched cells (u_z < 0; mean over the last {args.average_fs:g} fs of each phase), "
        f"{under.sum()} cells under the tip (rho < {args.width:g} A), {(~under).sum()} elsewhere"
    )
    print(
        f"{'state':>16} {'t (fs)':>12} {'under the tip':>14} {'elsewhere':>10} "
        f"{'u_z tip/else (A)':>18} {'P_z tip/else (uC/cm^2)':>24}"
    )
    for label, (uz, pz, first, last) in states:
        span = f"{first:.0f}-{last:.0f}" if last > first else f"{last:.0f}"
        print(
            f"{label:>16} {span:>12} {int((uz[under] < 0).sum()):>14d} "
            f"{int((uz[~under] < 0).sum()):>10d} "
            f"{uz[under].mean():>8.3f} / {uz[~under].mean():>6.3f} "
            f"{pz[under].mean() * to_uc:>12.1f} / {pz[~under].mean() * to_uc:>6.1f}"
        )
    mean_step = sum(step_times) / len(step_times) if step_times else float("nan")
    print(f"MD: {wall:.0f} s, {mean_step:.2f} s per step on average")
    guard = getattr(calc, "guard", None)
    if guard is not None and not any(guard.counts.values()):
        print(
            guard.report()
        )  # (a guard that counted cases outside the range reports at exit)

    # figure: maps of column-averaged u_z and P_z; switched cells against time
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    shown = [s for s in states if s[0] != "relaxed (0 K)"] or states
    ncol = len(shown) + 1
    fig, axes = plt.subplots(2, ncol, figsize=(3.6 * ncol, 7.0), squeeze=False)
    umax = max(np.abs(s[1][0]).max() for s in shown)
    pmax = max(np.abs(s[1][1]).max() for s in shown) * to_uc
    extent = (0.0, np.linalg.norm(cell[0]), 0.0, np.linalg.norm(cell[1]))
    for col, (label, (uz, pz, first, last)) in enumerate(shown):
        for row, (values, vmax, what) in enumerate(
            ((uz, umax, "u_z (A)"), (pz * to_uc, pmax, "P_z (uC/cm^2)"))
        ):
            ax = axes[row, col]
            grid = column_average(values, index, shape)
            im = ax.imshow(
                grid.T,
                origin="lower",
                extent=extent,
                cmap="RdBu_r",
                vmin=-vmax,
                vmax=vmax,
            )
            ax.add_patch(
                Circle(centre[:2], args.width, fill=False, ls="--", color="k", lw=1.2)
            )
            span = f"{first:.0f}-{last:.0f} fs" if last > first else f"{last:.0f} fs"
            ax.set_title(f"{label}, {span}\n{what}, mean over z", fontsize=9)
            ax.set_xlabel("x (A)")
            ax.set_ylabel("y (A)")
            fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[0, -1]
    switched_tip = (u[:, under] < 0).sum(1)
    switched_else = (u[:, ~under] < 0).sum(1)
    ax.plot(times, switched_tip, label=f"under the tip (of {under.sum()})")
    ax.plot(times, switched_else, label=f"elsewhere (of {(~under).sum()})")
    ax.set_xlabel("t (fs)")
    ax.set_ylabel("cells with u_z < 0 (instantaneous)")
    ax.legend(fontsize=8)
    ax = axes[1, -1]
    ax.plot(times, cell_p[:, under].mean(1) * to_uc, label="under the tip")
    ax.plot(times, cell_p[:, ~under].mean(1) * to_uc, label="elsewhere")
    ax.set_xlabel("t (fs)")
    ax.set_ylabel("mean P_z per cell (uC/cm^2)")
    ax.legend(fontsize=8)
    t_on = args.equilibrate_fs
    t_off = args.equilibrate_fs + args.duration_fs
    for ax in axes[:, -1]:
        ax.axvspan(t_on, t_off, color="0.9", zorder=0)
    model_name = Path(args.model).name if not reference else args.model
    off = f", off for {args.after_fs:g} fs" if args.after_fs > 0 else ""
    fig.suptitle(
        f"{model_name}: {nx}x{ny}x{nz} cells ({len(atoms)} atoms), "
        f"{args.temperature:g} K, Langevin, dt {dt:g} fs\n"
        f"tip E = -{args.e_tip:g} exp(-rho^2/2w^2) V/A along z, w = {args.width:g} A "
        f"(dashed), on for {args.duration_fs:g} fs (grey) after {args.equilibrate_fs:g} fs "
        f"at zero field{off}; u_z < 0: switched (from +z)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out / "tip_switching.png", dpi=110)
    plt.close(fig)
    print(
        f"wrote {out}/tip_switching.png, cells.npz, polarization.csv, atomic_dipoles.npy"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
