"""The P(t) CSV layout: one definition for its writer and every reader.

Written by :class:`nequip_pol.integrations.md.PolarizationLogger` (during MD) and by
:meth:`nequip_pol.analysis.timeseries.PolarizationSeries.write_csv`; read by
:func:`nequip_pol.integrations.md.read_polarization_log` (a dict of columns) and
:func:`nequip_pol.analysis.timeseries.read_series` (a ``PolarizationSeries``).

One header line, then one line per frame, comma separated::

    step, time_fs, Ex, Ey, Ez, Px, Py, Pz, [dPx, dPy, dPz], [volume], [axx .. azz], [epot, ekin, etot, field_work]

=============== ============================================================= =========
column          value                                                         unit
=============== ============================================================= =========
step            MD step (integer)
time_fs         time t                                                        fs
Ex Ey Ez        field E(t) the frame was computed at                          V/A
Px Py Pz        cell dipole P (the model's raw value)                         e*A
dPx dPy dPz     P - P_ref (optional)                                          e*A
volume          cell volume (NaN when not periodic)                           A^3
axx .. azz      polarizability alpha_ab, row major (optional)                 e*A^2/V
epot ekin etot  electric enthalpy E(R, E(t)), kinetic energy, their sum       eV
field_work      accumulated -integral P . dE (optional, with the energies)    eV
=============== ============================================================= =========

Floats are written with 12 significant digits. csv and numpy only.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "STEP",
    "TIME",
    "FIELD",
    "POLARIZATION",
    "RELATIVE_POLARIZATION",
    "VOLUME",
    "POLARIZABILITY",
    "ENERGIES",
    "REQUIRED",
    "columns",
    "format_row",
    "parse_float",
    "read_table",
]

STEP = "step"
TIME = "time_fs"
FIELD = ("Ex", "Ey", "Ez")
POLARIZATION = ("Px", "Py", "Pz")
RELATIVE_POLARIZATION = ("dPx", "dPy", "dPz")
VOLUME = "volume"
POLARIZABILITY = tuple(f"a{a}{b}" for a in "xyz" for b in "xyz")
ENERGIES = ("epot", "ekin", "etot", "field_work")
#: the columns a reader needs
REQUIRED = (TIME, *FIELD, *POLARIZATION)


def columns(
    relative: bool = False,
    volume: bool = True,
    polarizability: bool = False,
    energies: bool = False,
) -> List[str]:
    """The header of a P(t) CSV with the optional column groups asked for, in file order."""
    names = [STEP, TIME, *FIELD, *POLARIZATION]
    if relative:
        names += RELATIVE_POLARIZATION
    if volume:
        names.append(VOLUME)
    if polarizability:
        names += POLARIZABILITY
    if energies:
        names += ENERGIES
    return names


def format_row(values: Sequence) -> List[str]:
    """One line's cells: integers as they are, floats with 12 significant digits."""
    cells = []
    for v in values:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            cells.append(str(int(v)))
        else:
            cells.append(f"{float(v):.12g}")
    return cells


def parse_float(text: str, path, line_no: int, column: str) -> float:
    """``float(text)``, or ``ValueError`` naming the file, line and column."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{path}, line {line_no}: column {column!r} is not a number: {text!r}"
        ) from None


def read_table(path: Union[str, os.PathLike]) -> Tuple[List[str], np.ndarray]:
    """(header, (frames, columns) float array) of a P(t) CSV; ``ValueError`` naming the file and line.

    Refuses an empty file, a repeated header (several runs appended to one file), rows with the
    wrong number of values and cells that are not numbers. ``FileNotFoundError`` if missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="") as f:
        rows = [
            row for row in csv.reader(f) if row and any(cell.strip() for cell in row)
        ]
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    table = []
    for line_no, row in enumerate(rows[1:], start=2):
        if [c.strip() for c in row] == header:
            raise ValueError(
                f"{path}, line {line_no}: a second header line (several runs appended to one file?); "
                "analyse one run per file"
            )
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {line_no}: {len(row)} values for {len(header)} columns"
            )
        table.append(
            [parse_float(row[k], path, line_no, header[k]) for k in range(len(header))]
        )
    return header, np.array(table, dtype=float).reshape(len(table), len(header))
