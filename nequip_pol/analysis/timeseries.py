"""Time series of the polarization P(t) (and polarizability alpha(t)) from MD, in one representation.

Two sources are read into the same :class:`PolarizationSeries`:

* ``"csv"``: the CSV written by :class:`nequip_pol.integrations.md.PolarizationLogger`
  (layout: :mod:`nequip_pol.io.polarization_log`; columns ``time_fs, Ex, Ey, Ez, Px, Py, Pz``,
  optional ``volume`` and ``axx .. azz``; other columns are ignored).
* ``"lammps"``: the file written by ``fix ave/time`` of ``compute pol/allegro`` with the
  documented input lines (``lammps_patch/examples/in.*_dipole*``, ``docs/analysis.md``)::

      compute   pol all pol/allegro                 # P (e*A, 3) then alpha (e*A^2/V, 9, row major)
      variable  Ex equal 0.0                        # the field (V/A), also passed to pair_style ... efield
      variable  Ey equal 0.0
      variable  Ez equal 0.0
      variable  time equal time                     # ps (metal units)
      variable  vol equal vol                       # A^3
      fix       dipole all ave/time 1 1 1 v_time v_Ex v_Ey v_Ez c_pol[*] v_vol &
                file dipole.txt format " %.12g"

  ``fix ave/time`` with ``Nevery = Nrepeat = 1`` writes the instantaneous values every
  ``Nfreq`` steps (here every step; ``1 1 10`` writes every 10th). Its header line
  ``# TimeStep v_time v_Ex ...`` names the columns, which the reader uses: ``v_time`` (ps) and
  ``v_Ex v_Ey v_Ez`` (V/A) are required, the compute's vector is the 12 columns ``c_<ID>[1..12]``
  (or 3 columns ``c_<ID>[1..3]`` for P only), ``v_vol`` is optional. Print with ``format
  " %.12g"``: the default ``%g`` keeps 6 significant digits, too few for the time of a long run
  (the reader then refuses the file as non-uniform, rather than silently using a wrong time step).
  When the integer ``TimeStep`` column is present, the time step is fitted to ``v_time`` vs
  ``TimeStep`` so that the time axis carries no rounding.

Validation (all raise ``ValueError`` naming the problem and the file): missing columns, NaN or
infinite values, fewer than 2 frames, non-uniform or non-increasing time steps, a partially
missing volume or polarizability.

Units: time fs, field V/A, P e*A (cell dipole, volume x polarization), alpha e*A^2/V, volume A^3.
The model's P is continuous along a trajectory (no quantum jumps; see ``docs/analysis.md``), so
the series can be differentiated and correlated directly.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ..io import polarization_log as layout
from ..units import PS_TO_FS

__all__ = [
    "PolarizationSeries",
    "read_series",
    "read_logger_csv",
    "read_lammps_ave_time",
    "FORMATS",
]

#: formats understood by :func:`read_series`
FORMATS = ("auto", "csv", "lammps")
#: relative tolerance on the spacing of the time axis
UNIFORM_RTOL = 1e-5

_ALPHA_COLUMNS = list(layout.POLARIZABILITY)


@dataclass
class PolarizationSeries:
    """P(t) and optionally alpha(t) on a uniform time grid.

    Attributes:
        time_fs: (n,) times in fs, uniformly spaced and increasing
        field: (n, 3) applied field E(t), V/A
        polarization: (n, 3) cell dipole P(t) (volume x polarization), e*A
        polarizability: (n, 3, 3) alpha(t), e*A^2/V (row: P direction), or ``None``
        volume: (n,) cell volume, A^3, or ``None`` (not periodic / not written)
        source: where the data came from (file name and format), for messages and plots
    """

    time_fs: np.ndarray
    field: np.ndarray
    polarization: np.ndarray
    polarizability: Optional[np.ndarray] = None
    volume: Optional[np.ndarray] = None
    source: str = "memory"
    metadata: Dict[str, object] = dataclass_field(default_factory=dict)

    def __post_init__(self) -> None:
        self.time_fs = np.asarray(self.time_fs, dtype=float)
        self.field = np.asarray(self.field, dtype=float)
        self.polarization = np.asarray(self.polarization, dtype=float)
        if self.polarizability is not None:
            self.polarizability = np.asarray(self.polarizability, dtype=float)
        if self.volume is not None:
            self.volume = np.asarray(self.volume, dtype=float)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check shapes, finiteness and a uniform increasing time axis; ``ValueError`` otherwise."""
        n = self.time_fs.shape[0] if self.time_fs.ndim == 1 else -1
        where = f" ({self.source})"
        if self.time_fs.ndim != 1:
            raise ValueError(
                f"time_fs must have shape (n,), got {self.time_fs.shape}{where}"
            )
        if n < 2:
            raise ValueError(
                f"the series has {n} frame(s); at least 2 are needed{where}"
            )
        expected = {"field": (n, 3), "polarization": (n, 3)}
        if self.polarizability is not None:
            expected["polarizability"] = (n, 3, 3)
        if self.volume is not None:
            expected["volume"] = (n,)
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape}, got {value.shape}{where}"
                )
        for name in ["time_fs", *expected]:
            value = getattr(self, name)
            bad = ~np.isfinite(value)
            if bad.any():
                rows = np.nonzero(bad.reshape(n, -1).any(axis=1))[0]
                raise ValueError(
                    f"{name} contains NaN or infinite values in {len(rows)} frame(s), first at frame {rows[0]} "
                    f"(t = {self.time_fs[rows[0]]} fs){where}"
                )
        steps = np.diff(self.time_fs)
        dt = float(np.median(steps))
        if not dt > 0:
            raise ValueError(
                f"the time axis does not increase (median step {dt} fs){where}"
            )
        worst = int(np.argmax(np.abs(steps - dt)))
        if abs(steps[worst] - dt) > UNIFORM_RTOL * dt:
            raise ValueError(
                f"non-uniform time steps: step {worst} -> {worst + 1} is {steps[worst]:.9g} fs, the median step is "
                f"{dt:.9g} fs (t = {self.time_fs[worst]:.9g} fs); spectra need a uniform sampling "
                f"(log at a fixed interval, one run per file){where}"
            )

    # ------------------------------------------------------------------ derived
    @property
    def dt_fs(self) -> float:
        """Sampling interval, fs."""
        return float((self.time_fs[-1] - self.time_fs[0]) / (len(self.time_fs) - 1))

    @property
    def duration_fs(self) -> float:
        """Length of the series, (n - 1) dt, fs."""
        return float(self.time_fs[-1] - self.time_fs[0])

    def __len__(self) -> int:
        return int(self.time_fs.shape[0])

    @property
    def mean_volume(self) -> Optional[float]:
        """Mean cell volume (A^3), or ``None`` when the series has no volume."""
        return None if self.volume is None else float(self.volume.mean())

    def require_zero_field(self, purpose: str) -> None:
        """``ValueError`` unless every frame is at zero field (fluctuation formulas assume it)."""
        peak = float(np.abs(self.field).max())
        if peak > 0:
            raise ValueError(
                f"{purpose} needs a zero-field run; the series has |E| up to {peak:.3g} V/A ({self.source})"
            )

    def volume_or_mean(self, volume: Optional[float] = None) -> float:
        """``volume`` if given, else the series' mean cell volume (A^3); ``ValueError`` if neither exists."""
        if volume is not None:
            return volume
        if self.volume is None:
            raise ValueError(
                f"no cell volume in the series ({self.source}); pass the volume (A^3)"
            )
        return self.mean_volume

    def window(
        self, start_fs: Optional[float] = None, stop_fs: Optional[float] = None
    ) -> "PolarizationSeries":
        """The frames with ``start_fs <= t <= stop_fs`` (e.g. to drop an equilibration), as a new series."""
        keep = np.ones(len(self), dtype=bool)
        if start_fs is not None:
            keep &= self.time_fs >= start_fs - 1e-9
        if stop_fs is not None:
            keep &= self.time_fs <= stop_fs + 1e-9
        if keep.sum() < 2:
            raise ValueError(
                f"the window [{start_fs}, {stop_fs}] fs keeps {int(keep.sum())} frame(s) of a series spanning "
                f"{self.time_fs[0]:.6g}..{self.time_fs[-1]:.6g} fs ({self.source})"
            )
        return PolarizationSeries(
            time_fs=self.time_fs[keep],
            field=self.field[keep],
            polarization=self.polarization[keep],
            polarizability=None
            if self.polarizability is None
            else self.polarizability[keep],
            volume=None if self.volume is None else self.volume[keep],
            source=self.source,
            metadata=dict(self.metadata),
        )

    def write_csv(self, path: Union[str, os.PathLike], force: bool = False) -> None:
        """Write the series in the :class:`PolarizationLogger` column layout (readable by :func:`read_series`)."""
        path = Path(path)
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; not overwriting it (use force)")
        columns = layout.columns(
            volume=self.volume is not None,
            polarizability=self.polarizability is not None,
        )
        table = [self.time_fs, *self.field.T, *self.polarization.T]
        if self.volume is not None:
            table.append(self.volume)
        if self.polarizability is not None:
            table += list(self.polarizability.reshape(len(self), 9).T)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for step, row in enumerate(zip(*table)):
                w.writerow(layout.format_row([step, *row]))


