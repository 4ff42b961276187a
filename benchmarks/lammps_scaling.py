"""Scaling of pair allegro/pol in LAMMPS on one machine: timesteps/s, atom-steps/s and peak
memory per MPI rank for growing cells, 1 and 2 ranks, with and without Born charges, float64 and
float32.

Each point runs ``lammps_patch/examples/in.scaling`` (NVE, perovskite cell of 5 n^3 atoms,
lattice 4 A, E_z = 0.05 V/A, ``--warmup`` steps then ``--steps`` timed steps) in a fresh
``lmp`` under ``/usr/bin/time`` (peak resident memory of each rank, torch and the model
included), ``OMP_NUM_THREADS=1`` per rank. Modes: ``full`` = the model with Z* on every step;
``off`` = ``pair_style ... noborn NB.nequip.pt2`` with nothing asking for Z*, so the variant
without Born charges runs on every step (what MD needs when Z* are not written out). On a
shared machine, all modes of one size and rank count run back to back (interleaved), and the
load average before each point is recorded.

    python benchmarks/lammps_scaling.py --models /tmp/lmpc15 --sizes 4 6 10 14 --ranks 1 2 \\
        --json docs/figures/lammps_scaling.json --plot docs/figures/lammps_scaling.png

``--models DIR`` holds the compiled test models (``allegro_pol.nequip.pt2``,
``allegro_pol_nb.nequip.pt2``, ``allegro_pol_f32.nequip.pt2``, ``allegro_pol_f32_nb.nequip.pt2``:
``python lammps_patch/tools/compile_model.py ALLEGRO_POL nequip_pol_pair_allegro[_no_born] OUT
[model_dtype='float32'] [response_outputs=['polarization','polarizability']]``, the names
``tests/test_lammps_scale.py`` caches under ``NEQUIP_POL_LAMMPS_CACHE``); ``--full``/``--nb``
give a trained model's two variants instead (with ``--types A B X``).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "lammps_patch" / "examples" / "in.scaling"
PLUGIN = REPO / "lammps_patch" / "build" / "nequip_polplugin.so"
BIN = Path(sys.prefix) / "bin"
NAMES = {
    ("float64", "full"): "allegro_pol.nequip.pt2",
    ("float64", "nb"): "allegro_pol_nb.nequip.pt2",
    ("float32", "full"): "allegro_pol_f32.nequip.pt2",
    ("float32", "nb"): "allegro_pol_f32_nb.nequip.pt2",
}


def run_point(n, ranks, full, nb, born, steps, warmup, types, plugin, workdir):
    cmd = [
        str(BIN / "lmp"),
        "-in",
        str(EXAMPLE),
        "-log",
        "none",
        "-var",
        "n",
        str(n),
        "-var",
        "steps",
        str(steps),
        "-var",
        "warmup",
        str(warmup),
        "-var",
        "born",
        born,
        "-var",
        "model",
        full,
        "-var",
        "nbmodel",
        nb,
        "-var",
        "plugin",
        plugin,
        "-var",
        "A",
        types[0],
        "-var",
        "B",
        types[1],
        "-var",
        "X",
        types[2],
    ]
    cmd = ["/usr/bin/time", "-f", "maxrss_kb %M"] + cmd
    if ranks > 1:
        cmd = [str(BIN / "mpirun"), "-np", str(ranks)] + cmd
    load = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(
            f"LAMMPS failed (n={n}, ranks={ranks}, born={born}):\n{text[-3000:]}"
        )
    loops = re.findall(
        r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", text
    )
    loop, nsteps, natoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2])
    rss = [int(x) for x in re.findall(r"maxrss_kb (\d+)", text)]
    return {
        "n": n,
        "atoms": natoms,
        "ranks": ranks,
        "born": born,
        "steps": nsteps,
        "loop_s": loop,
        "steps_per_s": nsteps / loop,
        "atom_steps_per_s": natoms * nsteps / loop,
        "peak_rss_mb_per_rank": max(rss) / 1024.0 if rss else None,
        "load_before": load,
        "wall_s": time.time() - t0,
    }


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    keys = sorted({(r["dtype"], r["born"], r["ranks"]) for r in results})
    colors = {
        ("float64", "full"): "C0",
        ("float64", "off"): "C1",
        ("float32", "full"): "C2",
        ("float32", "off"): "C3",
    }
    for dtype, born, ranks in keys:
        rows = sorted(
            (
                r
                for r in results
                if (r["dtype"], r["born"], r["ranks"]) == (dtype, born, ranks)
            ),
            key=lambda r: r["atoms"],
        )
        x = [r["atoms"] for r in rows]
        label = f"{dtype}, {'Z* every step' if born == 'full' else 'no Z*'}, {ranks} rank{'s' if ranks > 1 else ''}"
        style = "-o" if ranks == 1 else "--s"
        ax.plot(
            x,
            [r["atom_steps_per_s"] for r in rows],
            style,
            color=colors[(dtype, born)],
            label=label,
        )
        bx.plot(
            x,
            [r["peak_rss_mb_per_rank"] for r in rows],
            style,
            color=colors[(dtype, born)],
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("atom-steps per second (all ranks)")
    ax.set_title("pair allegro/pol, small test model, 2-core shared CPU")
    ax.legend(fontsize=7)
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("atoms")
    bx.set_ylabel("peak RSS per rank (MB)")
    bx.set_title("memory (torch + model + LAMMPS)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models",
        default=os.environ.get("NEQUIP_POL_LAMMPS_CACHE", ""),
        help="folder of the compiled test models",
    )
    p.add_argument("--full", help="model with Z* (instead of --models)")
    p.add_argument("--nb", help="its variant without Z* (instead of --models)")
    p.add_argument("--types", nargs=3, default=["H", "C", "O"])
    p.add_argument(
        "--sizes", nargs="+", type=int, default=[4, 6, 10, 14], help="n: 5 n^3 atoms"
    )
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    p.add_argument("--born", nargs="+", default=["full", "off"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--plugin", default=str(PLUGIN))
    p.add_argument("--workdir", default="/tmp/lammps_scaling")
    p.add_argument("--json", help="write (and append to) the results here")
    p.add_argument(
        "--plot", help="PNG of atom-steps/s and memory vs atoms (from --json's results)"
    )
    p.add_argument(
        "--plot-only", action="store_true", help="only redraw --plot from --json"
    )
    args = p.parse_args(argv)

    results = []
    if args.json and Path(args.json).exists():
        results = json.loads(Path(args.json).read_text())["results"]
    if not args.plot_only:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            for ranks in args.ranks:
                for dtype in args.dtypes:
                    if args.full:
                        full, nb = args.full, args.nb or "none"
                    else:
                        full = str(Path(args.models) / NAMES[(dtype, "full")])
                        nb = str(Path(args.models) / NAMES[(dtype, "nb")])
                    for born in args.born:
                        r = run_point(
                            n,
                            ranks,
                            full,
                            nb,
                            born,
                            args.steps,
                            args.warmup,
                            args.types,
                            args.plugin,
                            args.workdir,
                        )
                        r["dtype"] = dtype
                        results = [
                            q
                            for q in results
                            if (q["n"], q["ranks"], q["dtype"], q["born"])
                            != (n, ranks, dtype, born)
                        ]
                        results.append(r)
                        print(
                            f"atoms {r['atoms']:7d}  ranks {ranks}  {dtype}  Z* {born:4s}  "
                            f"{r['steps_per_s']:8.3f} steps/s  {r['atom_steps_per_s']:9.0f} atom-steps/s  "
                            f"peak {r['peak_rss_mb_per_rank']:7.0f} MB/rank  load {r['load_before']:.1f}",
                            flush=True,
                        )
                        if args.json:
                            Path(args.json).write_text(
                                json.dumps({"results": results}, indent=1)
                            )
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
