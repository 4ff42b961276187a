"""nequip-pol: field-aware NequIP and Allegro potentials.

nequip imports this package through its ``nequip.extension`` entry point while
``nequip.model`` is still being imported: import only key registration and compile
targets here, never ``nequip.model``/``nequip.nn``/``nequip.integrations``.
"""

from . import _keys  # noqa: F401  (registers data keys)
from . import _compile  # noqa: F401  (registers compile targets)
from ._keys import (  # noqa: F401
    ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
)

__version__ = "0.1.0"
