"""The former home of the analytic reference material, kept for its import path.

The energy model lives in :mod:`nequip_pol.reference.paraelectric`
(:class:`~nequip_pol.reference.paraelectric.AnalyticPolarMaterial`, :func:`ideal_structure`,
the constants), its labelled data sets in :mod:`nequip_pol.reference.dataset`
(:func:`generate_dataset`, :func:`write_dataset`, :func:`read_dataset`,
:func:`dataset_statistics`). The names this module exported are re-exported here.
"""

from .dataset import (
    dataset_statistics,
    generate_dataset,
    read_dataset,
    write_dataset,
)
from .paraelectric import (
    CUTOFF,
    LATTICE_CONSTANT,
    TYPE_NAMES,
    AnalyticPolarMaterial,
    ideal_structure,
)

__all__ = [
    "CUTOFF",
    "LATTICE_CONSTANT",
    "TYPE_NAMES",
    "AnalyticPolarMaterial",
    "ideal_structure",
    "generate_dataset",
    "write_dataset",
    "read_dataset",
    "dataset_statistics",
]
