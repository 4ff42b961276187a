"""The former home of the verbs ``ir``, ``raman``, ``phonons`` and ``dielectric``, kept for its import path.

The verbs live in :mod:`~nequip_pol.analysis.spectra_commands` (``ir``, ``raman``),
:mod:`~nequip_pol.analysis.phonon_commands` (``phonons``) and
:mod:`~nequip_pol.analysis.dielectric_commands` (``dielectric``); the MODEL loader in
:mod:`~nequip_pol.analysis.command_common`. The names this module exported are re-exported here.
Only the standard library is imported at module level.
"""

from __future__ import annotations

from . import dielectric_commands, phonon_commands, spectra_commands
from .command_common import load_calculator
from .spectra_commands import DEFAULT_MAX_FREQ_CM1, DEFAULT_RESOLUTION_CM1

__all__ = [
    "load_calculator",
    "check_inputs",
    "DEFAULT_RESOLUTION_CM1",
    "DEFAULT_MAX_FREQ_CM1",
]

_VERB_MODULES = {
    "ir": spectra_commands,
    "raman": spectra_commands,
    "phonons": phonon_commands,
    "dielectric": dielectric_commands,
}


def check_inputs(verb: str, args) -> int:
    """Check VERB's files, numbers and outputs without heavy imports; 0, or 2 after the error line."""
    return _VERB_MODULES.get(verb, spectra_commands).check_inputs(verb, args)
