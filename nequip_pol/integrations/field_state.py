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

**Fields that vary in space** (:meth:`FieldStateMixin.set_atomic_field`): a per-atom field
E_i (V/A) *added to* the homogeneous field at each atom, given as an (N, 3) array of values, or as
a callable ``atomic_field(positions, time_fs) -> (N, 3)``: a field of position sampled at each
atom (row j may depend on ``positions[j]`` and the time only; the other rows are passed for
vectorised code). The model sees the values; forces are -dE/dR_i at fixed values, plus, for a
callable (``gradient="finite_differences"``, the default, or a callable gradient), the term of
the field moving with the atom, sum_a p_ia dE_a(r_i)/dr_ib, so that they are the exact forces of
E(R, E(R)) (p_i = -dE/dE_i, ``atomic_dipoles``). Stress, Z* and alpha stay derivatives at fixed
per-atom field values.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional, Sequence, Union

import numpy as np
from ase import units

__all__ = [
    "AtomicFieldLike",
    "FieldLike",
    "FieldStateMixin",
    "check_atomic_field_value",
    "check_field_value",
]

FieldLike = Union[Sequence[float], np.ndarray, Callable[[float], Sequence[float]], None]
#: per-atom field: (N, 3) values in V/A, or ``(positions (N, 3) A, time_fs) -> (N, 3)``
AtomicFieldLike = Union[np.ndarray, Callable[[np.ndarray, float], np.ndarray], None]
#: central-difference step (A) of the field-gradient force term of a callable per-atom field
GRADIENT_STEP = 1e-4


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


def check_atomic_field_value(
    value, num_atoms: Optional[int] = None, where: str = ""
) -> np.ndarray:
    """The per-atom field as a float64 (N, 3) array in V/A; ``ValueError`` naming it otherwise.

    ``num_atoms``: the N it must have (None: any).
    """
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"per-atom electric field{where} must be an (N, 3) array in V/A, got {value!r}"
        ) from err
    if (
        arr.ndim != 2
        or arr.shape[1] != 3
        or (num_atoms is not None and arr.shape[0] != num_atoms)
    ):
        n = "N" if num_atoms is None else str(num_atoms)
        raise ValueError(
            f"per-atom electric field{where} must have shape (number of atoms, 3) = ({n}, 3) "
            f"in V/A, got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(
            f"per-atom electric field{where} contains NaN or infinite values "
            f"(atoms {np.nonzero(bad)[0][:5].tolist()}, first ones)"
        )
    return arr


def strongest_field(
    field: np.ndarray, atomic_field: Optional[np.ndarray]
) -> np.ndarray:
    """The total field (3,) of the atom where |E + E_i| is largest (``field`` without a per-atom
    field): what the extrapolation guard checks."""
    if atomic_field is None or len(atomic_field) == 0:
        return field
    total = field + atomic_field
    return total[int(np.argmax((total * total).sum(-1)))]


