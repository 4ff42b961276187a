"""Data utilities: polarization branches and the transform that completes electric-response data."""

from .branch import fold_to_nearest_branch, NearestBranchPolarization
from .transforms import ElectricResponseKeysTransform

__all__ = [
    "fold_to_nearest_branch",
    "NearestBranchPolarization",
    "ElectricResponseKeysTransform",
]
