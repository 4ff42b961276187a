"""Reading the text outputs of DFT codes: (compressed) files and numbers in fixed layouts.

Shared by the VASP and Quantum ESPRESSO linear-response readers (:mod:`nequip_pol.io.vasp`,
:mod:`nequip_pol.io.vasp_blocks`, :mod:`nequip_pol.io.qe_ph`, :mod:`nequip_pol.io.qe_ph_outputs`).
Every problem is one error of the caller's class naming the file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

import numpy as np

from .errors import NequipPolIOError

__all__ = ["NUM", "read_text", "numbers", "last_line"]

#: a Fortran-printed number (also with a D exponent)
NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"


def read_text(path, limit: int = -1, error=NequipPolIOError) -> str:
    """The text of ``path``, decompressed by suffix (.gz, .bz2, .xz); only the first ``limit``
    characters when ``limit`` >= 0. Undecodable bytes are replaced (they then fail as numbers)."""
    path = Path(path)
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(
        path.suffix.lower(), open
    )
    try:
        with opener(path, "rt", errors="replace") as f:
            return f.read(limit)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise error(f"{path}: cannot read file: {exc}") from None


def numbers(
    text: str, n: int, path, what: str, error=NequipPolIOError, last: bool = False
) -> np.ndarray:
    """``n`` numbers of ``text``, each a whole whitespace-separated token (a number glued to a
    word, ``NaN`` or Fortran's ``****`` is an error): the first ``n`` after the first '(' (or
    from the start), or the last ``n`` with ``last``. Parentheses and commas separate tokens."""
    if not last and "(" in text:
        text = text.split("(", 1)[1]
    tokens = text.replace("(", " ").replace(")", " ").replace(",", " ").split()
    tokens = tokens[-n:] if last else tokens[:n]
    try:
        if len(tokens) < n:
            raise ValueError
        values = np.array(
            [float(t.replace("D", "E").replace("d", "e")) for t in tokens]
        )
        if not np.all(np.isfinite(values)):
            raise ValueError
        return values
    except ValueError:
        raise error(
            f"{path}: malformed {what} (expected {n} numbers in {text.strip()!r})"
        ) from None


def last_line(lines, test) -> int | None:
    """Index of the last of ``lines`` whose text (stripped) passes ``test``, or None: the last
    of repeated blocks (cumulative outputs print a block again at each step)."""
    idx = None
    for i, line in enumerate(lines):
        if test(line.strip()):
            idx = i
    return idx
