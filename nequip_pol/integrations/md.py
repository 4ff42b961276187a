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
"""

from __future__ import annotations

import csv
import os
from typing import Dict, Optional, Sequence, Union

import numpy as np
from ase import Atoms

__all__ = ["PolarizationLogger", "read_polarization_log"]


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

    Columns: ``step, time_fs, Ex, Ey, Ez, Px, Py, Pz, [dPx, dPy, dPz], volume, [axx..azz],
    [epot, ekin, etot, field_work]``. The values are those of the calculator's cached results
    (no extra model evaluation when the MD just computed forces).
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
                raise ValueError(f"`reference` must be None, 'initial', an Atoms or a 3-vector, got {reference!r}")
            self._reference_initial = True
        elif isinstance(reference, Atoms):
            self.reference_polarization = np.asarray(
                atoms.calc.evaluate(reference, field=np.zeros(3))["polarization"], dtype=float
            )
        elif reference is not None:
            ref = np.asarray(reference, dtype=float)
            if ref.shape != (3,) or not np.all(np.isfinite(ref)):
                raise ValueError(f"reference polarization must be a finite 3-vector (e*A), got {reference!r}")
            self.reference_polarization = ref
        self._has_reference = reference is not None

        if hasattr(filename, "write"):
            self._file, self._owns_file = filename, False
        else:
            self._file, self._owns_file = open(filename, mode, newline=""), True
        self._writer = csv.writer(self._file)
        self.columns = ["step", "time_fs", "Ex", "Ey", "Ez", "Px", "Py", "Pz"]
        if self._has_reference:
            self.columns += ["dPx", "dPy", "dPz"]
        self.columns += ["volume"]
        if polarizability:
            self.columns += [f"a{a}{b}" for a in "xyz" for b in "xyz"]
        if energies:
            self.columns += ["epot", "ekin", "etot", "field_work"]
        if mode == "w" or self._file.tell() == 0:
            self._writer.writerow(self.columns)
        self._previous = None  # (field, P) of the last row, for the work integral
        self.field_work = 0.0
        self.num_rows = 0

    def __call__(self) -> None:
        calc = self.atoms.calc
        polarization = np.asarray(calc.get_property("polarization", self.atoms), dtype=float)
        # the field the cached results were computed at (== E(calc.time))
        field = calc.results_field if calc.results_field is not None else calc.field_at()
        time_fs = calc.results_time if calc.results_time is not None else calc.time
        if self._reference_initial and self.reference_polarization is None:
            self.reference_polarization = polarization.copy()
        if self._previous is not None:
            prev_field, prev_p = self._previous
            self.field_work -= 0.5 * float((polarization + prev_p) @ (field - prev_field))
        self._previous = (field.copy(), polarization.copy())

        step = self.dyn.nsteps if self.dyn is not None else self.num_rows
        row = [step, time_fs, *field, *polarization]
        if self._has_reference:
            row += list(polarization - self.reference_polarization)
        row.append(self.atoms.get_volume() if self.atoms.pbc.all() else float("nan"))
        if self.polarizability:
            row += list(np.asarray(calc.get_property("polarizability", self.atoms)).reshape(9))
        if self.energies:
            epot = float(calc.get_property("energy", self.atoms))
            ekin = float(self.atoms.get_kinetic_energy())
            row += [epot, ekin, epot + ekin, self.field_work]
        self._writer.writerow([f"{v:.12g}" if isinstance(v, float) else v for v in map(_py, row)])
        self._file.flush()
        self.num_rows += 1

    def close(self) -> None:
        if self._owns_file and not self._file.closed:
            self._file.close()

    def __enter__(self) -> "PolarizationLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _py(v):
    return float(v) if isinstance(v, (np.floating, float)) else (int(v) if isinstance(v, (np.integer, int)) else v)


def read_polarization_log(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Read a :class:`PolarizationLogger` CSV into a dict of float arrays keyed by column name."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [[float(x) for x in row] for row in reader if row]
    table = np.array(rows, dtype=float).reshape(len(rows), len(header))
    return {name: table[:, k] for k, name in enumerate(header)}