# ---------------------------------------------------------------------- readers
def read_series(
    path: Union[str, os.PathLike], format: str = "auto"
) -> PolarizationSeries:
    """Read P(t) (and alpha(t) if present) from a PolarizationLogger CSV or a LAMMPS ``fix ave/time`` file.

    Args:
        path: the file
        format: ``"csv"``, ``"lammps"`` or ``"auto"`` (a first line starting with ``#`` means
            LAMMPS, else CSV)

    Raises:
        ValueError: unknown format, unreadable content, missing columns, NaN, non-uniform time
        FileNotFoundError: no such file
    """
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {FORMATS}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if format == "auto":
        with open(path) as f:
            first = f.readline()
        if not first.strip():
            raise ValueError(f"{path}: the file is empty")
        format = "lammps" if first.lstrip().startswith("#") else "csv"
    return read_logger_csv(path) if format == "csv" else read_lammps_ave_time(path)


_to_float = layout.parse_float


def read_logger_csv(path: Union[str, os.PathLike]) -> PolarizationSeries:
    """Read the CSV of :class:`~nequip_pol.integrations.md.PolarizationLogger` (see :func:`read_series`)."""
    path = Path(path)
    header, data = layout.read_table(path)
    missing = [c for c in layout.REQUIRED if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header)}); "
            "expected the CSV written by nequip_pol.integrations.md.PolarizationLogger"
        )
    index = {name: k for k, name in enumerate(header)}
    col = lambda name: data[:, index[name]]  # noqa: E731
    volume = None
    if layout.VOLUME in index:
        v = col(layout.VOLUME)
        if np.all(np.isnan(v)):
            volume = None  # not periodic: the logger writes NaN
        else:
            volume = v  # partial NaN: validate() names it
    alpha = None
    present = [c for c in _ALPHA_COLUMNS if c in index]
    if present:
        if len(present) != 9:
            raise ValueError(
                f"{path}: incomplete polarizability columns: missing "
                f"{', '.join(c for c in _ALPHA_COLUMNS if c not in index)}"
            )
        alpha = np.stack([col(c) for c in _ALPHA_COLUMNS], axis=1).reshape(-1, 3, 3)
    return PolarizationSeries(
        time_fs=col(layout.TIME),
        field=np.stack([col(c) for c in layout.FIELD], axis=1),
        polarization=np.stack([col(c) for c in layout.POLARIZATION], axis=1),
        polarizability=alpha,
        volume=volume,
        source=f"{path} (PolarizationLogger CSV)",
    )


