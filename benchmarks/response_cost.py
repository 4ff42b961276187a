"""Cost of the electric response: time and peak memory per evaluation, and their ratios.

For BaTiO3-like perovskite cells (a = 4 A, random displacements of 0.05 A) of 135, 1080 and
3645 atoms, both builders, float32 and float64, at the size of the published Allegro-pol
tutorial model (r_max 5 A, l_max 1, 2 layers, 64 scalar / 32 tensor features, 8 Bessel
functions, MLPs of one hidden layer of 64), it measures one model evaluation of

    (a) E + F                      (b) E + F + stress
    (c) (b) + P                    (d) (c) + Z* + alpha

and prints milliseconds, peak memory above the resident baseline, and the ratios b/a, c/a, d/a,
d/b. Three exact ways of getting Z* are compared at level (d):


    d         (default, loop) closed-form P, the force backward and the three dP_a/dR backward
              passes one after the other
    d_vmap    closed-form P, the same four backward passes as one batched vector-Jacobian product
    autograd  P = -dE/dE by autograd, Z* and alpha by a second backward pass through the force
              graph (the published implementation's approach)

Each case runs in a fresh process, so peak memory (VmHWM - VmRSS before the first evaluation)
is that case's alone. CPU threads: all cores (``torch.get_num_threads()``).

    python benchmarks/response_cost.py                       # everything (about 20-40 min)
    python benchmarks/response_cost.py --sizes 135 1080 --dtypes float32
"""

import argparse
import json
import os
import subprocess
import sys
import time

LEVELS = {
    # name: (builder overrides)
    "a": dict(response_outputs=[], compute_stress=False),
    "b": dict(response_outputs=[]),
    "c": dict(response_outputs=["polarization"]),
    "d": dict(),
    "d_vmap": dict(born_charge_method="vmap"),
    "d_autograd": dict(polarization_source="autograd"),
}
SUPERCELLS = {135: 3, 1080: 6, 3645: 9}
TYPE_NAMES = ["Ba", "Ti", "O"]


