"""The field and time state of an ASE calculator under a homogeneous, possibly time-dependent field.

:class:`FieldStateMixin` is shared by every field-aware calculator of nequip-pol (the model
calculator :class:`~nequip_pol.integrations.ase.NequIPPolCalculator` and the exact calculator of
the reference materials, :class:`~nequip_pol.reference.calculator.ReferenceMaterialCalculator`),
so that the field, the time, MD bookkeeping and cache invalidation behave the same everywhere.

The field is a constant 3-vector in V/A or a function ``field(t) -> 3-vector`` of the time t
in fs, evaluated at ``calc.time``. :meth:`FieldStateMixin.attach_dynamics` keeps ``calc.time``
equal to the time of the configuration whose forces the integrator asks for (t_{n+1} = t0 +
(n + 1) dt inside step n). Reading the time from the dynamics object in an observer would be one
step late: ASE increments ``dyn.nsteps`` only after the force call of each step. Cached results
are dropped when the atoms change or when the field *value* at the current time differs from the
one they were computed at (and only then).
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional, Sequence, Union

import numpy as np
from ase import units

__all__ = ["FieldLike", "FieldStateMixin", "check_field_value"]

FieldLike = Union[Sequence[float], np.ndarray, Callable[[float], Sequence[float]], None]


def check_field_value(value, where: str = "") -> np.ndarray:
    """The field as a float64 (3,) array in V/A; ``ValueError`` naming the electric field otherwise."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"electric field{where} must be 3 numbers in V/A, got {value!r}"
        ) from err
    if arr.shape == (1, 3):
        arr = arr.reshape(3)
    if arr.shape != (3,):
        raise ValueError(
            f"electric field{where} must be a 3-vector in V/A (shape (3,)), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"electric field{where} contains NaN or infinite values: {arr.tolist()}"
        )
    return arr


class FieldStateMixin:
    """Field, time and cache bookkeeping for an ASE ``Calculator`` subclass.

    Put it before the ASE base class (``class C(FieldStateMixin, Calculator)``), call
    :meth:`_init_field_state` in ``__init__`` after the base class, and after each calculation set
    ``self.results_field = field`` (the (3,) field the results belong to) and ``self.results_time``.
    """

    results_field: Optional[np.ndarray]
    results_time: Optional[float]

    def _init_field_state(self, field: FieldLike = None, time: float = 0.0) -> None:
        self._field_fn: Optional[Callable[[float], Sequence[float]]] = None
        self._field_const = np.zeros(3)
        self._time = float(time)
        self.results_field = None
        self.results_time = None
        self.set_field(field)

    @property
    def time(self) -> float:
        """Current time in fs (where a time-dependent field is evaluated)."""
        return self._time

    @time.setter
    def time(self, value: float) -> None:
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"time must be finite, got {value}")
        self._time = value  # results are invalidated lazily, only if E(t) changes

    @property
    def field(self) -> FieldLike:
        """The field as set: a (3,) array in V/A or the callable ``t_fs -> (3,)``."""
        return (
            self._field_fn if self._field_fn is not None else self._field_const.copy()
        )

    def set_field(self, field: FieldLike) -> None:
        """Set the field: a 3-vector in V/A, a callable ``t_fs -> 3-vector``, or ``None`` (zero).

        Cached results are dropped if, and only if, the field at the current time changed.
        """
        if callable(field):
            value = check_field_value(
                field(self._time), f" returned by {field!r} at t = {self._time} fs"
            )
            self._field_fn, self._field_const = field, np.zeros(3)
        else:
            value = np.zeros(3) if field is None else check_field_value(field)
            self._field_fn, self._field_const = None, value
        if self.results_field is not None and not np.array_equal(
            value, self.results_field
        ):
            self.reset()

    def field_at(self, t: Optional[float] = None) -> np.ndarray:
        """The field (3,) in V/A at time ``t`` fs (default: ``calc.time``), validated."""
        t = self._time if t is None else float(t)
        if self._field_fn is None:
            return self._field_const.copy()
        return check_field_value(
            self._field_fn(t), f" returned by the field function at t = {t} fs"
        )

    def attach_dynamics(self, dyn, t0: Optional[float] = None) -> None:
        """Keep ``calc.time`` in step with an ASE ``MolecularDynamics`` object ``dyn``.

        After this, during step n the forces at the new positions are computed at
        t_{n+1} = t0 + (n + 1) dt (fs), and between steps ``calc.time`` is the time of the current
        configuration. ``t0`` is the time at ``dyn.nsteps == 0`` (default: chosen so that the
        current ``calc.time`` is the time now). Works with integrators whose ``step`` takes the
        forces of the current configuration (``VelocityVerlet``, ``Langevin``, ``Bussi``,
        ``Andersen``); the cached forces at (R_n, E(t_n)) are handed to the step so that the
        first half-kick does not re-evaluate them at the new time.
        """
        dt_fs = dyn.dt / units.fs
        if t0 is None:
            t0 = self._time - dyn.nsteps * dt_fs
        original_step = dyn.step
        takes_forces = "forces" in inspect.signature(original_step).parameters
        calc = self

        def step(*args, **kwargs):
            if takes_forces and not args and kwargs.get("forces") is None:
                kwargs["forces"] = dyn.atoms.get_forces(
                    md=True
                )  # at (R_n, E(t_n)): cached
            calc.time = t0 + (dyn.nsteps + 1) * dt_fs
            return original_step(*args, **kwargs)

        dyn.step = step
        self.time = t0 + dyn.nsteps * dt_fs

    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol=tol)
        if self.results_field is not None and not np.array_equal(
            self.field_at(), self.results_field
        ):
            changes.append("electric_field")
        return changes

    def reset(self):
        super().reset()
        self.results_field = None
        self.results_time = None

    def get_polarization(self, atoms=None) -> np.ndarray:
        """Cell dipole P (3,), e*A."""
        return self.get_property("polarization", atoms)

    def get_born_effective_charges(self, atoms=None) -> np.ndarray:
        """Born charges Z* (N, 3, 3), e; [i, a, b] = dP_a/dR_ib."""
        return self.get_property("born_effective_charges", atoms)

    def get_polarizability(self, atoms=None) -> np.ndarray:
        """Polarizability alpha (3, 3), e*A^2/V."""
        return self.get_property("polarizability", atoms)