_COMPUTE_COLUMN = re.compile(r"^c_([A-Za-z0-9_]+)\[(\d+)\]$")


def read_lammps_ave_time(path: Union[str, os.PathLike]) -> PolarizationSeries:
    """Read the ``fix ave/time`` file of ``compute pol/allegro`` documented in :func:`read_series`.

    Time in the file: ``v_time`` in ps (metal units), converted to fs.
    """
    path = Path(path)
    header: Optional[List[str]] = None
    table: List[List[float]] = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                words = text.lstrip("#").split()
                if words and words[0] == "TimeStep":
                    if header is not None and table:
                        raise ValueError(
                            f"{path}, line {line_no}: a second header line (several runs in one file?); "
                            "analyse one run per file"
                        )
                    header = words
                continue
            if header is None:
                raise ValueError(
                    f"{path}: no '# TimeStep ...' header line before the data; expected the file of "
                    "'fix ave/time ... file NAME' in scalar mode (see docs/analysis.md)"
                )
            words = text.split()
            if len(words) != len(header):
                raise ValueError(
                    f"{path}, line {line_no}: {len(words)} values for {len(header)} columns "
                    f"({' '.join(header)}); vector-mode output of fix ave/time is not supported"
                )
            table.append(
                [_to_float(w, path, line_no, header[k]) for k, w in enumerate(words)]
            )
    if header is None:
        raise ValueError(
            f"{path}: no '# TimeStep ...' header line; not a fix ave/time file"
        )
    index = {name: k for k, name in enumerate(header)}
    data = np.array(table, dtype=float).reshape(len(table), len(header))

    compute_columns: Dict[str, Dict[int, int]] = {}
    for name, k in index.items():
        m = _COMPUTE_COLUMN.match(name)
        if m:
            compute_columns.setdefault(m.group(1), {})[int(m.group(2))] = k
    candidates = {
        cid: cols
        for cid, cols in compute_columns.items()
        if all(i in cols for i in (1, 2, 3))
    }
    missing = [c for c in ("v_time", "v_Ex", "v_Ey", "v_Ez") if c not in index]
    if not candidates:
        missing.append("c_ID[1] c_ID[2] c_ID[3] (the vector of compute pol/allegro)")
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {'; '.join(missing)} (header: {' '.join(header)}); "
            "write them with: fix ID all ave/time 1 1 N v_time v_Ex v_Ey v_Ez c_pol[*] v_vol file NAME"
        )
    if len(candidates) > 1:
        raise ValueError(
            f"{path}: columns of several computes ({', '.join(sorted(candidates))}); "
            "write only the vector of compute pol/allegro"
        )
    ((cid, cols),) = candidates.items()
    alpha = None
    if any(i in cols for i in range(4, 13)):
        if not all(i in cols for i in range(4, 13)):
            raise ValueError(
                f"{path}: incomplete polarizability columns c_{cid}[4..12] of compute pol/allegro"
            )
        alpha = np.stack([data[:, cols[i]] for i in range(4, 13)], axis=1).reshape(
            -1, 3, 3
        )

    time_fs = data[:, index["v_time"]] * PS_TO_FS
    if "TimeStep" in index and len(data) >= 2 and np.all(np.isfinite(time_fs)):
        steps = data[:, index["TimeStep"]]
        dsteps = np.diff(steps)
        if np.all(dsteps == dsteps[0]) and dsteps[0] > 0:
            # exact integer step counter: fit t = t0 + dt * step, unless the printed times disagree
            slope, intercept = np.polyfit(steps - steps[0], time_fs, 1)
            fitted = intercept + slope * (steps - steps[0])
            if np.max(np.abs(fitted - time_fs)) <= max(
                UNIFORM_RTOL * slope * dsteps[0], 1e-9
            ):
                time_fs = fitted
    volume = data[:, index["v_vol"]] if "v_vol" in index else None
    return PolarizationSeries(
        time_fs=time_fs,
        field=np.stack([data[:, index[c]] for c in ("v_Ex", "v_Ey", "v_Ez")], axis=1),
        polarization=np.stack([data[:, cols[i]] for i in (1, 2, 3)], axis=1),
        polarizability=alpha,
        volume=volume,
        source=f"{path} (LAMMPS fix ave/time, compute {cid})",
    )
