"""Losses and metrics for electric-response training (``_target_`` in nequip-train configs)."""

from .metrics import ElectricResponseLoss, ElectricResponseMetrics

__all__ = ["ElectricResponseLoss", "ElectricResponseMetrics"]
