"""The errors of nequip-pol's data conversion and checks; their messages name the file."""

from __future__ import annotations

__all__ = ["NequipPolIOError", "OutputExistsError", "VaspParseError"]


class NequipPolIOError(Exception):
    """Base class of the data-conversion errors of nequip-pol (messages name the file)."""


class OutputExistsError(NequipPolIOError, FileExistsError):
    """The output file exists and overwriting was not requested."""


class VaspParseError(NequipPolIOError, ValueError):
    """A VASP run cannot be read or turned into a frame (the message names the file)."""
