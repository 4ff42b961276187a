"""Wall time of ``nequip-pol`` verbs on the threads of the rule against ``--threads 1`` and
``--threads 2``, on the machine as it is and beside a busy core (issue 43: one thread rule for
every verb, ``nequip_pol.threads``). Not a test: it prints a Markdown table with the conditions.

    python benchmarks/verb_threads.py                      # phonons, dielectric, short hysteresis
    python benchmarks/verb_threads.py --verbs phonons --timeout 300 --settle 60
    python benchmarks/verb_threads.py --sizes              # the size threshold: forces vs atoms

Verbs (the documented commands, docs/analysis.md and docs/switching.md): ``phonons sio2
quartz.extxyz`` and ``dielectric sio2 quartz.extxyz`` (9-atom alpha-quartz, the shipped model),
``hysteresis reference:ferroelectric reference:poled`` (one short loop: 800 steps of the 5-atom
cell). Each run is a fresh process (``python -m nequip_pol.cli VERB ...``: imports included, as
a user sees it) without ``OMP_NUM_THREADS`` in its environment; a run longer than ``--timeout``
seconds is stopped and shown as ``> T s``. Conditions: "as is" (the machine as found: say in the
docs whether it was idle), then "+1 busy core": a 1-thread busy loop started by this script,
``--settle`` seconds before the runs (the one-minute load average needs about a minute to show
it), stopped at the end. The table gives the one-minute load average before each condition and
the threads the rule chose (the run's first line).

``--sizes``: time of one force evaluation of the shipped sio2 model on quartz supercells (9 to
1125 atoms) with one and two threads, each in its own process: the measurement behind
``nequip_pol.threads.SMALL_SYSTEM_ATOMS``. Run it on an idle machine (or under ``nice -n -20``
beside other jobs, with ``OMP_WAIT_POLICY=PASSIVE``, as we had to).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUARTZ = (
    "from ase.spacegroup import crystal; import sys; crystal(['Si','O'], "
    "basis=[(0.4697,0,1/3),(0.4135,0.2669,0.2142)], spacegroup=152, "
    "cellpar=[4.916,4.916,5.405,90,90,120]).write(sys.argv[1])"
)
#: verb -> (label, argv with {quartz} and {out})
VERBS = {
    "phonons": (
        "phonons sio2 quartz (9 atoms)",
        ["phonons", "sio2", "{quartz}", "-o", "{out}/q", "--force"],
    ),
    "dielectric": (
        "dielectric sio2 quartz (9 atoms)",
        ["dielectric", "sio2", "{quartz}", "-o", "{out}/d", "--force"],
    ),
    "hysteresis": (
        "hysteresis reference (5 atoms, 800 steps)",
        "hysteresis reference:ferroelectric reference:poled -o {out}/h --force "
        "--amplitude 0.12 --period 1600 --temperatures 30 --timestep 4 --cycles 2 "
        "--discard 1 --friction 0.02 --seed 1".split(),
    ),
}
SETTINGS = {
    "rule": [],
    "--threads 1": ["--threads", "1"],
    "--threads 2": ["--threads", "2"],
}


def _environment() -> dict:
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def run_verb(argv, timeout: float):
    """``(wall seconds or None if stopped at timeout, the 'threads: ...' line)``."""
    command = [sys.executable, "-m", "nequip_pol.cli", *argv]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, env=_environment(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as stopped:
        out, wall = _text(stopped.stdout), None
    else:
        out, wall = proc.stdout, time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    header = next(
        (line for line in out.splitlines() if line.startswith("threads:")), ""
    )
    return wall, header[len("threads:") :].strip()


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    from nequip_pol.threads import available_cores

    return f"{model}, {available_cores()} cores, torch {torch.__version__}"


def verb_table(verbs, timeout: float, settle: float) -> str:
    work = Path(tempfile.mkdtemp(prefix="verb_threads_"))
    quartz = work / "quartz.extxyz"
    subprocess.run([sys.executable, "-c", QUARTZ, str(quartz)], check=True)
    rows = []
    busy = None
    try:
        for condition in ("as is", "+1 busy core"):
            if condition != "as is":
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                print(
                    f"# busy loop started (pid {busy.pid}); {settle:g} s to settle",
                    flush=True,
                )
                time.sleep(settle)
            load = os.getloadavg()[0]
            for verb in verbs:
                label, template = VERBS[verb]
                argv = [a.format(quartz=quartz, out=work) for a in template]
                cells, chosen = [], ""
                for name, extra in SETTINGS.items():
                    wall, header = run_verb(argv + extra, timeout)
                    chosen = header if name == "rule" else chosen
                    cells.append(
                        f"{wall:.1f} s" if wall is not None else f"> {timeout:g} s"
                    )
                    print(
                        f"# {label}, {condition}, {name}: {cells[-1]} ({header})",
                        flush=True,
                    )
                rows.append(
                    f"| {label} | {condition} (load {load:.1f}) | {chosen} | "
                    + " | ".join(cells)
                    + " |"
                )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    head = [
        f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}; runs stopped after "
        f"{timeout:g} s; load: one-minute load average before the condition's runs.",
        "",
        "| verb | condition | the rule chose | rule | --threads 1 | --threads 2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join(head + rows)


def _evaluate(threads: int, atoms_list) -> None:
    """(child process) one line per supercell: atoms and ms per force evaluation."""
    import torch

    torch.set_num_threads(threads)
    from nequip_pol import _register_with_nequip
    from nequip_pol.integrations.model_arguments import load_calculator
    from ase.spacegroup import crystal

    _register_with_nequip()
    calc = load_calculator("sio2")
    cell = crystal(
        ["Si", "O"],
        basis=[(0.4697, 0, 1 / 3), (0.4135, 0.2669, 0.2142)],
        spacegroup=152,
        cellpar=[4.916, 4.916, 5.405, 90, 90, 120],
    )
    for n in atoms_list:
        atoms = cell.repeat(n)
        atoms.rattle(0.01, seed=0)
        atoms.calc = calc
        atoms.get_forces()  # warm-up
        count, start = 0, time.perf_counter()
        while count < 3 or time.perf_counter() - start < 1.5:
            calc.reset()
            atoms.positions[0, 0] += 1e-4
            atoms.get_forces()
            count += 1
        print(
            f"{len(atoms)} {(time.perf_counter() - start) / count * 1000:.1f}",
            flush=True,
        )


def size_table(repeats) -> str:
    times = {}
    load = os.getloadavg()[0]
    for threads in (1, 2):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--_evaluate",
                str(threads),
                "--repeats",
                ",".join(map(str, repeats)),
            ],
            env=_environment(),
            capture_output=True,
            text=True,
            check=True,
        )
        for line in proc.stdout.split("\n"):
            if line.strip():
                n, ms = line.split()
                times[(int(n), threads)] = float(ms)
    lines = [
        f"Machine: {machine()}; load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
        f"end; nice {os.nice(0)}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
        "",
        "| atoms | 1 thread (ms) | 2 threads (ms) | 2 threads / 1 |",
        "| --- | --- | --- | --- |",
    ]
    for n in sorted({n for n, _ in times}):
        one, two = times[(n, 1)], times[(n, 2)]
        lines.append(f"| {n} | {one:.1f} | {two:.1f} | {two / one:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--verbs", nargs="+", choices=list(VERBS), default=list(VERBS))
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per run (default 60)"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="seconds between starting the busy loop and the runs beside it (default 60)",
    )
    p.add_argument(
        "--sizes", action="store_true", help="the size threshold measurement instead"
    )
    p.add_argument(
        "--repeats", default="1,2,3,4,5", help="quartz supercells n x n x n of --sizes"
    )
    p.add_argument("--_evaluate", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    repeats = [int(r) for r in args.repeats.split(",")]
    if args._evaluate is not None:
        _evaluate(args._evaluate, repeats)
        return 0
    print(
        size_table(repeats)
        if args.sizes
        else verb_table(args.verbs, args.timeout, args.settle)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
