"""Tracking the polarization along an ASE MD trajectory under a (time-dependent) field.

:class:`PolarizationLogger` is an ASE observer: attach it to a dynamics object and it writes one
CSV line per call with the time t (fs), the field E(t) (V/A), the cell dipole P(t) (e*A) and,
optionally, P(t) - P_ref, the polarizability alpha(t), the potential energy (the electric
enthalpy E(R, E(t)), eV), the kinetic energy and their sum, and the accumulated field work::

    from ase.md.verlet import VelocityVerlet
    from nequip_pol.integrations.ase import NequIPPolCalculator
    from nequip_pol.integrations.md import PolarizationLogger, read_polarization_log

    calc = NequIPPolCalculator.from_compiled_model("model.nequip.pt2", chemical_species_to_atom_type_map=True,
                                                   field=lambda t: [0.0, 0.0, 0.05 * np.sin(2 * np.pi * t / 100.0)])
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * ase.units.fs)
    calc.attach_dynamics(dyn)                 # calc.time follows the MD time (needed for E(t))
    with PolarizationLogger(atoms, "pol.csv", dyn=dyn, reference="initial") as log:
        dyn.attach(log, interval=1)
        dyn.run(1000)
    data = read_polarization_log("pol.csv")    # dict of numpy arrays keyed by column name

**P is continuous.** The model's P(R, E) is a smooth function of the positions: along a
trajectory it changes continuously and never jumps by a quantum e*R (R a lattice vector) as
Berry-phase values folded into one branch do. Its absolute value carries a convention (the
branch of the training data, a possible ``polarization_offset_fractional``); what is physical
is a *difference*. The cell dipole relative to a reference structure is P - P(reference): pass
``reference=`` an ``ase.Atoms`` (P of that structure at zero field, evaluated with the same
model), a 3-vector (e*A) you computed yourself, or ``"initial"`` (P of the first recorded frame,
at its field). The columns ``dPx, dPy, dPz`` then hold P - P_ref; ``Px, Py, Pz`` are always the
raw model values. Divide by the cell volume (column ``volume``, A^3) for a polarization density.

**Energy bookkeeping.** ``epot`` is the electric enthalpy E(R, E(t)). Under a static field,
NVE conserves ``etot = ekin + epot``. Under a time-dependent field, d(etot)/dt = dE/dt|_R =
-P.dE/dt, and the column ``field_work`` accumulates -integral P.dE (trapezoid rule over the
logged frames, exact to O(interval^2)), so ``etot - field_work`` is conserved. Log every step
(``interval=1``) when you use it.

**Fields that vary in space.** With a per-atom field on the calculator (``set_atomic_field``),
the columns ``Ex, Ey, Ez`` hold the homogeneous part only and P is -dE/dE (its response to a
uniform change, the sum of the per-atom dipoles p_i). ``atomic_dipoles="p.npy"`` also records
p_i (e*A) of every row: written at :meth:`PolarizationLogger.close` as an array (rows, N, 3),
row k belonging to CSV row k (its step and time); ``atomic_dipoles=True`` keeps them in memory
only (:attr:`PolarizationLogger.atomic_dipole_frames`). ``field_work`` includes the work of a
changing per-atom field, -integral sum_i p_i . dE_i/dt|_R dt (the explicit time change at fixed
positions; the motion through a field of position is in the forces), by the same trapezoid
rule.

**One recorder.** The same observer records P(t) for every driver of the project (the loop MD of
:func:`nequip_pol.analysis.loop_drivers.run_loop`, the NVT sampling of
:func:`nequip_pol.analysis.dielectric.sample_polarization_nvt`): with ``keep=True`` it also keeps
the frames in memory (:meth:`PolarizationLogger.to_series`), with ``filename=None`` it writes no
file. The column layout is defined once, in :mod:`nequip_pol.io.polarization_log`.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, Optional, Sequence, Union

import numpy as np
from ase import Atoms

from ..io import polarization_log as layout

__all__ = ["PolarizationLogger", "read_polarization_log", "thermalize"]


class PolarizationLogger:
    """ASE observer writing t, E(t), P(t) (and optionally alpha(t) and energies) to a CSV file.

    Args:
        atoms: the atoms being simulated; ``atoms.calc`` must be a
            :class:`~nequip_pol.integrations.ase.NequIPPolCalculator` or a
            :class:`~nequip_pol.reference.calculator.ReferenceMaterialCalculator`
        filename: output CSV path (or an open text file)
        dyn: the dynamics object (optional): its step count goes in the ``step`` column
        reference: ``None``, ``"initial"``, an ``ase.Atoms`` or a 3-vector (e*A): the reference
            dipole P_ref for the ``dP`` columns (see module docstring)
        polarizability: also write alpha (9 columns ``axx ... azz``)
        energies: also write ``epot``, ``ekin``, ``etot`` (eV) and ``field_work`` (eV)
        mode: file mode, ``"w"`` (default) or ``"a"``
        keep: also keep time, field, P, volume (and alpha) in memory for :meth:`to_series`
            (memory grows with the run: ~100 bytes per frame, more with alpha)
        atomic_dipoles: also record the per-atom dipoles p_i (e*A): a path (``.npy``, written
            at :meth:`close`, shape (rows, N, 3)), or ``True`` (in memory only); see
            :attr:`atomic_dipole_frames`. Memory: 24 N bytes per row

    ``filename=None`` writes no file (use with ``keep=True``). Columns
    (:mod:`nequip_pol.io.polarization_log`): ``step, time_fs, Ex, Ey, Ez, Px, Py, Pz,
    [dPx, dPy, dPz], volume, [axx..azz], [epot, ekin, etot, field_work]``. The values are those of
    the calculator's cached results (no extra model evaluation when the MD just computed forces).
    """

    def __init__(
        self,
        atoms: Atoms,
        filename: Union[str, os.PathLike, object],
        dyn=None,
        reference: Union[None, str, Atoms, Sequence[float]] = None,
        polarizability: bool = False,
        energies: bool = True,
        mode: str = "w",
        keep: bool = False,
        atomic_dipoles: Union[None, bool, str, os.PathLike] = None,
    ):
        from .field_state import FieldStateMixin

        if not isinstance(atoms.calc, FieldStateMixin):
            raise TypeError(
                "PolarizationLogger needs `atoms.calc` to be a field-aware nequip-pol calculator "
                f"(NequIPPolCalculator or ReferenceMaterialCalculator), got {type(atoms.calc).__name__}"
            )
        self.atoms = atoms
        self.dyn = dyn
        self.polarizability = polarizability
        self.energies = energies
        self.reference_polarization: Optional[np.ndarray] = None
        self._reference_initial = False
        if isinstance(reference, str):
            if reference != "initial":
                raise ValueError(
                    f"`reference` must be None, 'initial', an Atoms or a 3-vector, got {reference!r}"
                )
            self._reference_initial = True
        elif isinstance(reference, Atoms):
            self.reference_polarization = np.asarray(
                atoms.calc.evaluate(reference, field=np.zeros(3))["polarization"],
                dtype=float,
            )
        elif reference is not None:
            ref = np.asarray(reference, dtype=float)
            if ref.shape != (3,) or not np.all(np.isfinite(ref)):
                raise ValueError(
                    f"reference polarization must be a finite 3-vector (e*A), got {reference!r}"
                )
            self.reference_polarization = ref
        self._has_reference = reference is not None

        if filename is None:
            self._file, self._owns_file = None, False
        elif hasattr(filename, "write"):
            self._file, self._owns_file = filename, False
        else:
            self._file, self._owns_file = open(filename, mode, newline=""), True
        self.columns = layout.columns(
            relative=self._has_reference,
            volume=True,
            polarizability=polarizability,
            energies=energies,
        )
        self._writer = None
        if self._file is not None:
            self._writer = csv.writer(self._file)
            if mode == "w" or self._file.tell() == 0:
                self._writer.writerow(self.columns)
        self.keep = keep
        self.frames: Dict[str, list] = {
            "time_fs": [],
            "field": [],
            "polarization": [],
            "volume": [],
            "polarizability": [],
        }
        self._previous = None  # (field, P) of the last row, for the work integral
        # (time, positions, E_i, p_i) of the last row, for the work of a per-atom field
        self._previous_atomic = None
        if atomic_dipoles is True or atomic_dipoles in (None, False):
            self._dipole_path = None
        else:
            self._dipole_path = os.fspath(atomic_dipoles)
            if not self._dipole_path.endswith(".npy"):
                raise ValueError(
                    f"`atomic_dipoles` must be True or a path ending in .npy, got {atomic_dipoles!r}"
                )
        self.record_dipoles = atomic_dipoles not in (None, False)
        self._dipoles: list = []
        self.field_work = 0.0
        self.num_rows = 0

    def __call__(self) -> None:
        calc = self.atoms.calc
        polarization = np.asarray(
            calc.get_property("polarization", self.atoms), dtype=float
        )
        # the field the cached results were computed at (== E(calc.time))
        field = (
            calc.results_field if calc.results_field is not None else calc.field_at()
        )
        # the time of the current configuration (attach_dynamics keeps calc.time there), not the
        # time the cached results were computed: under a static field results stay valid across
        # a clock reset, so a calculator reused for a second run would log the last run's time
        time_fs = calc.time
        if self._reference_initial and self.reference_polarization is None:
            self.reference_polarization = polarization.copy()
        if self._previous is not None:
            prev_field, prev_p = self._previous
            self.field_work -= 0.5 * float(
                (polarization + prev_p) @ (field - prev_field)
            )
        self._previous = (field.copy(), polarization.copy())
        self._per_atom_field_work(calc, time_fs)

        step = self.dyn.nsteps if self.dyn is not None else self.num_rows
        volume = self.atoms.get_volume() if self.atoms.pbc.all() else float("nan")
        alpha = None
        if self.polarizability:
            alpha = (
                np.asarray(calc.get_property("polarizability", self.atoms), dtype=float)
                .reshape(3, 3)
                .copy()
            )
        if self.keep:
            for key, value in (
                ("time_fs", float(time_fs)),
                ("field", np.array(field, dtype=float)),
                ("polarization", polarization.copy()),
                ("volume", volume),
                ("polarizability", alpha),
            ):
                self.frames[key].append(value)
        if self._writer is not None:
            row = [int(step), float(time_fs), *field, *polarization]
            if self._has_reference:
                row += list(polarization - self.reference_polarization)
            row.append(volume)
            if alpha is not None:
                row += list(alpha.reshape(9))
            if self.energies:
                epot = float(calc.get_property("energy", self.atoms))
                ekin = float(self.atoms.get_kinetic_energy())
                row += [epot, ekin, epot + ekin, self.field_work]
            self._writer.writerow(layout.format_row(row))
            self._file.flush()
        self.num_rows += 1

    def _per_atom_field_work(self, calc, time_fs: float) -> None:
        """Add the work of a per-atom field (explicit time change at fixed positions) and record
        p_i; nothing to do without a per-atom field and without ``atomic_dipoles``."""
        has_field = getattr(calc, "atomic_field", None) is not None
        if not (has_field or self.record_dipoles):
            return
        dipoles = np.array(calc.get_property("atomic_dipoles", self.atoms), dtype=float)
        if self.record_dipoles:
            self._dipoles.append(dipoles)
        if not has_field:
            self._previous_atomic = None
            return
        positions = self.atoms.positions.copy()
        values = calc.atomic_field_at(self.atoms)
        if self._previous_atomic is not None:
            prev_time, prev_positions, prev_values, prev_dipoles = self._previous_atomic
            if callable(calc.atomic_field):
                # sum_i p_i . (E_i(R, t) - E_i(R, t_prev)), averaged over both ends' R and p
                for pos, p in ((positions, dipoles), (prev_positions, prev_dipoles)):
                    change = calc.atomic_field_at(pos, time_fs) - calc.atomic_field_at(
                        pos, prev_time
                    )
                    self.field_work -= 0.5 * float((p * change).sum())
            else:  # values set by hand: their change between the rows
                change = values - prev_values
                self.field_work -= 0.5 * float(
                    ((dipoles + prev_dipoles) * change).sum()
                )
        self._previous_atomic = (float(time_fs), positions, values, dipoles)

    @property
    def atomic_dipole_frames(self) -> np.ndarray:
        """The per-atom dipoles recorded so far, (rows, N, 3), e*A (``atomic_dipoles`` set)."""
        if not self.record_dipoles:
            raise ValueError(
                "this PolarizationLogger records no atomic dipoles; create it with "
                "atomic_dipoles=True or atomic_dipoles='FILE.npy'"
            )
        if not self._dipoles:
            return np.zeros((0, len(self.atoms), 3))
        return np.stack(self._dipoles)

    def to_series(
        self, source: str = "MD (PolarizationLogger)", metadata: Optional[dict] = None
    ):
        """The frames kept so far (``keep=True``) as a :class:`~nequip_pol.analysis.timeseries.PolarizationSeries`.

        ``volume`` is ``None`` when the cell is not periodic; ``polarizability`` is ``None``
        unless recorded.
        """
        from ..analysis.timeseries import PolarizationSeries

        if not self.keep:
            raise ValueError(
                "this PolarizationLogger keeps no frames in memory; create it with keep=True"
            )
        frames = self.frames
        volume = np.array(frames["volume"], dtype=float)
        return PolarizationSeries(
            time_fs=np.array(frames["time_fs"]),
            field=np.array(frames["field"]).reshape(-1, 3),
            polarization=np.array(frames["polarization"]).reshape(-1, 3),
            polarizability=np.array(frames["polarizability"])
            if self.polarizability
            else None,
            volume=None if np.all(np.isnan(volume)) else volume,
            source=source,
            metadata=dict(metadata or {}),
        )

    def close(self) -> None:
        if self._dipole_path is not None:
            np.save(self._dipole_path, self.atomic_dipole_frames)
        if self._owns_file and self._file is not None and not self._file.closed:
            self._file.close()

    def __enter__(self) -> "PolarizationLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_polarization_log(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Read a :class:`PolarizationLogger` CSV into a dict of float arrays keyed by column name.

    ``ValueError`` naming the file and line for a malformed file
    (:func:`nequip_pol.io.polarization_log.read_table`).
    """
    header, table = layout.read_table(path)
    return {name: table[:, k] for k, name in enumerate(header)}


def thermalize(atoms: Atoms, temperature_K: float, rng=None) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K`` (K) with zero total momentum, in place.

    Uses ASE's current ``thermalize_momenta`` (ASE >= 3.29; ``MaxwellBoltzmannDistribution``
    before, which 3.29 deprecates). ``rng``: a numpy ``Generator`` (reproducible runs).
    """
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    else:  # ASE < 3.29
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    vd.Stationary(atoms)
