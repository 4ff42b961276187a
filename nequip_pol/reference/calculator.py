"""An exact ASE calculator for the reference materials of :mod:`nequip_pol.reference`.

:class:`ReferenceMaterialCalculator` wraps any reference material, i.e. any object with a method
``properties(atoms, field, response=True) -> dict`` (keys ``total_energy``, ``forces``,
``stress`` (3, 3), ``polarization``, ``born_effective_charges``, ``polarizability``) such as
:class:`~nequip_pol.reference.AnalyticPolarMaterial`, and gives the same ASE properties, field
handling (static or time-dependent field, ``calc.time``, ``attach_dynamics``) and cache rules as
the model calculator :class:`~nequip_pol.integrations.ase.NequIPPolCalculator`. Analysis code and
tests can therefore run the same workflow on the exact material and on a trained model and
compare the two.

Properties: ``energy``/``free_energy`` (E(R, E), eV), ``forces`` (eV/A, (N, 3)), ``stress``
(eV/A^3, Voigt, periodic cells only), ``polarization`` (cell dipole, e*A, (3,)),
``born_effective_charges`` (e, (N, 3, 3), ``[i, a, b] = dP_a/dR_ib``), ``polarizability``
(e*A^2/V, (3, 3)). The Born charges and the polarizability are computed only when asked for.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ..integrations.field_state import FieldLike, FieldStateMixin, check_field_value

__all__ = ["ReferenceMaterialCalculator"]

_RESPONSE_PROPERTIES = ("born_effective_charges", "polarizability")


class ReferenceMaterialCalculator(FieldStateMixin, Calculator):
    """Exact energies, forces, stress and electric response of a reference material under a field.

    Args:
        material: the reference material (default: a new :class:`AnalyticPolarMaterial`)
        field: constant field (3,) in V/A, or a callable ``t_fs -> (3,)``; ``None`` means zero
        time: initial time in fs (where a callable field is first evaluated)
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "polarization",
        "born_effective_charges",
        "polarizability",
    ]

    def __init__(
        self, material=None, field: FieldLike = None, time: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        if material is None:
            from .paraelectric import AnalyticPolarMaterial

            material = AnalyticPolarMaterial()
        if not callable(getattr(material, "properties", None)):
            raise TypeError(
                f"`material` must have a method `properties(atoms, field)`, got {type(material).__name__}"
            )
        self.material = material
        self.num_evaluations = 0
        self._init_field_state(field, time)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        field = self.field_at()
        self.results = self.evaluate(
            self.atoms,
            field,
            response=any(p in _RESPONSE_PROPERTIES for p in properties),
        )
        self.results_field = field
        self.results_time = self._time
        self.num_evaluations += 1

    def evaluate(
        self, atoms, field=None, response: bool = True
    ) -> Dict[str, np.ndarray]:
        """All properties of ``atoms`` at ``field`` ((3,), V/A; default zero), without touching the cache.

        Returns a dict keyed like the ASE results (stress in Voigt form); ``response=False``
        leaves out the Born charges and the polarizability.
        """
        field = np.zeros(3) if field is None else check_field_value(field)
        props = self.material.properties(atoms, field, response=response)
        results: Dict[str, np.ndarray] = {
            "energy": float(props["total_energy"]),
            "free_energy": float(props["total_energy"]),
            "forces": np.asarray(props["forces"]),
            "polarization": np.asarray(props["polarization"]),
        }
        if "stress" in props:
            results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(props["stress"]))
        for key in _RESPONSE_PROPERTIES:
            if key in props:
                results[key] = np.asarray(props[key])
        return results
