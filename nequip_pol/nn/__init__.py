"""Graph modules of nequip-pol: the field embedding and the shared response head."""

from .field_expansion import (
    FieldExpansionEnergy,
    ATOMIC_DIPOLE_KEY,
    PER_ATOM_FIELD_ENERGY_KEY,
)
from .response import ElectricResponseOutput, RESPONSE_OUTPUTS, check_electric_field

__all__ = [
    "FieldExpansionEnergy",
    "ElectricResponseOutput",
    "RESPONSE_OUTPUTS",
    "ATOMIC_DIPOLE_KEY",
    "PER_ATOM_FIELD_ENERGY_KEY",
    "check_electric_field",
]
