"""Reference materials with exactly known field-dependent energies (no DFT needed)."""

from .analytic_material import (  # noqa: F401
    CUTOFF,
    LATTICE_CONSTANT,
    TYPE_NAMES,
    AnalyticPolarMaterial,
    dataset_statistics,
    generate_dataset,
    ideal_structure,
    read_dataset,
    write_dataset,
)
from .calculator import ReferenceMaterialCalculator  # noqa: F401,E402
from .ferroelectric import AnalyticFerroelectric  # noqa: F401,E402
