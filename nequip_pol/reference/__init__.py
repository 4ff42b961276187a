"""Reference materials with exactly known field-dependent energies (no DFT needed).

- :mod:`~nequip_pol.reference.paraelectric`: the analytic paraelectric perovskite
  (:class:`AnalyticPolarMaterial`, MODEL ``reference:paraelectric``)
- :mod:`~nequip_pol.reference.ferroelectric`: the same plus a B-site double well
  (:class:`AnalyticFerroelectric`, MODEL ``reference:ferroelectric``)
- :mod:`~nequip_pol.reference.dataset`: labelled data sets of the paraelectric material
- :mod:`~nequip_pol.reference.calculator`: the exact ASE calculator of either
"""

from .paraelectric import (  # noqa: F401
    CUTOFF,
    LATTICE_CONSTANT,
    TYPE_NAMES,
    AnalyticPolarMaterial,
    ideal_structure,
)
from .dataset import (  # noqa: F401
    dataset_statistics,
    generate_dataset,
    read_dataset,
    write_dataset,
)
from .calculator import ReferenceMaterialCalculator  # noqa: F401,E402
from .ferroelectric import AnalyticFerroelectric  # noqa: F401,E402
