"""The switching protocol: a field E(t) = E0 f(t/T) along an axis, and the settings of one loop run.

* :func:`axis_vector`: ``"x"``, ``"-z"``, ``"1,1,0"`` or a 3-vector -> a unit vector (3,);
* :func:`waveform_value` / :func:`field_function`: the waveforms f(x), x = t / T, with f(0) = 0
  rising and f(1/4) = 1 (``"sine"``, ``"triangle"``), and E(t) as a function of t (fs);
* :class:`LoopProtocol`: amplitude, period, waveform, cycles, MD settings; ``validate()``
  checks them all before any work.

Units: time fs, field V/A, temperature K, friction 1/fs. numpy only (no ASE, no torch).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np

__all__ = [
    "WAVEFORMS",
    "MIN_STEPS_PER_PERIOD",
    "CYCLE_PHASE",
    "axis_vector",
    "waveform_value",
    "field_function",
    "LoopProtocol",
]

#: waveforms f(x), x = t / T: sine sin(2 pi x); triangle rising linearly from 0 to 1 at x = 1/4
WAVEFORMS = ("sine", "triangle")
#: a period must span at least this many MD time steps (a loop needs resolved dynamics)
MIN_STEPS_PER_PERIOD = 20
#: phase (fraction of a period) of the field maximum, where each analysed cycle starts
CYCLE_PHASE = 0.25


def axis_vector(axis: Union[str, Sequence[float]]) -> np.ndarray:
    """Unit vector (3,) of ``"x"``, ``"y"``, ``"z"`` (also ``"-z"`` etc.) or of any nonzero 3-vector.

    Raises ``ValueError`` naming the problem otherwise.
    """
    if isinstance(axis, str):
        text = axis.strip().lower()
        sign = -1.0 if text.startswith("-") else 1.0
        name = text.lstrip("+-")
        if name in ("x", "y", "z"):
            vec = np.zeros(3)
            vec["xyz".index(name)] = sign
            return vec
        try:
            parts = [float(p) for p in text.replace(",", " ").split()]
        except ValueError:
            parts = []
        if len(parts) != 3:
            raise ValueError(
                f"axis must be x, y, z or a 3-vector such as '1,1,0', got {axis!r}"
            )
        axis = parts
    try:
        vec = np.asarray(axis, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"axis must be x, y, z or a 3-vector, got {axis!r}") from err
    if vec.shape != (3,) or not np.all(np.isfinite(vec)):
        raise ValueError(f"axis must be x, y, z or a finite 3-vector, got {axis!r}")
    norm = np.linalg.norm(vec)
    if norm < 1e-12:
        raise ValueError(f"axis must be a nonzero vector, got {axis!r}")
    return vec / norm


def waveform_value(waveform: str, x) -> np.ndarray:
    """f(x) of ``waveform`` at phase x = t / T (array or float); both have f(0) = 0, f(1/4) = 1."""
    x = np.asarray(x, dtype=float)
    if waveform == "sine":
        return np.sin(2.0 * np.pi * x)
    if waveform == "triangle":
        y = np.mod(x, 1.0)
        return np.where(
            y < 0.25, 4.0 * y, np.where(y < 0.75, 2.0 - 4.0 * y, 4.0 * y - 4.0)
        )
    raise ValueError(f"unknown waveform {waveform!r}; choose one of {WAVEFORMS}")


def field_function(
    waveform: str, amplitude: float, period_fs: float, axis
) -> Callable[[float], np.ndarray]:
    """E(t) = amplitude * f(t / period) * axis, a function of t (fs) returning (3,) V/A."""
    e_axis = axis_vector(axis)
    waveform_value(waveform, 0.0)  # validates the name

    def field(t_fs: float) -> np.ndarray:
        return (
            float(amplitude)
            * float(waveform_value(waveform, t_fs / period_fs))
            * e_axis
        )

    return field


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
        snapshot_interval: write the structure every this many steps (0: never), for per-cell
            views of the switching (:mod:`~nequip_pol.analysis.domains`)
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
    snapshot_interval: int = 0
    seed: int = 0

    def validate(self) -> np.ndarray:
        """Check every setting (``ValueError`` naming the problem); returns the unit axis vector."""
        e_axis = axis_vector(self.axis)
        for name in (
            "amplitude",
            "period_fs",
            "timestep_fs",
            "temperature_K",
            "friction_per_fs",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.amplitude > 0:
            raise ValueError(
                f"the field amplitude must be > 0 V/A, got {self.amplitude}"
            )
        if not self.timestep_fs > 0:
            raise ValueError(f"the time step must be > 0 fs, got {self.timestep_fs}")
        if self.period_fs < MIN_STEPS_PER_PERIOD * self.timestep_fs:
            raise ValueError(
                f"the period {self.period_fs} fs is shorter than {MIN_STEPS_PER_PERIOD} time steps of "
                f"{self.timestep_fs} fs; use a period >= {MIN_STEPS_PER_PERIOD * self.timestep_fs} fs"
            )
        if self.waveform not in WAVEFORMS:
            raise ValueError(
                f"unknown waveform {self.waveform!r}; choose one of {WAVEFORMS}"
            )
        if self.temperature_K < 0:
            raise ValueError(
                f"the temperature must be >= 0 K, got {self.temperature_K}"
            )
        if self.friction_per_fs < 0:
            raise ValueError(
                f"the friction must be >= 0 (1/fs), got {self.friction_per_fs}"
            )
        if int(self.discard_cycles) != self.discard_cycles or self.discard_cycles < 0:
            raise ValueError(
                f"discard_cycles must be an integer >= 0, got {self.discard_cycles}"
            )
        if int(self.cycles) != self.cycles or self.cycles < self.discard_cycles + 1:
            raise ValueError(
                f"cycles must be an integer >= discard_cycles + 1 = {self.discard_cycles + 1}, "
                f"got {self.cycles}"
            )
        if (
            int(self.sample_interval) != self.sample_interval
            or self.sample_interval < 1
        ):
            raise ValueError(
                f"sample_interval must be an integer >= 1, got {self.sample_interval}"
            )
        if (
            isinstance(self.snapshot_interval, bool)
            or int(self.snapshot_interval) != self.snapshot_interval
            or self.snapshot_interval < 0
        ):
            raise ValueError(
                f"snapshot_interval must be an integer >= 0 (0: no snapshots), got {self.snapshot_interval}"
            )
        if self.period_fs < 8 * self.sample_interval * self.timestep_fs:
            raise ValueError(
                f"sampling every {self.sample_interval} steps leaves fewer than 8 samples per period"
            )
        return e_axis

    @property
    def n_steps(self) -> int:
        """MD steps: the initial quarter period plus ``cycles`` full periods."""
        return int(
            round((self.cycles + CYCLE_PHASE) * self.period_fs / self.timestep_fs)
        )
