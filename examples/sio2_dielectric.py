"""Electric response of alpha-quartz from a field-aware SiO2 model, end to end.

    python examples/sio2_dielectric.py sio2 --out sio2_dielectric     # the shipped model
    python examples/sio2_dielectric.py MODEL [--out sio2_dielectric] [--md-steps 4000] [--temperature 300]
        [--model-note "test RMSE F 0.12 eV/A, Z* 0.05 e; 15 min on 2 CPU cores"]

MODEL: the shipped model ``sio2`` (its card's errors become the model note), a checkpoint /
package (eager; MD then runs without Born charges) or a compiled
``*.nequip.pt2`` (``--target nequip_pol_ase``); ``analytic`` is refused (not SiO2).

What it does (all at fixed cell, zero field unless said otherwise):

1. builds alpha-quartz (P3_121, 9 atoms; Si (0.4697, 0, 1/3), O (0.4135, 0.2669, 0.2142): four Si-O bonds
   of 1.63 A per Si) with the
   mean lattice constants of the DFT frames (``$NEQUIP_POL_DATA/dft/SiO2.xyz``: 72-atom 2 x 2 x 2
   orthogonal supercells, a = x / 2, c = z / 2), c along z; relaxes the ions;
2. harmonic route: Gamma phonons (phonopy), Born charges, eps_inf -> IR-active frequencies, oscillator
   strengths, eps_0; LO-TO splitting for q parallel (z) and perpendicular (x) to c;
3. field route: ions relaxed in +-E (Richardson), eps_0 = I + dP/dE / (eps_vac V);
4. MD route: Langevin NVT of the 72-atom supercell at ``--temperature`` -> P(t) -> IR spectrum
   (peak positions) and eps_0 from <dP dP>;
5. writes ``OUT/results.md`` (tables: eps_inf and eps_0 parallel / perpendicular to c by the three
   routes, modes, LO-TO, MD peaks; each headed by ``--model-note``), CSV files and plots.

Numbers from a model are only as good as the model: put its test errors and training time in
``--model-note`` so they are printed beside every result.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

import numpy as np


NO_NOTE = "(model errors and training time not given)"


def alpha_quartz(a: float, c: float):
    """Alpha-quartz (P3_121, 9 atoms; the enantiomer of P3_221, same dielectric tensor), a along x, c along z."""
    from ase.spacegroup import crystal

    return crystal(
        ["Si", "O"],
        basis=[(0.4697, 0.0, 1.0 / 3.0), (0.4135, 0.2669, 0.2142)],
        spacegroup=152,
        cellpar=[a, a, c, 90, 90, 120],
    )


def lattice_from_data(path: Path):
    """Mean (a, c) of the DFT frames (2 x 2 x 2 orthogonal supercells: a = L_x / 2, c = L_z / 2)."""
    import ase.io

    frames = ase.io.read(path, index=":")
    lx = np.array([f.cell.lengths()[0] for f in frames])
    lz = np.array([f.cell.lengths()[2] for f in frames])
    return float(lx.mean() / 2), float(lz.mean() / 2), len(frames)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model", help="SiO2 model: checkpoint, package or compiled *.nequip.pt2"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="SiO2.xyz for the lattice constants (default: $NEQUIP_POL_DATA/dft/SiO2.xyz)",
    )
    parser.add_argument(
        "--out",
        default="sio2_dielectric",
        help="output folder (must not exist unless --force)",
    )
    parser.add_argument("--force", action="store_true")
    parser.add_argument(
        "--md-steps",
        type=int,
        default=4000,
        help="recorded MD steps (0: skip the MD route)",
    )
    parser.add_argument("--equilibration", type=int, default=500)
    parser.add_argument(
        "--temperature", type=float, default=300.0, help="MD temperature, K"
    )
    parser.add_argument("--dt", type=float, default=1.0, help="MD time step, fs")
    parser.add_argument(
        "--friction",
        type=float,
        default=0.002,
        help="Langevin friction, 1/fs (small: sharp IR lines)",
    )
    parser.add_argument(
        "--displacement", type=float, default=0.01, help="phonopy displacement, A"
    )
    parser.add_argument(
        "--field-step", type=float, default=2e-3, help="field route step, V/A"
    )
    parser.add_argument(
        "--fmax",
        type=float,
        default=None,
        help="relaxation force tolerance, eV/A (default: from the model's precision, printed)",
    )
    parser.add_argument(
        "--model-note",
        default=NO_NOTE,
        help="the model's test errors and training time, printed beside every result",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the rule of nequip-pol's verbs, nequip_pol.threads: "
        "OMP_NUM_THREADS, else the free cores; one for a small cell)",
    )
    args = parser.parse_args(argv)

    from nequip_pol.analysis import dielectric as D
    from nequip_pol.analysis import phonons as PH
    from nequip_pol.analysis import plots, spectra
    from nequip_pol.integrations.model_arguments import load_calculator
    from nequip_pol.data_path import shared_data_dir
    from nequip_pol.threads import apply_threads, choose_threads

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(
            f"sio2_dielectric: error: {out} exists and is not empty (use --force)",
            file=sys.stderr,
        )
        return 2
    if args.model.startswith("reference:") or args.model == "analytic":
        print(
            "sio2_dielectric: error: the reference materials are perovskites, not SiO2; give a SiO2 model",
            file=sys.stderr,
        )
        return 1
    data = Path(args.data) if args.data else shared_data_dir() / "dft" / "SiO2.xyz"
    if not data.exists():
        print(
            f"sio2_dielectric: error: {data}: no such file (set NEQUIP_POL_DATA or --data)",
            file=sys.stderr,
        )
        return 1
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()

    def log(msg):
        print(f"[{time.time() - start:7.1f} s] {msg}", flush=True)

    # the thread rule of the verbs, for the largest cell evaluated (the 72-atom MD supercell)
    threads, why = choose_threads(72 if args.md_steps > 0 else 9, args.threads)
    apply_threads(threads)
    log(f"threads: {threads} ({why})")
    a, c, n_frames = lattice_from_data(data)
    log(f"lattice from {n_frames} DFT frames: a = {a:.4f} A, c = {c:.4f} A")
    from nequip_pol import models

    if models.is_shipped_name(args.model) and args.model_note == NO_NOTE:
        args.model_note = models.describe(args.model)
    model_file = models.resolve(args.model)  # a shipped name -> its archive
    calc = load_calculator(args.model)
    atoms = D.relax_positions(alpha_quartz(a, c), calc, fmax=args.fmax, progress=log)
    volume = atoms.get_volume()
    log(
        f"relaxed alpha-quartz (9 atoms, V = {volume:.3f} A^3): {atoms.info['relax_newton_steps']} Newton steps"
    )

    # harmonic route + LO-TO; an unstable mode (possible with an unconverged model) is followed downhill
    ph = PH.phonopy_gamma(atoms, calc, displacement=args.displacement, progress=log)
    for attempt in range(4):
        optical = np.nonzero(~ph.acoustic)[0]
        unstable = [m for m in optical if ph.frequencies_thz[m] < -0.05]
        if not unstable:
            break
        m = unstable[0]
        log(
            f"mode {m} is unstable ({ph.frequencies_cm1[m]:.1f} cm^-1): displacing along it and relaxing again"
        )
        shift = (ph.eigenvectors[:, m] / np.sqrt(np.repeat(ph.masses, 3))).reshape(
            -1, 3
        )
        trial = atoms.copy()
        trial.positions += 0.1 * shift / np.abs(shift).max()
        atoms = D.relax_positions(trial, calc, fmax=args.fmax, progress=log)
        ph = PH.phonopy_gamma(atoms, calc, displacement=args.displacement, progress=log)
        volume = atoms.get_volume()
    harmonic = D.eps0_harmonic(ph)  # refuses, naming the mode, if still unstable
    directions = np.array(
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    )  # parallel, perpendicular to c
    loto = PH.lo_to_splitting(ph, directions)
    log("harmonic route done")
    field = D.eps0_field_response(
        atoms,
        calc,
        field_step=args.field_step,
        fmax=args.fmax,
        hessian=ph.force_constants,
        progress=log,
    )
    routes = {"harmonic": harmonic, "field": field}

    md_text = ""
    if args.md_steps > 0:
        md_calc = calc
        if not str(model_file).endswith(".pt2"):
            try:  # MD needs E, F, P only: drop the Born charges (about 2x cheaper)
                from nequip_pol.integrations.ase import NequIPPolCalculator

                md_calc = NequIPPolCalculator.from_saved_model(
                    model_file,
                    chemical_species_to_atom_type_map=True,
                    modifiers=["disable_born_charges"],
                )
            except Exception as exc:  # keep the full model
                log(f"MD with the full model ({type(exc).__name__}: {exc})")
        supercell = atoms.repeat((2, 2, 2))
        series = D.sample_polarization_nvt(
            supercell,
            md_calc,
            temperature=args.temperature,
            steps=args.md_steps,
            timestep_fs=args.dt,
            friction_per_fs=args.friction,
            equilibration_steps=args.equilibration,
            progress=log,
            progress_every=max(1, args.md_steps // 10),
        )
        series.write_csv(out / "md_polarization.csv", force=True)
        eps_inf_sc = D.eps_inf_from_polarizability(
            ph.polarizability * 8, supercell.get_volume()
        )
        routes["md"] = D.eps0_fluctuations(
            series, args.temperature, eps_inf_sc, n_blocks=10
        )
        ir = spectra.ir_spectrum(
            series,
            args.temperature,
            eps_inf=eps_inf_sc,
            max_frequency_cm1=1400.0,
            peak_prominence=0.05,
        )
        cols, rows = ir.table(1400.0)
        np.savetxt(
            out / "ir.csv", rows, delimiter=",", header=",".join(cols), comments=""
        )
        plots.plot_ir(
            ir,
            out / "ir.png",
            1400.0,
            harmonic_cm1=[
                r["frequency_cm1"] for r in ph.mode_table() if r["intensity"] > 0.01
            ],
            title=f"alpha-quartz IR, MD {args.md_steps} x {args.dt} fs at {args.temperature:g} K",
        )
        md_text = (
            "\n## IR spectrum from MD\n\n"
            + f"{len(supercell)} atoms, {args.md_steps} steps of {args.dt} fs, "
            f"{args.temperature:g} K, Langevin friction {args.friction}/fs, resolution {ir.resolution_cm1:.1f} cm^-1\n\n"
            "| peak (cm^-1) | FWHM (cm^-1) |\n|---|---|\n"
            + "".join(
                f"| {p['frequency_cm1']:.1f} | {p['fwhm_cm1']:.1f} |\n"
                for p in ir.peaks
            )
        )
        log("MD route done")

    # tables
    par = lambda m: m[2, 2]  # noqa: E731
    perp = lambda m: 0.5 * (m[0, 0] + m[1, 1])  # noqa: E731
    lines = [
        f"# alpha-quartz dielectric response\n\nModel: `{args.model}`. **{args.model_note}**\n",
        f"Structure: alpha-quartz, a = {a:.4f} A, c = {c:.4f} A (mean of {n_frames} DFT frames), ions relaxed "
        f"(max |F| < {atoms.info['relax_tolerance']:.2g} eV/A: {atoms.info['relax_tolerance_reason']}), "
        f"V = {volume:.3f} A^3 per 9 atoms.\n",
        "## Dielectric constants\n",
        "| route | eps_inf perp | eps_inf par | eps_0 perp | eps_0 par |",
        "|---|---|---|---|---|",
    ]
    for name, r in routes.items():
        err_perp, err_par = (
            ("", "")
            if r.error is None
            else (f" +- {perp(r.error):.2f}", f" +- {par(r.error):.2f}")
        )
        lines.append(
            f"| {name} | {perp(r.eps_inf):.3f} | {par(r.eps_inf):.3f} | {perp(r.eps0):.3f}{err_perp} | "
            f"{par(r.eps0):.3f}{err_par} |"
        )
    lines += [
        "",
        "## IR-active modes (harmonic, Gamma)\n",
        "| TO (cm^-1) | deg. | tr S (e^2/amu) | delta eps perp | delta eps par |",
        "|---|---|---|---|---|",
    ]
    for r in ph.mode_table():
        if r["intensity"] > 1e-3 * max(x["intensity"] for x in ph.mode_table()):
            lines.append(
                f"| {r['frequency_cm1']:.1f} | {r['degeneracy']} | {r['intensity']:.4f} | "
                f"{perp(r['delta_eps']):.3f} | {par(r['delta_eps']):.3f} |"
            )
    lines += [
        "",
        "## LO-TO splitting (strongest)\n",
        "| q | TO (cm^-1) | LO (cm^-1) | splitting (cm^-1) |",
        "|---|---|---|---|",
    ]
    for row in loto.splitting_table(ph, top=8):
        q = "par c" if abs(row["direction"][2]) > 0.5 else "perp c"
        lines.append(
            f"| {q} | {row['to_cm1']:.1f} | {row['lo_cm1']:.1f} | {row['splitting_cm1']:.1f} |"
        )
    text = "\n".join(lines) + "\n" + md_text
    (out / "results.md").write_text(text)
    note = textwrap.fill(
        args.model_note, 75
    )  # the model beside every result, wrapped to fit the figure
    plots.plot_phonons(
        ph, out / "phonons.png", loto, title=f"alpha-quartz Gamma modes\n{note}"
    )
    plots.plot_dielectric(
        routes, out / "dielectric.png", title=f"alpha-quartz eps_0\n{note}"
    )
    print(text)
    log(f"wrote {out}/results.md and plots")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as exc:
        print(f"sio2_dielectric: error: {exc}", file=sys.stderr)
        sys.exit(1)
