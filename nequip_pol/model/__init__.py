"""Model builders for ``_target_`` in nequip-train configs."""

from .pol_models import AllegroPolModel, NequIPPolModel
from .field_aware import FieldAwareModel, FieldAwareParamGroups, make_field_aware

__all__ = [
    "AllegroPolModel",
    "NequIPPolModel",
    "FieldAwareModel",
    "FieldAwareParamGroups",
    "make_field_aware",
]
