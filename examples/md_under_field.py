"""MD of a small perovskite cell under a static and an oscillating electric field, writing P(t).

Runs, with :class:`nequip_pol.integrations.ase.NequIPPolCalculator`:

1. Langevin (300 K) under a static field E = (0, 0, E0): equilibrates, writes ``langevin_static.csv``;
2. NVE (velocity Verlet) from there under the same field: ``nve_static.csv``; prints the drift
   of the conserved electric enthalpy ``kinetic + E(R, E)``;
3. NVE under E(t) = E0 sin(omega t) z: ``nve_oscillating.csv``; prints the energy balance
   ``d(kinetic + E(R, E(t))) = -P.dE`` (the ``field_work`` column).

Each CSV has t (fs), E(t) (V/A), P(t) and P(t) - P(ideal cubic structure) (e*A), the energies
and the field work (see ``nequip_pol.integrations.md.PolarizationLogger``).

Model: ``--model PATH`` takes a checkpoint (``.ckpt``), a package (``.nequip.zip``) or an
AOTInductor model compiled with ``--target nequip_pol_ase`` (``.nequip.pt2``), trained on the
species Ba, Ti, O (e.g. by ``nequip-pol demo``). Without it, the script generates 16 frames of
the analytic material and trains a tiny model for a few epochs (~30 s): enough to run the
workflow, not to trust the physics. Total ~1-2 minutes on 2 CPU cores::

    python examples/md_under_field.py --out md_out
    python examples/md_under_field.py --model best.ckpt --steps 500 --field 0.1 --period 200
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from nequip_pol.integrations.model_arguments import load_calculator
from nequip_pol.threads import apply_threads, choose_threads
from nequip_pol.integrations.md import (
    PolarizationLogger,
    read_polarization_log,
    thermalize,
)
from nequip_pol.reference.dataset import generate_dataset, write_dataset
from nequip_pol.reference.paraelectric import ideal_structure

CONFIG_DIR = Path(__file__).resolve().parents[1] / "nequip_pol" / "reference"


def train_demo_model(out: Path, epochs: int) -> Path:
    """A tiny Allegro-pol model trained for a few epochs on 16 analytic frames (float64)."""
    data = out / "demo_data.xyz"
    if not data.exists():
        write_dataset(generate_dataset(16, seed=0, supercell=(2, 1, 1)), data)
    run_dir = out / "demo_train"
    overrides = [
        f"data_file={data}",
        "num_train=12",
        "num_val=2",
        "num_test=2",
        f"max_epochs={epochs}",
        "batch_size=4",
        "model_dtype=float64",
        "cutoff_radius=4.5",
        "run=[train]",
        f"hydra.run.dir={run_dir}",
        "training_module.model.num_scalar_features=16",
        "training_module.model.num_tensor_features=4",
        "training_module.model.allegro_mlp_hidden_layers_width=16",
        "training_module.model.readout_mlp_hidden_layers_width=16",
        "training_module.model.field_mlp_hidden_layers_width=16",
        "trainer.enable_progress_bar=false",
    ]
    print(f"training a demo model ({epochs} epochs) in {run_dir} ...", flush=True)
    cmd = [
        str(Path(sys.executable).parent / "nequip-train"),
        "-cp",
        str(CONFIG_DIR),
        "-cn",
        "analytic_allegro_pol",
        *overrides,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    if proc.returncode != 0:
        sys.exit(f"nequip-train failed:\n{proc.stderr[-4000:]}")
    return run_dir / "last.ckpt"


def run(atoms, dyn, calc, path, steps, reference):
    calc.attach_dynamics(dyn, t0=0.0)
    with PolarizationLogger(atoms, path, dyn=dyn, reference=reference) as log:
        dyn.attach(log, interval=1)
        start = time.perf_counter()
        dyn.run(steps)
    elapsed = time.perf_counter() - start
    data = read_polarization_log(path)
    print(
        f"  {path.name}: {steps} steps in {elapsed:.1f} s; P_z {data['Pz'][0]:+.4f} -> {data['Pz'][-1]:+.4f} e*A, "
        f"dP_z(ref) {data['dPz'][-1]:+.4f} e*A",
        flush=True,
    )
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help=".ckpt, .nequip.zip or .nequip.pt2 (Ba, Ti, O)",
    )
    parser.add_argument("--out", type=Path, default=Path("md_under_field_out"))
    parser.add_argument("--supercell", type=int, nargs=3, default=[2, 2, 1])
    parser.add_argument(
        "--steps", type=int, default=200, help="steps of each of the three runs"
    )
    parser.add_argument("--dt", type=float, default=1.0, help="time step, fs")
    parser.add_argument(
        "--field", type=float, default=0.1, help="field amplitude E0 along z, V/A"
    )
    parser.add_argument(
        "--period",
        type=float,
        default=100.0,
        help="period of the oscillating field, fs",
    )
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--mode", choices=["full", "linear"], default="full")
    parser.add_argument(
        "--epochs", type=int, default=5, help="epochs of the demo model"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the rule of nequip-pol's verbs, nequip_pol.threads: "
        "OMP_NUM_THREADS, else the free cores; one for a small cell)",
    )
    args = parser.parse_args()
    threads, why = choose_threads(5 * int(np.prod(args.supercell)), args.threads)
    apply_threads(threads)
    print(f"threads: {threads} ({why})", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)

    model_path = (
        args.model
        if args.model is not None
        else train_demo_model(args.out, args.epochs)
    )
    # the MODEL argument as every nequip-pol verb reads it (compiled, checkpoint or package)
    calc = load_calculator(str(model_path))
    calc.set_mode(args.mode)
    reference = ideal_structure(
        tuple(args.supercell)
    )  # P - P(ideal cubic cell at zero field)
    atoms = reference.copy()
    atoms.rattle(0.02, seed=0)
    atoms.calc = calc
    thermalize(
        atoms, args.temperature, rng=np.random.default_rng(0)
    )  # Maxwell-Boltzmann, zero total momentum
    e0 = np.array([0.0, 0.0, args.field])
    print(
        f"{len(atoms)} atoms, model {model_path}, mode={args.mode}, E0 = {args.field} V/A along z"
    )

    # 1. Langevin, static field
    calc.set_field(e0)
    dyn = Langevin(
        atoms,
        timestep=args.dt * units.fs,
        temperature_K=args.temperature,
        friction=0.02 / units.fs,
        fixcm=False,
        rng=np.random.default_rng(1),
    )
    run(atoms, dyn, calc, args.out / "langevin_static.csv", args.steps, reference)

    # 2. NVE, static field: kinetic + E(R, E) is conserved
    dyn = VelocityVerlet(atoms, timestep=args.dt * units.fs)
    data = run(atoms, dyn, calc, args.out / "nve_static.csv", args.steps, reference)
    etot, q = data["etot"], max(len(data["etot"]) // 4, 1)
    print(
        f"  conserved enthalpy: fluctuation (max - min) {np.ptp(etot) / len(atoms):.2e} eV/atom, drift "
        f"(last - first quarter mean) {(etot[-q:].mean() - etot[:q].mean()) / len(atoms):+.2e} eV/atom "
        f"over {data['time_fs'][-1]:.0f} fs"
    )

    # 3. NVE, oscillating field: d(kinetic + E(R, E(t))) = -P.dE
    omega = 2 * np.pi / args.period
    calc.set_field(lambda t: e0 * np.sin(omega * t))
    dyn = VelocityVerlet(atoms, timestep=args.dt * units.fs)
    data = run(
        atoms, dyn, calc, args.out / "nve_oscillating.csv", args.steps, reference
    )
    balance = (data["etot"] - data["etot"][0]) - data["field_work"]
    print(
        f"  field work range {np.ptp(data['field_work']):.3e} eV; energy balance residual "
        f"max {np.abs(balance).max():.2e} eV"
    )
    print(
        f"done: CSV files in {args.out}/ (columns: {', '.join(read_polarization_log(args.out / 'nve_static.csv'))})"
    )


if __name__ == "__main__":
    main()