def model_config(family: str, dtype: str) -> dict:
    common = dict(
        seed=0,
        model_dtype=dtype,
        type_names=TYPE_NAMES,
        r_max=5.0,
        avg_num_neighbors=40.0,
        per_type_energy_shifts={t: 0.0 for t in TYPE_NAMES},
        per_type_energy_scales={t: 1.0 for t in TYPE_NAMES},
        field_mlp_hidden_layers_width=64,
    )
    if family == "allegro":
        return dict(
            common,
            _target_="nequip_pol.model.AllegroPolModel",
            l_max=1,
            num_layers=2,
            num_scalar_features=64,
            num_tensor_features=32,
            radial_chemical_embed={
                "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
                "num_bessels": 8,
            },
            allegro_mlp_hidden_layers_depth=1,
            allegro_mlp_hidden_layers_width=64,
            readout_mlp_hidden_layers_depth=1,
            readout_mlp_hidden_layers_width=64,
        )
    return dict(
        common,
        _target_="nequip_pol.model.NequIPPolModel",
        l_max=1,
        num_layers=2,
        num_features=[64, 32],
        num_bessels=8,
        radial_mlp_depth=1,
        radial_mlp_width=64,
    )


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def run_case(family: str, dtype: str, natoms: int, level: str, repeats: int) -> dict:
    """One measurement, in this process."""
    import numpy as np
    import torch
    from hydra.utils import get_method
    from nequip.data import from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip.utils.global_state import set_global_state

    from nequip_pol.reference.paraelectric import ideal_structure

    set_global_state()
    config = model_config(family, dtype)
    config.update(LEVELS[level])
    model = get_method(config.pop("_target_"))(**config).eval()

    n = SUPERCELLS[natoms]
    cell = ideal_structure((n, n, n))  # the reference perovskite, a = 4 A
    cell.rattle(0.05, seed=1)
    data = NeighborListTransform(r_max=5.0)(
        ChemicalSpeciesToAtomTypeMapper(TYPE_NAMES)(from_ase(cell))
    )
    data["electric_field"] = torch.tensor([[0.01, 0.02, -0.01]], dtype=torch.float64)
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    data = {
        k: (v.to(torch_dtype) if v.is_floating_point() else v) for k, v in data.items()
    }

    def evaluate():
        out = model({k: v.clone() for k, v in data.items()})
        return out

    baseline = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    evaluate()
    first = time.perf_counter() - t0
    peak_mb = (_rss_kb("VmHWM") - baseline) / 1024.0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        evaluate()
        times.append(time.perf_counter() - t0)
    return {
        "ms": 1000.0 * float(np.median(times)) if times else 1000.0 * first,
        "peak_mb": peak_mb,
        "edges": int(data["edge_index"].shape[1]),
        "threads": torch.get_num_threads(),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", nargs="+", default=["allegro", "nequip"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[135, 1080, 3645])
    parser.add_argument("--levels", nargs="+", default=list(LEVELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--case",
        nargs=4,
        metavar=("FAMILY", "DTYPE", "NATOMS", "LEVEL"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()

    if args.case:
        family, dtype, natoms, level = args.case
        print(
            "RESULT "
            + json.dumps(run_case(family, dtype, int(natoms), level, args.repeats)),
            flush=True,
        )
        return

    results = {}
    for family in args.families:
        for dtype in args.dtypes:
            for natoms in args.sizes:
                row = {}
                for level in args.levels:
                    command = [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--repeats",
                        str(args.repeats),
                        "--case",
                        family,
                        dtype,
                        str(natoms),
                        level,
                    ]
                    try:
                        proc = subprocess.run(
                            command,
                            capture_output=True,
                            text=True,
                            timeout=args.timeout,
                        )
                        line = [
                            l
                            for l in proc.stdout.splitlines()
                            if l.startswith("RESULT ")
                        ]
                        row[level] = (
                            json.loads(line[-1][7:])
                            if line
                            else {"error": proc.stderr.strip().splitlines()[-1:]}
                        )
                    except subprocess.TimeoutExpired:
                        row[level] = {"error": f"timeout after {args.timeout:.0f} s"}
                    print(
                        f"{family:8s} {dtype:8s} {natoms:5d} {level:10s} {row[level]}",
                        flush=True,
                    )
                results[(family, dtype, natoms)] = row

    print()
    header = (
        f"{'model':8s} {'dtype':8s} {'atoms':>5s} | {'a ms':>8s} {'b ms':>8s} {'c ms':>8s} {'d ms':>8s}"
        f" | {'b/a':>5s} {'c/a':>5s} {'d/a':>5s} {'d/b':>5s} | {'d_vmap/b':>8s} {'d_autograd/b':>12s}"
        f" | {'mem b MB':>8s} {'mem d/b':>7s} {'mem d_vmap/b':>12s} {'mem d_autograd/b':>16s}"
    )
    print(header)
    print("-" * len(header))
    for (family, dtype, natoms), row in results.items():

        def ms(level):
            return row.get(level, {}).get("ms", float("nan"))

        def mem(level):
            return row.get(level, {}).get("peak_mb", float("nan"))

        print(
            f"{family:8s} {dtype:8s} {natoms:5d} | {ms('a'):8.1f} {ms('b'):8.1f} {ms('c'):8.1f} {ms('d'):8.1f}"
            f" | {ms('b') / ms('a'):5.2f} {ms('c') / ms('a'):5.2f} {ms('d') / ms('a'):5.2f} {ms('d') / ms('b'):5.2f}"
            f" | {ms('d_vmap') / ms('b'):8.2f} {ms('d_autograd') / ms('b'):12.2f}"
            f" | {mem('b'):8.0f} {mem('d') / mem('b'):7.2f} {mem('d_vmap') / mem('b'):12.2f} {mem('d_autograd') / mem('b'):16.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"/".join(map(str, k)): v for k, v in results.items()}, f, indent=1
            )


if __name__ == "__main__":
    main()