class FieldStateMixin:
    """Field, time and cache bookkeeping for an ASE ``Calculator`` subclass.

    Put it before the ASE base class (``class C(FieldStateMixin, Calculator)``), call
    :meth:`_init_field_state` in ``__init__`` after the base class, and after each calculation set
    ``self.results_field = field`` (the (3,) field the results belong to) and ``self.results_time``.
    """

    results_field: Optional[np.ndarray]
    results_time: Optional[float]

    def _init_field_state(
        self,
        field: FieldLike = None,
        time: float = 0.0,
        atomic_field: AtomicFieldLike = None,
        atomic_field_gradient="finite_differences",
    ) -> None:
        self._field_fn: Optional[Callable[[float], Sequence[float]]] = None
        self._field_const = np.zeros(3)
        self._atomic_field: AtomicFieldLike = None
        self._atomic_field_gradient = None
        self._time = float(time)
        self.results_field = None
        self.results_time = None
        #: the per-atom field (N, 3) the cached results were computed at (None: none given)
        self.results_atomic_field: Optional[np.ndarray] = None
        self.set_field(field)
        self.set_atomic_field(atomic_field, gradient=atomic_field_gradient)

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

    # ------------------------------------------------------------------ per-atom field
    @property
    def atomic_field(self) -> AtomicFieldLike:
        """The per-atom field as set: an (N, 3) array in V/A, the callable, or None."""
        value = self._atomic_field
        return value.copy() if isinstance(value, np.ndarray) else value

    def set_atomic_field(
        self, atomic_field: AtomicFieldLike, gradient="finite_differences"
    ) -> None:
        """Set a per-atom field, added to the homogeneous field at each atom (V/A).

        Args:
            atomic_field: ``None`` (none), an (N, 3) array of values (held fixed: forces are
                -dE/dR at these values), or a callable ``(positions (N, 3) A, time_fs) -> (N, 3)``,
                a field of position sampled at each atom (row j may depend only on
                ``positions[j]`` and the time), evaluated at every calculation
            gradient: for a callable, how the forces get the term of the field moving with the
                atom, F_ib += sum_a p_ia dE_a(r_i)/dr_ib: ``"finite_differences"`` (default:
                central differences of the callable, step :data:`GRADIENT_STEP` A, six calls),
                a callable ``(positions, time_fs) -> (N, 3, 3)`` with [i, a, b] = dE_a/dr_b at
                atom i (V/A^2), or ``None`` (left out: forces at fixed field values, not the
                gradient of the energy). Must be ``None`` or the default for an array.

        Cached results are dropped if, and only if, the per-atom field at the current positions
        and time changed.
        """
        if atomic_field is None:
            fn, gradient = None, None
        elif callable(atomic_field):
            fn = atomic_field
            if gradient is not None and gradient != "finite_differences":
                if not callable(gradient):
                    raise ValueError(
                        "`gradient` of a per-atom field must be 'finite_differences', None or a "
                        f"callable (positions, time_fs) -> (N, 3, 3), got {gradient!r}"
                    )
        else:
            if callable(gradient):
                raise ValueError(
                    "a per-atom field given as values has no gradient: give the field as a "
                    "callable (positions, time_fs) -> (N, 3) to include the field-gradient forces"
                )
            fn, gradient = check_atomic_field_value(atomic_field), None
        self._check_atomic_field_allowed(fn)
        same_gradient = gradient is self._atomic_field_gradient or (
            isinstance(gradient, str) and gradient == self._atomic_field_gradient
        )
        self._atomic_field, self._atomic_field_gradient = fn, gradient
        atoms = getattr(self, "atoms", None)
        if self.results_field is not None and atoms is not None:
            value = self.atomic_field_at(atoms)
            old = self.results_atomic_field
            if (
                not same_gradient
                or (value is None) != (old is None)
                or (value is not None and not np.array_equal(value, old))
            ):
                self.reset()

    def _check_atomic_field_allowed(self, atomic_field: AtomicFieldLike) -> None:
        """Subclasses refuse a per-atom field where they cannot use one (a ``ValueError``)."""

    def atomic_field_at(self, atoms, t: Optional[float] = None) -> Optional[np.ndarray]:
        """The per-atom field (N, 3) in V/A of ``atoms`` (or an (N, 3) array of positions) at
        time ``t`` fs (default: ``calc.time``), validated; None when none is set."""
        if self._atomic_field is None:
            return None
        positions = np.asarray(getattr(atoms, "positions", atoms), dtype=np.float64)
        if not callable(self._atomic_field):
            return check_atomic_field_value(self._atomic_field, len(positions))
        t = self._time if t is None else float(t)
        return check_atomic_field_value(
            self._atomic_field(positions.copy(), t),
            len(positions),
            f" returned by the per-atom field function at t = {t} fs",
        )

    def atomic_field_gradient_at(
        self, atoms, t: Optional[float] = None
    ) -> Optional[np.ndarray]:
        """dE_a/dr_b of a callable per-atom field at each atom, (N, 3, 3) [i, a, b] in V/A^2;
        None for values, no field, or ``gradient=None``."""
        if not callable(self._atomic_field) or self._atomic_field_gradient is None:
            return None
        positions = np.asarray(getattr(atoms, "positions", atoms), dtype=np.float64)
        t = self._time if t is None else float(t)
        n = len(positions)
        if callable(self._atomic_field_gradient):
            grad = np.array(self._atomic_field_gradient(positions.copy(), t), float)
            if grad.shape != (n, 3, 3) or not np.isfinite(grad).all():
                raise ValueError(
                    f"the per-atom field gradient at t = {t} fs must be a finite (N, 3, 3) = "
                    f"({n}, 3, 3) array in V/A^2, got shape {grad.shape}"
                )
            return grad
        # central differences, all atoms moved at once: row j depends on positions[j] only
        grad = np.zeros((n, 3, 3))
        for b in range(3):
            shift = np.zeros(3)
            shift[b] = GRADIENT_STEP
            plus = self.atomic_field_at(positions + shift, t)
            minus = self.atomic_field_at(positions - shift, t)
            grad[:, :, b] = (plus - minus) / (2.0 * GRADIENT_STEP)
        return grad

    def _add_field_gradient_forces(self, results: dict, atoms) -> None:
        """Add sum_a p_ia dE_a(r_i)/dr_ib to ``results["forces"]`` for a callable per-atom field."""
        grad = self.atomic_field_gradient_at(atoms)
        if grad is None:
            return
        if "atomic_dipoles" not in results:
            raise ValueError(
                "the forces of a per-atom field that follows the atoms need the atomic dipoles "
                "p_i = -dE/dE_i, which this model does not output; set_atomic_field(..., "
                "gradient=None) gives the forces at fixed field values"
            )
        dipoles = np.asarray(results["atomic_dipoles"])
        results["forces"] = results["forces"] + np.einsum("ia,iab->ib", dipoles, grad)

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
        if not changes and self.results_field is not None:
            value, old = self.atomic_field_at(atoms), self.results_atomic_field
            if (value is None) != (old is None) or (
                value is not None and not np.array_equal(value, old)
            ):
                changes.append("atomic_electric_field")
        return changes

    def reset(self):
        super().reset()
        self.results_field = None
        self.results_time = None
        self.results_atomic_field = None

    def get_polarization(self, atoms=None) -> np.ndarray:
        """Cell dipole P (3,), e*A."""
        return self.get_property("polarization", atoms)

    def get_born_effective_charges(self, atoms=None) -> np.ndarray:
        """Born charges Z* (N, 3, 3), e; [i, a, b] = dP_a/dR_ib."""
        return self.get_property("born_effective_charges", atoms)

    def get_atomic_dipoles(self, atoms=None) -> np.ndarray:
        """Per-atom dipoles p_i = -dE/dE_i (N, 3), e*A; they sum to P."""
        return self.get_property("atomic_dipoles", atoms)

    def get_polarizability(self, atoms=None) -> np.ndarray:
        """Polarizability alpha (3, 3), e*A^2/V."""
        return self.get_property("polarizability", atoms)
