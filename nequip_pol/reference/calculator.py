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
(e*A^2/V, (3, 3)), ``atomic_dipoles`` (p_i = -dE/dE_i, e*A, (N, 3)). The Born charges and the
polarizability are computed only when asked for, the atomic dipoles when asked for or when a
per-atom field is set.

A per-atom field (``atomic_field=`` or :meth:`set_atomic_field`: (N, 3) values or a callable
``(positions, time_fs) -> (N, 3)``, added to the homogeneous field at each atom) needs a material
whose ``properties`` takes ``atomic_field`` and ``dipoles`` (both analytic materials do); the
forces then follow :mod:`~nequip_pol.integrations.field_state` (fixed values, plus the
field-gradient term for a callable), exactly.
"""

from __future__ import annotations

import inspect
from typing import Dict

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ..integrations.field_state import (
    AtomicFieldLike,
    FieldLike,
    FieldStateMixin,
    check_atomic_field_value,
    check_field_value,
)

__all__ = ["ReferenceMaterialCalculator"]

_RESPONSE_PROPERTIES = ("born_effective_charges", "polarizability")


class ReferenceMaterialCalculator(FieldStateMixin, Calculator):
    """Exact energies, forces, stress and electric response of a reference material under a field.

    Args:
        material: the reference material (default: a new :class:`AnalyticPolarMaterial`)
        field: constant field (3,) in V/A, or a callable ``t_fs -> (3,)``; ``None`` means zero
        time: initial time in fs (where a callable field is first evaluated)
        atomic_field: per-atom field, (N, 3) V/A or a callable ``(positions, time_fs) -> (N, 3)``
            (see :meth:`set_atomic_field`); ``None``: none
        atomic_field_gradient: ``gradient`` of :meth:`set_atomic_field`
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "polarization",
        "born_effective_charges",
        "polarizability",
        "atomic_dipoles",
    ]

    def __init__(
        self,
        material=None,
        field: FieldLike = None,
        time: float = 0.0,
        atomic_field: AtomicFieldLike = None,
        atomic_field_gradient="finite_differences",
        **kwargs,
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
        self._init_field_state(field, time, atomic_field, atomic_field_gradient)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        field = self.field_at()
        atomic_field = self.atomic_field_at(self.atoms)
        results = self.evaluate(
            self.atoms,
            field,
            response=any(p in _RESPONSE_PROPERTIES for p in properties),
            atomic_field=atomic_field,
            dipoles="atomic_dipoles" in properties,
        )
        self._add_field_gradient_forces(results, self.atoms)
        self.results = results
        self.results_field = field
        self.results_atomic_field = atomic_field
        self.results_time = self._time
        self.num_evaluations += 1

    def evaluate(
        self,
        atoms,
        field=None,
        response: bool = True,
        atomic_field=None,
        dipoles: bool = False,
    ) -> Dict[str, np.ndarray]:
        """All properties of ``atoms`` at ``field`` ((3,), V/A; default zero), without touching the cache.

        Returns a dict keyed like the ASE results (stress in Voigt form); ``response=False``
        leaves out the Born charges and the polarizability. ``atomic_field``: per-atom field
        values ((N, 3), V/A) added to ``field``; forces at these fixed values (no field-gradient
        term). ``atomic_dipoles`` are included with a per-atom field or ``dipoles=True``.
        """
        field = np.zeros(3) if field is None else check_field_value(field)
        extra = {}
        if atomic_field is not None:
            extra["atomic_field"] = check_atomic_field_value(atomic_field, len(atoms))
        if atomic_field is not None or dipoles:
            extra["dipoles"] = True
        if extra:
            parameters = inspect.signature(self.material.properties).parameters
            if "atomic_field" not in parameters or "dipoles" not in parameters:
                raise ValueError(
                    f"{type(self.material).__name__}.properties takes no per-atom field "
                    "(`atomic_field`, `dipoles`): this material gives no atomic dipoles and "
                    "takes no field that varies in space"
                )
        props = self.material.properties(atoms, field, response=response, **extra)
        results: Dict[str, np.ndarray] = {
            "energy": float(props["total_energy"]),
            "free_energy": float(props["total_energy"]),
            "forces": np.asarray(props["forces"]),
            "polarization": np.asarray(props["polarization"]),
        }
        if "stress" in props:
            results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(props["stress"]))
        for key in _RESPONSE_PROPERTIES + ("atomic_dipoles",):
            if key in props:
                results[key] = np.asarray(props[key])
        return results
