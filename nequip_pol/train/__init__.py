"""Losses, metrics and callbacks for electric-response training (``_target_`` in nequip-train configs)."""

from .metrics import (
    ElectricResponseLoss,
    ElectricResponseMetrics,
    BornChargesOrProjection,
)
from .callbacks import CPUTimeLogger, EpochProgressPrinter, PerRankSeed
from .schedules import DecayStageLossWeights, WarmupStableDecayLR

__all__ = [
    "ElectricResponseLoss",
    "ElectricResponseMetrics",
    "BornChargesOrProjection",
    "CPUTimeLogger",
    "EpochProgressPrinter",
    "PerRankSeed",
    "WarmupStableDecayLR",
    "DecayStageLossWeights",
]
