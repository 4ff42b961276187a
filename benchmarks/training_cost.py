"""Cost of one training step: CPU seconds, wall seconds and peak memory per step, per loss configuration.

A training step is what ``nequip-train`` does per batch: the model's forward pass with the response
outputs the loss needs (training mode, so every derivative keeps its graph), the loss
(:class:`~nequip_pol.train.ElectricResponseLoss`, the weights of ``configs/dft.yaml``), its backward
pass to the weights, and an Adam step. Measured on frames of the shared DFT data (BaTiO3, 135
atoms; SiO2, 72 atoms), batches of ``--batch-size`` frames (default 2, as ``configs/dft.yaml``), at
the size of the published tutorial model (``configs/model/allegro_pol.yaml``; ``--model nequip_pol``
for NequIP-pol), float32 and float64, for the loss configurations

    efs          E + F + stress                   (model: response_outputs [])
    p            efs + P                          (response_outputs [polarization])
    z            p + Z*                           (+ born_effective_charges)
    alpha        z + alpha: the full loss         (all response outputs)
    z_proj       p + projected Z*                 (one random unit vector v per frame: v.Z*, one
    alpha_proj   z_proj + alpha                    backward pass instead of three; see
                                                   nequip_pol/nn/response.py)

and prints per step: CPU seconds (``time.process_time``, all threads of the process: the number
that matters on a shared machine), wall seconds, peak memory above the resident baseline, the
ratio of CPU seconds to the ``efs`` step, and the CPU seconds per epoch of the configured split
(70 % of the frames in batches of ``--batch-size``). ``--phases`` also prints where the CPU time
of a step goes: the energy model's forward pass, the head's derivatives (forces, stress, Z*
backward passes), the loss, the loss backward to the weights, the optimizer step. Each case runs in a fresh process (peak
memory is that case's alone) with ``--threads`` threads (default 1, as a training under
``OMP_NUM_THREADS=1``). On a loaded, shared machine use ``--interleave``: all levels of a dataset
and dtype in one process, their steps interleaved, so that the load hits them alike (the before /
after numbers of docs/training_on_cpu.md were measured so).

    python benchmarks/training_cost.py                                  # everything, ~10-20 min
    python benchmarks/training_cost.py --datasets SiO2 --dtypes float32 --levels alpha alpha_proj
    python benchmarks/training_cost.py --json cost.json                 # also write the results
    python benchmarks/training_cost.py --interleave --levels efs alpha alpha_proj --steps 10 --phases

The data folder is ``$NEQUIP_POL_DATA`` (default ``../shared/data``).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: loss configuration -> (response outputs of the model, loss keys, projected Z*)
LEVELS = {
    "efs": ([], ["total_energy", "forces", "stress"], False),
    "p": (
        ["polarization"],
        ["total_energy", "forces", "stress", "polarization"],
        False,
    ),
    "z": (
        ["polarization", "born_effective_charges"],
        ["total_energy", "forces", "stress", "polarization", "born_effective_charges"],
        False,
    ),
    "alpha": (
        None,
        [
            "total_energy",
            "forces",
            "stress",
            "polarization",
            "born_effective_charges",
            "polarizability",
        ],
        False,
    ),
    "z_proj": (
        ["polarization", "born_effective_charges"],
        ["total_energy", "forces", "stress", "polarization", "born_effective_charges"],
        True,
    ),
    "alpha_proj": (
        None,
        [
            "total_energy",
            "forces",
            "stress",
            "polarization",
            "born_effective_charges",
            "polarizability",
        ],
        True,
    ),
}
#: loss weights of configs/dft.yaml (P weight from configs/dataset/*.yaml)
COEFFS = {
    "total_energy": 10.0,
    "forces": 1.0,
    "stress": 10.0,
    "born_effective_charges": 1.0,
    "polarizability": 1.0,
}
DATASETS = {"BaTiO3": (["Ba", "Ti", "O"], 0.1), "SiO2": (["Si", "O"], 1.0)}
TRAIN_FRACTION = 0.7

sys.path.insert(0, str(Path(__file__).resolve().parent))
from response_cost import _rss_kb  # noqa: E402  (resident memory from /proc, shared with the response benchmark)


def model_config(model: str, dtype: str, type_names, avg_num_neighbors: float) -> dict:
    """The model of ``configs/model/<model>.yaml`` with its interpolations filled in."""
    import yaml

    config = yaml.safe_load(open(ROOT / "configs" / "model" / f"{model}.yaml"))["model"]
    config.update(
        seed=1,
        model_dtype=dtype,
        type_names=list(type_names),
        r_max=5.0,
        avg_num_neighbors=avg_num_neighbors,
        per_type_energy_shifts={t: 0.0 for t in type_names},
        per_type_energy_scales={t: 1.0 for t in type_names},
    )
    return config


def load_batches(dataset: str, batch_size: int, num_batches: int, dtype):
    """The first ``batch_size * num_batches`` frames of the shared file, as nequip-train reads them."""
    import ase.io
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip_pol.data import ElectricResponseKeysTransform
    from nequip_pol.data_path import shared_data_dir

    type_names, _ = DATASETS[dataset]
    path = shared_data_dir() / "dft" / f"{dataset}.xyz"
    frames = ase.io.read(path, f":{batch_size * num_batches}")
    mapper = ChemicalSpeciesToAtomTypeMapper(type_names, {t: t for t in type_names})
    keys = ElectricResponseKeysTransform()
    neighbors = NeighborListTransform(r_max=5.0)
    data = []
    for atoms in frames:
        d = from_ase(
            atoms,
            key_mapping={"born_charge": "born_effective_charges"},
            include_keys=[
                "total_energy",
                "electric_field",
                "polarization",
                "born_charge",
                "polarizability",
            ],
        )
        d = neighbors(keys(mapper(d)))
        data.append(
            {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in d.items()}
        )
    batches = [
        AtomicDataDict.batched_from_list(data[i : i + batch_size])
        for i in range(0, len(data), batch_size)
    ]
    avg_num_neighbors = sum(d["edge_index"].shape[1] for d in data) / sum(
        d["pos"].shape[0] for d in data
    )
    return batches, avg_num_neighbors, len(ase.io.read(path, ":"))


def make_stepper(
    dataset: str,
    model: str,
    dtype: str,
    level: str,
    batches,
    avg_num_neighbors: float,
    steps: int,
    device: str = "cpu",
):
    """A function doing one training step of loss configuration ``level`` on a batch; it accumulates
    the CPU seconds of each phase of the step into ``phases`` (divided by ``steps``). The model
    and loss live on ``device``; the batches must be there too (used by
    ``benchmarks/gpu_acceptance.py`` with ``cuda``)."""
    import torch
    from hydra.utils import get_method
    from nequip.model.modify_utils import modify
    from nequip_pol.train import ElectricResponseLoss

    type_names, p_weight = DATASETS[dataset]
    outputs, loss_keys, projected = LEVELS[level]
    config = model_config(model, dtype, type_names, avg_num_neighbors)
    config["response_outputs"] = outputs
    builder = get_method(config.pop("_target_"))
    net = builder(**config)
    if projected:
        net = modify(
            net, [{"modifier": "born_charge_training_mode", "mode": "projected"}]
        )
    net = net.to(device).train()
    coeffs = {k: (p_weight if k == "polarization" else COEFFS[k]) for k in loss_keys}
    loss_fn = ElectricResponseLoss(coeffs=coeffs, type_names=type_names).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    # where the time goes: the energy model's forward (hooks on the head's `func`), the head's
    # derivatives (rest of the model call), the loss, its backward to the weights, the Adam step
    phases = {
        "energy_forward": 0.0,
        "derivatives": 0.0,
        "loss": 0.0,
        "loss_backward": 0.0,
        "optimizer": 0.0,
    }
    head = net.model
    marks = {}
    head.func.register_forward_pre_hook(
        lambda *a: marks.__setitem__("f0", time.process_time())
    )
    head.func.register_forward_hook(
        lambda *a: marks.__setitem__("f1", time.process_time())
    )

    def step(batch, record=False):
        target = dict(batch)
        t0 = time.process_time()
        out = net({k: v.clone() for k, v in batch.items()})
        t1 = time.process_time()
        loss = loss_fn(out, target)["weighted_sum"]
        t2 = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.process_time()
        optimizer.step()
        t4 = time.process_time()
        if record:
            energy = marks["f1"] - marks["f0"]
            for key, value in zip(
                phases, (energy, t1 - t0 - energy, t2 - t1, t3 - t2, t4 - t3)
            ):
                phases[key] += value / steps
        return float(loss.detach())

    return step, phases


def run_case(
    dataset: str,
    model: str,
    dtype: str,
    levels,
    batch_size: int,
    steps: int,
    threads: int,
) -> list:
    """Measurements in this process. With several ``levels`` their steps are interleaved
    (A B C A B C ...), so that a changing load on a shared machine affects them alike; the peak
    memory is then that of all of them together."""
    import numpy as np
    import torch
    from nequip.utils.global_state import set_global_state

    torch.set_num_threads(threads)
    set_global_state()
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    batches, avg_num_neighbors, num_frames_total = load_batches(
        dataset, batch_size, 4, torch_dtype
    )
    steppers = [
        make_stepper(dataset, model, dtype, level, batches, avg_num_neighbors, steps)
        for level in levels
    ]

    baseline = _rss_kb("VmRSS")
    for step, _ in steppers:
        step(batches[0])  # warm-up (first-call overheads)
    cpu = [[] for _ in levels]
    wall = [[] for _ in levels]
    for i in range(steps):
        for j, (step, _) in enumerate(steppers):
            c0, w0 = time.process_time(), time.perf_counter()
            step(batches[(i + 1) % len(batches)], record=True)
            cpu[j].append(time.process_time() - c0)
            wall[j].append(time.perf_counter() - w0)
    peak_mb = (_rss_kb("VmHWM") - baseline) / 1024.0
    num_train = int(round(TRAIN_FRACTION * num_frames_total))
    steps_per_epoch = -(-num_train // batch_size)
    return [
        {
            "level": level,
            "cpu_s": float(np.median(cpu[j])),
            "cpu_s_all": cpu[j],
            "wall_s": float(np.median(wall[j])),
            "peak_mb": peak_mb,
            "epoch_cpu_s": float(np.median(cpu[j])) * steps_per_epoch,
            "steps_per_epoch": steps_per_epoch,
            "atoms_per_batch": int(batches[0]["pos"].shape[0]),
            "threads": torch.get_num_threads(),
            "phases_cpu_s": steppers[j][1],
        }
        for j, level in enumerate(levels)
    ]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS)
    )
    parser.add_argument(
        "--model", default="allegro_pol", choices=["allegro_pol", "nequip_pol"]
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "float64"],
        choices=["float32", "float64"],
    )
    parser.add_argument(
        "--levels", nargs="+", default=list(LEVELS), choices=list(LEVELS)
    )
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument(
        "--steps",
        type=int,
        default=5,
        help="timed steps per case (after one warm-up step)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds per case"
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also print where the CPU time of a step goes",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="run the levels of a dataset and dtype in one process, steps interleaved (fairer on a "
        "loaded machine; peak memory is then that of all levels together)",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:  # child process: measurements, JSON on the last line of stdout
        dataset, dtype, levels = args.case.split(":")
        result = run_case(
            dataset,
            args.model,
            dtype,
            levels.split(","),
            args.batch_size,
            args.steps,
            args.threads,
        )
        print(json.dumps(result))
        return

    from nequip_pol.data_path import shared_data_dir, DATA_ENV_VAR

    if not (shared_data_dir() / "dft").is_dir():
        sys.exit(f"no DFT data at {shared_data_dir()}: set {DATA_ENV_VAR}")
    env = dict(
        os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads)
    )
    print(
        f"model {args.model}, batch {args.batch_size} frames, {args.threads} thread(s), "
        f"median of {args.steps} steps, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    header = (
        f"{'dataset':7s} {'dtype':7s} {'loss':11s} {'atoms':>5s} {'CPU s/step':>10s} {'wall s/step':>11s} "
        f"{'peak MB':>8s} {'CPU/efs':>7s} {'CPU s/epoch':>11s}"
    )
    print(header, flush=True)
    results = []
    for dataset in args.datasets:
        for dtype in args.dtypes:
            base = None
            groups = (
                [args.levels] if args.interleave else [[level] for level in args.levels]
            )
            for group in groups:
                command = [
                    sys.executable,
                    __file__,
                    "--case",
                    f"{dataset}:{dtype}:{','.join(group)}",
                    "--model",
                    args.model,
                    "--batch-size",
                    str(args.batch_size),
                    "--steps",
                    str(args.steps),
                    "--threads",
                    str(args.threads),
                ]
                name = ",".join(group)
                try:
                    proc = subprocess.run(
                        command,
                        capture_output=True,
                        text=True,
                        timeout=args.timeout,
                        env=env,
                    )
                except subprocess.TimeoutExpired:
                    print(
                        f"{dataset:7s} {dtype:7s} {name:11s} timed out after {args.timeout:.0f} s",
                        flush=True,
                    )
                    continue
                if proc.returncode != 0:
                    print(
                        f"{dataset:7s} {dtype:7s} {name:11s} failed:\n{proc.stderr[-2000:]}",
                        flush=True,
                    )
                    continue
                for r in json.loads(proc.stdout.strip().splitlines()[-1]):
                    level = r["level"]
                    r.update(
                        dataset=dataset,
                        dtype=dtype,
                        model=args.model,
                        batch_size=args.batch_size,
                        interleaved=args.interleave,
                    )
                    if level == "efs":
                        base = r["cpu_s"]
                    ratio = f"{r['cpu_s'] / base:7.2f}" if base else f"{'-':>7s}"
                    print(
                        f"{dataset:7s} {dtype:7s} {level:11s} {r['atoms_per_batch']:5d} {r['cpu_s']:10.3f} "
                        f"{r['wall_s']:11.3f} {r['peak_mb']:8.0f} {ratio} {r['epoch_cpu_s']:11.1f}",
                        flush=True,
                    )
                    if args.phases:
                        print(
                            "    CPU s per step in: "
                            + ", ".join(
                                f"{k} {v:.3f}" for k, v in r["phases_cpu_s"].items()
                            ),
                            flush=True,
                        )
                    results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
