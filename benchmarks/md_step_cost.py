"""Cost of one MD step with NequIPPolCalculator: full vs linear mode (1080-atom perovskite, CPU).

Times velocity-Verlet steps (one model evaluation per step, plus the neighbour list and ASE's
bookkeeping) on the 6x6x6 cell of the analytic perovskite (``ideal_structure((6, 6, 6))``,
1080 atoms, rattled), under a field of 0.05 V/A along z, for:

- ``full``: the field is a model input; the model computes forces, P, Z* and alpha
  (what the ``nequip_pol_ase`` target returns);
- ``full-noZ``: the same with the ``disable_born_charges`` modifier: forces, P and alpha, which
  is all a full-mode MD step needs;
- ``linear``: zero-field evaluation with Z* (needed for F = F0 + Z*^T E), P0, alpha0.

Default model: an Allegro-pol model with the hyperparameters of
``nequip_pol/reference/analytic_allegro_pol.yaml`` (r_max 5 A, 1 layer, 32 scalar / 8 tensor
features; random weights: the cost does not depend on them), eager, float32. ``--checkpoint``
uses a trained checkpoint or package instead. Usage::

    python benchmarks/md_step_cost.py                       # eager, float32, 2 threads
    python benchmarks/md_step_cost.py --steps 5 --threads 2 --dtype float64
    python benchmarks/md_step_cost.py --checkpoint best.ckpt

Prints one line per mode: seconds per MD step (median of ``--steps`` after one warm-up step).
"""

import argparse
import statistics
import time

import numpy as np
import torch


def build_model(dtype: str):
    from nequip.utils.global_state import set_global_state
    from nequip_pol.model import AllegroPolModel

    set_global_state()
    types = ["Ba", "Ti", "O"]
    return AllegroPolModel(
        seed=123,
        model_dtype=dtype,
        type_names=types,
        r_max=5.0,
        l_max=1,
        num_layers=1,
        num_scalar_features=32,
        num_tensor_features=8,
        radial_chemical_embed={
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": 8,
        },
        allegro_mlp_hidden_layers_depth=1,
        allegro_mlp_hidden_layers_width=32,
        readout_mlp_hidden_layers_depth=1,
        readout_mlp_hidden_layers_width=32,
        avg_num_neighbors=40.0,
        per_type_energy_shifts={t: 0.0 for t in types},
        per_type_energy_scales={t: 1.0 for t in types},
        field_expansion_order=3,
        field_mlp_hidden_layers_width=32,
    ).eval()


def calculators(args):
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip.model.modify_utils import modify
    from nequip_pol.integrations.ase import NequIPPolCalculator

    field = [0.0, 0.0, 0.05]
    if args.checkpoint:

        def load(modifiers=(), mode="full"):
            return NequIPPolCalculator.from_saved_model(
                args.checkpoint,
                chemical_species_to_atom_type_map=True,
                modifiers=list(modifiers),
                field=field,
                mode=mode,
            )
    else:

        def load(modifiers=(), mode="full"):
            model = build_model(args.dtype)
            if modifiers:
                model = modify(model, [{"modifier": m} for m in modifiers])
            transforms = [
                ChemicalSpeciesToAtomTypeMapper(["Ba", "Ti", "O"]),
                NeighborListTransform(r_max=5.0),
            ]
            return NequIPPolCalculator(
                model, transforms=transforms, field=field, mode=mode
            )

    return {
        "full": lambda: load(),
        "full-noZ": lambda: load(["disable_born_charges"]),
        "linear": lambda: load(mode="linear"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--supercell", type=int, default=6)
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint or package instead of the built-in model",
    )
    parser.add_argument("--modes", nargs="+", default=["full", "full-noZ", "linear"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from ase import units
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from nequip_pol.reference.paraelectric import ideal_structure

    makers = calculators(args)
    print(
        f"# {args.supercell}^3 cell, threads={args.threads}, dtype={args.dtype if not args.checkpoint else 'checkpoint'}, "
        f"torch {torch.__version__}"
    )
    for mode in args.modes:
        atoms = ideal_structure((args.supercell,) * 3)
        atoms.rattle(0.05, seed=0)
        MaxwellBoltzmannDistribution(
            atoms, temperature_K=300, rng=np.random.default_rng(0)
        )
        calc = makers[mode]()
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
        calc.attach_dynamics(dyn)
        atoms.get_forces()
        dyn.run(1)  # warm-up
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            dyn.run(1)
            times.append(time.perf_counter() - t0)
        evals = calc.num_evaluations
        print(
            f"{mode:9s} atoms={len(atoms)} s/step median={statistics.median(times):.3f} "
            f"min={min(times):.3f} max={max(times):.3f} (evaluations={evals})",
            flush=True,
        )


if __name__ == "__main__":
    main()
