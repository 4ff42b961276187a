"""Data utilities: polarization branches, the inversion-allowed offset, the transform that completes
electric-response data, and datasets of several files."""

from .branch import fold_to_nearest_branch, NearestBranchPolarization
from .transforms import ElectricResponseKeysTransform
from .files import ASEFilesDataModule, split_frame_indices

__all__ = [
    "fold_to_nearest_branch",
    "NearestBranchPolarization",
    "ElectricResponseKeysTransform",
    "ASEFilesDataModule",
    "split_frame_indices",
]
