"""Integrity checks of model files before they are loaded: errors that name the file and the problem.

Every model file nequip writes is a zip archive: a checkpoint (``*.ckpt``, ``torch.save``), a
package (``*.nequip.zip``, ``torch.package``), a compiled model (``*.nequip.pt2``, AOTInductor;
``*.nequip.pth``, TorchScript). A run killed while copying or saving one leaves a file cut short
(no end-of-archive record); a bad disk or transfer leaves changed bytes (a member whose CRC-32 no
longer matches). torch's own loaders report either as an error from deep inside its zip reader
that does not name the file (``PytorchStreamReader failed reading zip archive: failed finding
central directory``), and a compiled model with changed bytes can crash the process when its
shared library is loaded. :func:`check_model_file` reads the archive first (a few ms per MB) and
raises :class:`ModelFileError` with the file's name and what is wrong; :func:`load_error` turns an
exception of a loader into the same kind of message.

This module imports only the standard library.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Union

__all__ = ["ModelFileError", "model_file_kind", "check_model_file", "load_error"]

#: file-name endings -> what the file is, for the messages
_KINDS = (
    (".nequip.pt2", "compiled model (AOTInductor)"),
    (".pt2", "compiled model (AOTInductor)"),
    (".nequip.pth", "compiled model (TorchScript)"),
    (".pth", "compiled model (TorchScript)"),
    (".ckpt", "checkpoint"),
    (".nequip.zip", "package"),
    (".zip", "package"),
)
_ZIP_MAGIC = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and what is wrong."""


def model_file_kind(path: Union[str, Path]) -> str:
    """What a model file is, from its name: ``"checkpoint"``, ``"package"``, ``"compiled model (...)"``."""
    name = os.fspath(path).lower()
    for ending, kind in _KINDS:
        if name.endswith(ending):
            return kind
    return "model file"


def check_model_file(path: Union[str, Path], kind: Optional[str] = None) -> None:
    """Check that ``path`` is a complete, uncorrupted zip archive (every nequip model file is one).

    Raises ``FileNotFoundError`` for a missing file and :class:`ModelFileError` (a ``ValueError``)
    naming the file and the problem: empty, not a zip archive at all, cut short (no
    end-of-archive record: an interrupted save or copy), or a member whose CRC-32 does not
    match (changed bytes). ``kind`` names the file in the messages (default: from its name).
    Reads the whole file once (CRC-32 of every member).
    """
    p = Path(path)
    name = os.fspath(path)
    kind = kind or model_file_kind(p)
    if not p.is_file():
        raise FileNotFoundError(f"{kind} not found: {name!r}")
    size = p.stat().st_size
    if size == 0:
        raise ModelFileError(
            f"{name!r}: empty {kind} (0 bytes): the save or copy that wrote it did not finish"
        )
    with open(p, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        raise ModelFileError(
            f"{name!r} is not a {kind}: nequip's model files are zip archives and this one "
            f"starts with {head!r} (a file of another format, or its start is overwritten)"
        )
    if not zipfile.is_zipfile(p):
        raise ModelFileError(
            f"{name!r}: truncated {kind}: the zip archive has no end record ({size} bytes); the "
            "file was cut short, by an interrupted save or copy: save or copy it again"
        )
    try:
        with zipfile.ZipFile(p) as archive:
            for info in archive.infolist():
                if info.is_dir() or (info.CRC == 0 and info.file_size > 0):
                    continue  # written without checksums (torch's crc32 option off)
                with archive.open(info) as member:
                    while member.read(1 << 22):
                        pass
    except zipfile.BadZipFile as exc:
        what = str(exc)
        if "CRC" in what:
            what = f"the member {what.rsplit(' ', 1)[-1]} fails its CRC-32 check (changed bytes)"
        raise ModelFileError(f"{name!r}: corrupted {kind}: {what}") from None
    except (zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ModelFileError(
            f"{name!r}: corrupted {kind}: {type(exc).__name__}: {exc}"
        ) from None


def load_error(path: Union[str, Path], exc: BaseException, kind: Optional[str] = None):
    """A :class:`ModelFileError` for ``exc`` raised by a loader of ``path`` (first line of its message)."""
    kind = kind or model_file_kind(path)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return ModelFileError(
        f"cannot load the {kind} {os.fspath(path)!r}: {type(exc).__name__}: {first}"
    )
