"""Model builders for ``_target_`` in nequip-train configs."""

from .pol_models import AllegroPolModel, NequIPPolModel

__all__ = ["AllegroPolModel", "NequIPPolModel"]
