"""P-E loops from a time series: coercive fields, remanent polarizations and loop areas per cycle.

Extraction from a time series: :func:`analyze_loops` (plain numpy arrays: time in fs, the
field and P projected on the switching axis) or :func:`analyze_series` (a
:class:`~nequip_pol.analysis.timeseries.PolarizationSeries`, e.g. read from a
``PolarizationLogger`` CSV or a LAMMPS ``fix ave/time`` file with :func:`read_loop`). Each
cycle is analysed from one field maximum to the next (t = t0 + (k + 1/4) T for the waveforms of
:mod:`~nequip_pol.analysis.protocol`, E(t) = E0 f(t/T) with f(0) = 0 rising), and per cycle:

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

Units: time fs, field V/A, P e*A (cell dipole), work eV. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Dict, List, Union

import numpy as np

from .protocol import CYCLE_PHASE, axis_vector
from .timeseries import PolarizationSeries, read_series

__all__ = [
    "LOOP_QUANTITIES",
    "LoopAnalysis",
    "analyze_loops",
    "analyze_series",
    "read_loop",
]

#: the per-cycle quantities of :class:`LoopAnalysis` (V/A, e*A, eV)
LOOP_QUANTITIES = ("ec_plus", "ec_minus", "ec", "pr_plus", "pr_minus", "pr", "area")


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

        return (
            ", ".join(
                [
                    fmt("ec", "V/A"),
                    fmt("ec_plus", "V/A"),
                    fmt("ec_minus", "V/A"),
                    fmt("pr", "e*A"),
                    fmt("area", "eV"),
                ]
            )
            + f" ({self.n_cycles} cycles)"
        )


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
        raise ValueError(
            f"time, field and polarization must be 1-d arrays of one length, got shapes "
            f"{t.shape}, {e.shape}, {p.shape}"
        )
    if not (
        np.all(np.isfinite(t)) and np.all(np.isfinite(e)) and np.all(np.isfinite(p))
    ):
        raise ValueError("time, field or polarization contains NaN or infinite values")
    if not period_fs > 0:
        raise ValueError(f"period must be > 0 fs, got {period_fs}")
    first = t0_fs + CYCLE_PHASE * period_fs
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
        # whole periods, each sample once: the half-open windows [start, start + T)
        offset = float(
            np.mean(
                np.concatenate(
                    [p[(t >= s - tol) & (t < s + period_fs - tol)] for s in starts]
                )
            )
        )
    elif center is False:
        offset = 0.0
    else:
        offset = float(center)
    pc = p - offset
    per_cycle = {k: np.full(len(starts), np.nan) for k in LOOP_QUANTITIES}
    for c, w in enumerate(windows):
        if w.sum() < 4:
            raise ValueError(
                f"cycle starting at {starts[c]:.6g} fs has {int(w.sum())} samples; sample the loop more often"
            )
        # exactly one period: interior samples plus E and P interpolated at both ends, so that the
        # loop closes whatever the sampling interval
        inner = w & (t > starts[c] + tol) & (t < starts[c] + period_fs - tol)
        ends = np.array([starts[c], starts[c] + period_fs])
        tc = np.concatenate([ends[:1], t[inner], ends[1:]])
        ec = np.concatenate(
            [np.interp(ends[:1], t, e), e[inner], np.interp(ends[1:], t, e)]
        )
        pcyc = np.concatenate(
            [np.interp(ends[:1], t, pc), pc[inner], np.interp(ends[1:], t, pc)]
        )
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
    return LoopAnalysis(
        per_cycle=per_cycle,
        mean=mean,
        std=std,
        n_cycles=len(starts),
        period_fs=float(period_fs),
        polarization_offset=offset,
        cycle_start_fs=starts,
    )


def analyze_series(
    series: PolarizationSeries,
    axis,
    period_fs: float,
    discard_cycles: int = 1,
    t0_fs: float = 0.0,
    center: Union[bool, float] = True,
) -> LoopAnalysis:
    """:func:`analyze_loops` on a ``PolarizationSeries``, projecting field and P on ``axis``."""
    e_axis = axis_vector(axis)
    return analyze_loops(
        series.time_fs,
        series.field @ e_axis,
        series.polarization @ e_axis,
        period_fs,
        discard_cycles=discard_cycles,
        t0_fs=t0_fs,
        center=center,
    )


def read_loop(path, format: str = "auto") -> PolarizationSeries:
    """Read a loop's P(t): a ``PolarizationLogger``/:func:`run_loop` CSV or a LAMMPS ``fix ave/time`` file.

    The LAMMPS file is the one written by ``lammps_patch/examples/in.hysteresis`` (the layout
    documented in :mod:`nequip_pol.analysis.timeseries`; time in ps is converted to fs). The
    waveform's t0 is the time where the field starts (0 for a fresh LAMMPS run with ``time``
    starting at 0).
    """
    return read_series(path, format=format)
