"""Torch threads of a run: one rule for every ``nequip-pol`` verb and every example.

:func:`choose_threads` gives ``(threads, reason)``, in this order:

1. a requested count (``--threads N`` of a verb or an example) wins;
2. else ``OMP_NUM_THREADS``, when it is set to a positive whole number (the first of a list);
3. else the free cores: the cores this process may run on (``os.sched_getaffinity``, else
   ``os.cpu_count()``) minus the one-minute load average, rounded, at least 1 (1 where the load
   average is unavailable); and a system of fewer than :data:`SMALL_SYSTEM_ATOMS` atoms gets one
   thread whatever is free.

Why: torch's intra-op threads wait for each other at every operation, so a thread that shares
its core with another job stalls all of them. On the shared 2-core development machine (load
~3) a second thread made ``nequip-pol phonons sio2 quartz.extxyz`` 25x slower (217-248 s
against 8.7 s), ``dielectric`` 9x, a short ``hysteresis`` 12x, with identical results. The load
average, not a short sample of idle time (what the demo used before), because the two mistakes
do not cost the same: the load average still counts a job that has just ended (a second thread
then is left unused: at most the 1.3x of the demo's training on an idle machine), while a sample
can fall between two bursts of a busy job (a second thread then costs 10-80x). It is also free:
nothing to wait for.

:func:`apply_threads` sets the count in torch (intra-op, and inter-op once per process);
:func:`threads_for_run` does that for the time of a run and sets ``OMP_NUM_THREADS`` for the
child processes it starts (``nequip-train``), restoring both afterwards. ``nequip-pol`` applies
the rule once per verb, before the model is loaded, and prints it as the run's first line
(:mod:`nequip_pol.cli.common`); the examples call :func:`choose_threads` with their
``--threads`` option.

This module imports only the standard library at module level (torch when a count is applied).
"""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "SMALL_SYSTEM_ATOMS",
    "available_cores",
    "choose_threads",
    "apply_threads",
    "threads_for_run",
]

#: Systems (atoms of one model evaluation) below this size get one thread. Measured with
#: ``python benchmarks/verb_threads.py --sizes`` (forces of the shipped sio2 model on quartz
#: supercells of 9-1125 atoms, one against two threads) on the 2-core machine, which was never
#: idle (load 3-6): plainly, two threads were 3.5-80x slower at every size; run at ``nice -20``
#: with ``OMP_WAIT_POLICY=PASSIVE`` (the closest to an idle machine we could get) they were equal
#: at 9 and 72 atoms (52 / 54 ms, 280 / 290 ms) and gained nothing up to 1125 atoms. Where a
#: second thread paid: the demo's training on the idle machine (5 frames of 40 atoms per step,
#: 1.3x) and a 1080-atom MD step at load ~2.5 (1.5x, docs/simulate.md). So: one thread below a
#: few hundred atoms, 200. A training's batch is not a "system" here (``n_atoms=None``).
SMALL_SYSTEM_ATOMS = 200

_interop_set = False


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _positive_int(text):
    """``int(text)`` if it is a positive whole number (the first of a comma list), else None."""
    try:
        value = int(str(text).split(",")[0].strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def choose_threads(n_atoms: int | None = None, requested: int | None = None):
    """``(threads, reason)`` by the rule of this module (see its docstring).

    ``n_atoms``: atoms of one model evaluation (None: not known, or a training's batch: the
    size is not considered); ``requested``: a count asked for (``--threads``), which wins.
    ``reason`` is one line: ``--threads 2``, ``OMP_NUM_THREADS=3``, or e.g.
    ``2 cores, load 1.8 -> 0 free; 9 atoms``.
    """
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return int(requested), f"--threads {int(requested)}"
    env = os.environ.get("OMP_NUM_THREADS")
    if env is not None and _positive_int(env) is not None:
        return _positive_int(env), f"OMP_NUM_THREADS={env}"
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        threads, reason = 1, f"{cores} cores, no load average"
    else:
        free = min(cores, max(0, int(cores - load + 0.5)))
        threads, reason = max(1, free), f"{cores} cores, load {load:.1f} -> {free} free"
    if n_atoms is not None:
        reason += f"; {n_atoms} atoms"
        if n_atoms < SMALL_SYSTEM_ATOMS and threads > 1:
            threads, reason = 1, reason + f" (under {SMALL_SYSTEM_ATOMS}: one thread)"
    return threads, reason


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads to ``threads`` (and its inter-op threads, once per process:
    torch allows that only before any inter-op work); return the previous intra-op count."""
    global _interop_set
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    if not _interop_set:
        _interop_set = True
        try:
            torch.set_num_interop_threads(int(threads))
        except RuntimeError:  # set before, or inter-op work already started
            pass
    return previous


@contextlib.contextmanager
def threads_for_run(threads: int, torch_threads: bool = True):
    """For the time of a run: ``OMP_NUM_THREADS=threads`` for the child processes it starts and,
    with ``torch_threads``, :func:`apply_threads` in this process; both restored afterwards."""
    previous_env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(int(threads))
    previous = apply_threads(threads) if torch_threads else None
    try:
        yield threads
    finally:
        if previous_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous_env
        if previous is not None:
            import torch

            torch.set_num_threads(previous)
