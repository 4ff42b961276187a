"""ASE calculator for field-aware (nequip-pol) models: energy, forces and response under a field.

:class:`NequIPPolCalculator` evaluates a model of the electric enthalpy E(R, E) (eV) at the
current homogeneous field E (V/A) and returns, as ASE properties:

==========================  ==============  =================================================
``energy``, ``free_energy``  eV              the electric enthalpy E(R, E) at the current field
``energies``                 eV, (N,)        per-atom enthalpies (``mode="full"`` only)
``forces``                   eV/A, (N, 3)    F = -dE/dR at fixed field
``stress``                   eV/A^3, Voigt   (1/V) dE/d(strain) at fixed field
``polarization``             e*A, (3,)       cell dipole P = -dE/dE
``born_effective_charges``   e, (N, 3, 3)    Z*_i,ab = dP_a/dR_ib
``polarizability``           e*A^2/V, (3,3)  alpha_ab = dP_a/dE_b
``atomic_dipoles``           e*A, (N, 3)     p_i = -dE/dE_i (sum_i p_i = P)
==========================  ==============  =================================================

Loading::

    from nequip_pol.integrations.ase import NequIPPolCalculator
    # deployment: AOTInductor model compiled with `--target nequip_pol_ase`
    calc = NequIPPolCalculator.from_compiled_model("model.nequip.pt2", chemical_species_to_atom_type_map=True)
    # development: a checkpoint (.ckpt) or a package (.nequip.zip), evaluated eagerly
    calc = NequIPPolCalculator.from_saved_model("best.ckpt", chemical_species_to_atom_type_map=True)

The field (``field=`` argument or :meth:`NequIPPolCalculator.set_field`, any time) is either a
constant 3-vector in V/A or a function ``field(t) -> 3-vector`` of the time t in fs.

**Fields that vary in space.** ``atomic_field=`` (or ``set_atomic_field``) adds a per-atom field,
(N, 3) values or a callable ``(positions, time_fs) -> (N, 3)``, to the homogeneous one; what P,
alpha and the forces then contain: :mod:`~nequip_pol.integrations.field_state` and
``docs/simulate.md``. Full mode and eager models (``from_saved_model``) only.

**Time.** The calculator evaluates a time-dependent field at ``calc.time`` (fs). You may set
``calc.time`` yourself; for MD call :meth:`NequIPPolCalculator.attach_dynamics` once, which keeps
``calc.time`` equal to the time of the configuration whose forces the integrator asks for
(t_{n+1} = t0 + (n + 1) dt inside step n, so the kick with F(R_{n+1}, E(t_{n+1})) is consistent;
after the step ``calc.time == t0 + dyn.get_time() / ase.units.fs``). Reading the time from the
dynamics object directly would be wrong by one step: ASE increments ``dyn.nsteps`` only after the
force call of each step.

**Caching.** Results are cached as in any ASE calculator and recomputed when the atoms change
or when the field *value* at the current time differs from the field the results were computed
at (and only then): setting the same field again, or advancing the time under a static field,
costs nothing. ``calc.num_evaluations`` counts model calls; ``calc.results_field`` and
``calc.results_time`` tell where the cached results were computed.

**Modes.**

- ``mode="full"`` (default): the field is a model input; all nonlinear response is included.
- ``mode="linear"``: the model is evaluated once at zero field, giving E0, F0, P0, Z*0, alpha0,
  and the field enters to first order, as in the published LAMMPS workflow (fix efield with
  Born charges): ``F_ib = F0_ib + sum_a Z*0_i,ab E_a``, ``energy = E0 - E.P0``,
  ``P = P0 + alpha0 E``; Z* and alpha are the zero-field values, and the stress is the
  zero-field stress (its field term is not available in this mode). The energy leaves out
  ``-1/2 E.alpha0.E`` on purpose: with it the forces above would no longer be its exact
  negative gradient, and NVE would not conserve ``kinetic + energy``. Linear and full mode agree
  to first order in E: energy, forces and P differ by O(|E|^2).

Errors: a field of the wrong shape or with NaN/inf, species the model does not know, a missing
model file, a model without the field input or without response outputs asked for them (e.g.
compiled with the ``energy_forces_only`` modifier or with nequip's stock ``ase`` target) all raise
an exception that names the problem.

The loaders (file checks, the compile target, the training ranges and the extrapolation guard)
are in :mod:`~nequip_pol.integrations.model_loading`; the field and time state in
:mod:`~nequip_pol.integrations.field_state`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from ase.calculators.calculator import (
    Calculator,
    PropertyNotImplementedError,
    all_changes,
)
from ase.stress import full_3x3_to_voigt_6_stress

from nequip.data import AtomicDataDict
from nequip.integrations.ase import NequIPCalculator

from .field_state import (
    AtomicFieldLike,
    FieldLike,
    FieldStateMixin,
    check_atomic_field_value,
    check_field_value,
    strongest_field,
)
from .model_loading import (
    ASE_TARGET_NAME,
    ase_compile_target,
    eager_model_keys,
    load_compiled_calculator,
    load_saved_calculator,
    make_guard,
)
from .._keys import (
    ELECTRIC_FIELD_KEY,
    ATOMIC_ELECTRIC_FIELD_KEY,
    ATOMIC_DIPOLE_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
)

__all__ = ["NequIPPolCalculator", "FieldLike", "AtomicFieldLike"]

MODES = ("full", "linear")
_LINEAR_ATOMIC_FIELD = (
    "a per-atom field needs mode='full': the linear mode adds the field through the zero-field "
    "Born charges of a homogeneous field"
)
_RESPONSE_PROPERTIES = {
    "polarization": POLARIZATION_KEY,
    "born_effective_charges": BORN_CHARGE_KEY,
    "polarizability": POLARIZABILITY_KEY,
    "atomic_dipoles": ATOMIC_DIPOLE_KEY,
}


class NequIPPolCalculator(FieldStateMixin, NequIPCalculator):
    """ASE calculator for nequip-pol models under a homogeneous, possibly time-dependent field.

    Prefer the constructors :meth:`from_compiled_model` (AOTInductor, ``--target
    nequip_pol_ase``) and :meth:`from_saved_model` (checkpoint or package, eager); see the module
    docstring for properties, time handling, caching and the two modes.

    Args:
        model: a field-aware model in eval mode (eager ``GraphModel`` or a loaded compiled model)
        device: device to evaluate on
        field: constant field (3,) in V/A, or a callable ``t_fs -> (3,)``; ``None`` means zero
        mode: ``"full"`` or ``"linear"``
        time: initial time in fs (where a callable field is first evaluated)
        atomic_field, atomic_field_gradient: a per-atom field added to ``field`` and how the
            forces get its gradient term (``set_atomic_field``); ``None``: none
        transforms: data transforms (type mapper and neighbour list; set by the constructors)
        input_keys, output_keys: the inputs and outputs of a compiled model (set by
            :meth:`from_compiled_model`); for eager models they are read from the model
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "energies",
        "forces",
        "stress",
        "polarization",
        "born_effective_charges",
        "polarizability",
        "atomic_dipoles",
    ]

    @classmethod
    def _get_aoti_compile_target(cls) -> Dict:
        return ase_compile_target()

    def __init__(
        self,
        model: torch.nn.Module,
        device: Union[str, torch.device] = "cpu",
        field: FieldLike = None,
        mode: str = "full",
        time: float = 0.0,
        atomic_field: AtomicFieldLike = None,
        atomic_field_gradient="finite_differences",
        transforms: Optional[List[Callable]] = None,
        input_keys: Optional[Sequence[str]] = None,
        output_keys: Optional[Sequence[str]] = None,
        energy_units_to_eV: float = 1.0,
        length_units_to_A: float = 1.0,
        **kwargs,
    ):
        if energy_units_to_eV != 1.0 or length_units_to_A != 1.0:
            raise ValueError(
                "nequip-pol models work in eV, A, V/A and e*A: `energy_units_to_eV` and "
                "`length_units_to_A` must be 1"
            )
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
        super().__init__(
            model=model, device=device, transforms=list(transforms or []), **kwargs
        )
        self.mode = mode
        eager_inputs, eager_outputs = eager_model_keys(model)
        input_keys = eager_inputs if input_keys is None else input_keys
        output_keys = eager_outputs if output_keys is None else output_keys
        self.input_keys = None if input_keys is None else list(input_keys)
        self.output_keys = None if output_keys is None else list(output_keys)
        self._type_lookup, self._species_map = self._find_type_mapper()
        self.num_evaluations = 0
        if mode == "linear":
            self._require_outputs(
                [POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY], "mode='linear'"
            )
        self._init_field_state(field, time, atomic_field, atomic_field_gradient)
        #: the extrapolation guard (nequip_pol.guards.ExtrapolationGuard) or None; set by the loaders
        self.guard = None

    # ------------------------------------------------------------------ loading
    # The loaders' keyword arguments and defaults are those of the functions in
    # model_loading, which these constructors call (one list of them, documented there).
    @classmethod
    def from_compiled_model(
        cls,
        compile_path: Union[str, Path],
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> "NequIPPolCalculator":
        """Load an AOTInductor model (``nequip-compile ... --mode aotinductor --target nequip_pol_ase``).

        The inputs and outputs are read from the artifact's metadata, so that a model compiled
        for another target fails here with a message naming the target, and a model without
        response outputs can still give energies and forces (asking it for P, Z* or alpha, or
        using ``mode="linear"``, raises an error that says so). Keyword arguments
        (:func:`~nequip_pol.integrations.model_loading.load_compiled_calculator`):
        ``chemical_species_to_atom_type_map``, ``neighborlist_backend``,
        ``neighborlist_backend_kwargs``; ``guard`` (default ``"warn"``), ``guard_options``: the
        extrapolation guard, see :meth:`set_guard`; the others go to the constructor
        (``field``, ``mode``, ``time``, ...).
        """
        return load_compiled_calculator(cls, compile_path, device=device, **kwargs)

    @classmethod
    def _from_saved_model(
        cls,
        model_path: Union[str, Path],
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> "NequIPPolCalculator":
        """Load a checkpoint (``.ckpt``) or package (``.nequip.zip``) for eager evaluation.

        Keyword arguments (:func:`~nequip_pol.integrations.model_loading.load_saved_calculator`):
        ``chemical_species_to_atom_type_map``; ``modifiers``: names of model modifiers to
        apply first (e.g. ``["disable_born_charges"]``, ``["energy_forces_only"]``); ``guard``
        (default ``"warn"``), ``guard_options``: the extrapolation guard (the training range is
        read from a checkpoint written with ``nequip_pol.guards.TrainingRangeRecorder``), see
        :meth:`set_guard`. Others as in nequip's ``NequIPCalculator._from_saved_model``
        (``allow_tf32``, ``model_name``, ``compile_mode``, ``neighborlist_backend``) or for the
        constructor (``field``, ``mode``, ``time``, ...).
        """
        return load_saved_calculator(
            super()._from_saved_model, model_path, device=device, **kwargs
        )

    def set_guard(
        self,
        guard: Union[str, dict, None] = "warn",
        ranges: Optional[dict] = None,
        **options,
    ) -> None:
        """Set the extrapolation guard (:class:`nequip_pol.guards.ExtrapolationGuard`).

        ``guard``: ``"warn"`` (warn once, then count; :attr:`guard` ``.report()`` gives the
        counts, printed at exit when any), ``"strict"`` (raise ``ExtrapolationError``), ``"off"``
        or ``None`` (no checks), or a dict of training ranges
        (:func:`nequip_pol.guards.data_ranges`) to use instead of the model's. ``ranges``: the
        model's recorded ranges (``None``: an old model; the guard says once that it is off).
        ``options``: ``field_factor`` (default 1.2), ``distance_factor`` (default 1.0).
        """
        name = getattr(self, "model_path", None) or "model"
        self.guard = make_guard(guard, ranges, name=str(name), **options)

    @classmethod
    def from_saved_model(
        cls, model_path, device="cpu", **kwargs
    ) -> "NequIPPolCalculator":
        """Public alias of :meth:`_from_saved_model` (checkpoint or package, eager)."""
        return cls._from_saved_model(model_path, device=device, **kwargs)

    @property
    def model_dtype(self) -> Optional[str]:
        """The model's floating-point precision, ``"float32"`` or ``"float64"`` (None if unknown).

        From the eager model's ``model_dtype`` or, for a compiled model, from its metadata. It
        sets how far a relaxation can converge the forces (float32: ~1e-6 eV/A of noise).
        """
        compiled = getattr(self, "_compiled_dtype", None)
        if compiled is not None:
            return str(compiled)
        dtype = getattr(self.model, "model_dtype", None)
        return {torch.float32: "float32", torch.float64: "float64"}.get(dtype)

    # ------------------------------------------------------------------ field and time
    def set_mode(self, mode: str) -> None:
        """Switch between ``"full"`` and ``"linear"`` (drops cached results)."""
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
        if mode == "linear":
            self._require_outputs(
                [POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY], "mode='linear'"
            )
            if self._atomic_field is not None:
                raise ValueError(_LINEAR_ATOMIC_FIELD)
        if mode != self.mode:
            self.mode = mode
            self.reset()

    def _check_atomic_field_allowed(self, atomic_field: AtomicFieldLike) -> None:
        if atomic_field is None:
            return
        if self.mode == "linear":
            raise ValueError(_LINEAR_ATOMIC_FIELD)
        self._require_atomic_field_input()

    def _require_atomic_field_input(self) -> None:
        if (
            self.input_keys is not None
            and ATOMIC_ELECTRIC_FIELD_KEY not in self.input_keys
        ):
            raise ValueError(
                f"this model takes no per-atom field (`{ATOMIC_ELECTRIC_FIELD_KEY}`; inputs "
                f"{self.input_keys}): compile it with `--target nequip_pol_ase_atomic_field`, "
                "or load the training checkpoint with `from_saved_model` (packages written by an "
                "older nequip-pol: package it again with this one)"
            )

    # ------------------------------------------------------------------ ASE machinery
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """"""
        Calculator.calculate(self, atoms)
        field = self.field_at()
        atomic_field = self.atomic_field_at(self.atoms)
        missing = [
            p
            for p in properties
            if p in _RESPONSE_PROPERTIES
            and not self._has_output(_RESPONSE_PROPERTIES[p])
        ]
        if missing:
            raise PropertyNotImplementedError(
                self._missing_outputs_message(missing, f"the properties {missing}")
            )
        if self.guard is not None:
            self.guard.check(self.atoms, strongest_field(field, atomic_field))
        results = self.evaluate(self.atoms, field, atomic_field=atomic_field)
        missing = [
            p for p in properties if p in _RESPONSE_PROPERTIES and p not in results
        ]
        if missing == ["atomic_dipoles"] and self.mode == "linear":
            raise PropertyNotImplementedError("atomic dipoles at a field: mode='full'")
        if missing:
            raise PropertyNotImplementedError(
                self._missing_outputs_message(missing, f"the properties {missing}")
            )
        self._add_field_gradient_forces(results, self.atoms)
        self.results = results
        self.results_field = field
        self.results_atomic_field = atomic_field
        self.results_time = self._time
        self.num_evaluations += 1

    def evaluate(
        self, atoms, field=None, mode: Optional[str] = None, atomic_field=None
    ) -> Dict[str, np.ndarray]:
        """All properties of ``atoms`` at ``field`` ((3,), V/A; default zero), without touching the cache.

        ``atomic_field``: per-atom field values ((N, 3), V/A) added to ``field`` (full mode);
        the forces are at these fixed values (no field-gradient term). Returns a dict keyed like
        the ASE results (stress in Voigt form).
        """
        mode = self.mode if mode is None else mode
        field = np.zeros(3) if field is None else check_field_value(field)
        if atomic_field is not None:
            if mode != "full":
                raise ValueError(_LINEAR_ATOMIC_FIELD)
            atomic_field = check_atomic_field_value(atomic_field, len(atoms))
        self._check_species(atoms)
        data = self.atoms_to_data(atoms)
        if mode == "full" or not field.any():
            out = self._run_model(data, field, atomic_field)
            return self._results_from_output(out, len(atoms), per_atom=True)
        # linear: zero-field model + first-order field terms
        out = self._run_model(data, np.zeros(3))
        zero = self._results_from_output(out, len(atoms), per_atom=False)
        p0, z0, alpha0 = (
            zero["polarization"],
            zero["born_effective_charges"],
            zero["polarizability"],
        )
        results = dict(zero)
        results["energy"] = zero["energy"] - float(field @ p0)
        results["free_energy"] = results["energy"]
        results["forces"] = zero["forces"] + np.einsum("iab,a->ib", z0, field)
        results["polarization"] = p0 + alpha0 @ field
        results.pop("atomic_dipoles", None)  # their field dependence is not known here
        return results

    # ------------------------------------------------------------------ helpers
    def _has_output(self, key: str) -> bool:
        return self.output_keys is None or key in self.output_keys

    def _missing_outputs_message(self, missing, what: str) -> str:
        return (
            f"{what} need model outputs that this model does not compute: it has outputs "
            f"{self.output_keys}. It was built or compiled without the electric response (e.g. "
            f"with the `energy_forces_only` modifier, or with nequip's stock `ase` compile target "
            f"instead of `--target {ASE_TARGET_NAME}`); recompile with `--target {ASE_TARGET_NAME}` "
            f"and without `energy_forces_only` (or apply the `enable_all_response` modifier)"
        )

    def _require_outputs(self, keys: Sequence[str], what: str) -> None:
        missing = [k for k in keys if not self._has_output(k)]
        if missing:
            raise ValueError(self._missing_outputs_message(missing, what))

    def _find_type_mapper(self):
        from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper

        for t in self.transforms:
            if isinstance(t, ChemicalSpeciesToAtomTypeMapper):
                return t.lookup_table.cpu().numpy(), list(t.model_type_names)
        return None, None

    def _check_species(self, atoms) -> None:
        if self._type_lookup is None:
            return
        numbers = np.asarray(atoms.numbers)
        bad = (numbers >= len(self._type_lookup)) | (numbers < 0)
        bad[~bad] = self._type_lookup[numbers[~bad]] < 0
        if bad.any():
            symbols = sorted(
                {str(s) for s in np.asarray(atoms.get_chemical_symbols())[bad]}
            )
            raise ValueError(
                f"unknown species {symbols}: not in this model's type names {self._species_map} "
                "(or not in `chemical_species_to_atom_type_map`)"
            )

    def _run_model(
        self,
        data: AtomicDataDict.Type,
        field: np.ndarray,
        atomic_field: Optional[np.ndarray] = None,
    ) -> AtomicDataDict.Type:
        takes_field = self.input_keys is None or ELECTRIC_FIELD_KEY in self.input_keys
        if takes_field:
            pos = data[AtomicDataDict.POSITIONS_KEY]
            data[ELECTRIC_FIELD_KEY] = (
                torch.as_tensor(field, dtype=torch.float64)
                .view(1, 3)
                .contiguous()
                .to(pos.device)
            )
        elif field.any():
            raise ValueError(
                f"this model takes no `{ELECTRIC_FIELD_KEY}` input (inputs {self.input_keys}; compiled with "
                f"nequip's stock `ase` target?), so it cannot be evaluated at a nonzero field in mode='full'; "
                f"recompile with `--target {ASE_TARGET_NAME}`"
            )
        if atomic_field is not None:
            self._require_atomic_field_input()
            pos = data[AtomicDataDict.POSITIONS_KEY]
            data[ATOMIC_ELECTRIC_FIELD_KEY] = torch.as_tensor(
                atomic_field, dtype=torch.float64
            ).to(pos.device)
        out = self.call_model(data)
        if (
            self.output_keys is not None
        ):  # only what the model declares (a compiled model returns no more)
            out = {k: v for k, v in out.items() if k in self.output_keys}
        return out

    def _results_from_output(
        self, out: AtomicDataDict.Type, num_atoms: int, per_atom: bool
    ) -> Dict[str, np.ndarray]:
        def get(key):
            return out[key].detach().cpu().to(torch.float64).numpy()

        results: Dict[str, np.ndarray] = {}
        energy = float(get(AtomicDataDict.TOTAL_ENERGY_KEY).reshape(()))
        results["energy"] = energy
        results["free_energy"] = energy
        if per_atom and AtomicDataDict.PER_ATOM_ENERGY_KEY in out:
            results["energies"] = get(AtomicDataDict.PER_ATOM_ENERGY_KEY).reshape(
                num_atoms
            )
        results["forces"] = get(AtomicDataDict.FORCE_KEY).reshape(num_atoms, 3)
        if (
            AtomicDataDict.STRESS_KEY in out
            and out[AtomicDataDict.STRESS_KEY].numel() == 9
        ):
            results["stress"] = full_3x3_to_voigt_6_stress(
                get(AtomicDataDict.STRESS_KEY).reshape(3, 3)
            )
        if POLARIZATION_KEY in out:
            results["polarization"] = get(POLARIZATION_KEY).reshape(3)
        if BORN_CHARGE_KEY in out:
            results["born_effective_charges"] = get(BORN_CHARGE_KEY).reshape(
                num_atoms, 3, 3
            )
        if POLARIZABILITY_KEY in out:
            results["polarizability"] = get(POLARIZABILITY_KEY).reshape(3, 3)
        if ATOMIC_DIPOLE_KEY in out:
            results["atomic_dipoles"] = get(ATOMIC_DIPOLE_KEY).reshape(num_atoms, 3)
        return results
