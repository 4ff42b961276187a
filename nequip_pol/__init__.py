"""nequip-pol: field-aware NequIP and Allegro potentials.

nequip imports this package through its ``nequip.extension`` entry point while
``nequip.model`` is still being imported: import only key registration and compile
targets here, never ``nequip.model``/``nequip.nn``/``nequip.integrations``.

The ``nequip-pol`` command line imports this package before anything else; there, and only
there, the registration (which imports torch and nequip, several seconds) waits until a
subcommand runs, so that ``nequip-pol --help`` answers at once.
"""

import os
import sys

__version__ = "0.1.0"

_KEY_NAMES = (
    "ELECTRIC_FIELD_KEY",
    "ATOMIC_ELECTRIC_FIELD_KEY",
    "ATOMIC_DIPOLE_KEY",
    "POLARIZATION_KEY",
    "BORN_CHARGE_KEY",
    "POLARIZABILITY_KEY",
)


def _register_with_nequip() -> None:
    """Register the data keys and compile targets with nequip (idempotent)."""
    from . import _keys  # noqa: F401
    from . import _compile  # noqa: F401


def __getattr__(name):
    if name in _KEY_NAMES:
        from . import _keys

        return getattr(_keys, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _started_by_command_line() -> bool:
    return (
        os.path.basename(sys.argv[0] if sys.argv else "") == "nequip-pol"
        and "nequip" not in sys.modules
    )


if not _started_by_command_line():
    _register_with_nequip()
