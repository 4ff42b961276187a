"""Quantum ESPRESSO XML data files of finite-field (``lelfield``) runs -> :class:`QERun`, in eV, A, e, V/A.

:func:`find_qe_xml` finds the XML data file(s) of a run (a file, a run folder, or a folder of
run folders); :func:`read_qe_xml` reads one into a :class:`QERun` and checks it (a finished,
converged SCF with the Berry-phase dipole of ``lelfield=.true.``). Turning the runs of a
configuration into training frames is :mod:`nequip_pol.io.qe`.

Units (verified against the Allegro-pol frames in ``shared/data/dft``; see
docs/quantum_espresso.md):

* the XML stores energy (Ha), forces (Ha/bohr), positions/cell (bohr) and stress (Ha/bohr^3) in
  Hartree atomic units; ``BOHR_ANGSTROM`` and ``HARTREE_EV`` below are the values that reproduce
  the stored frames bit for bit (CODATA-1986-like values, not CODATA 2018);
* the field (``input/electric_field/electric_field_vector``) and the dipoles
  (``output/electric_field/finiteElectricFieldInfo/{electronicDipole,ionicDipole}``) are in
  Rydberg atomic units (charge unit e/sqrt(2)): cell dipole [e*A] = dipole [Ry] * bohr / sqrt(2),
  field [V/A] = field [Ry] * Ha / (bohr * sqrt(2)) = 36.36090 V/A per Ry a.u.;
* stress: ASE sign (positive = tensile), i.e. the NEGATIVE of QE's stress;
* the dipole is QE's raw branch (defined modulo the quantum e*R, R a lattice vector).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field as dc_field
from pathlib import Path

import numpy as np

from .errors import NequipPolIOError

__all__ = [
    "BOHR_ANGSTROM",
    "HARTREE_EV",
    "RY_FIELD_V_PER_A",
    "RY_DIPOLE_E_ANGSTROM",
    "QEParseError",
    "QERun",
    "find_qe_xml",
    "read_qe_xml",
]

#: Bohr radius in Angstrom (reproduces the stored Allegro-pol frames exactly)
BOHR_ANGSTROM = 0.529177249
#: Hartree in eV (reproduces the stored Allegro-pol frames exactly)
HARTREE_EV = 27.211396641308
#: one Rydberg atomic unit of electric field in V/A (= Ha / (e bohr sqrt 2) = 36.3609039)
RY_FIELD_V_PER_A = HARTREE_EV / BOHR_ANGSTROM / math.sqrt(2.0)
#: one Rydberg atomic unit of dipole (charge e/sqrt(2) times bohr) in e*A
RY_DIPOLE_E_ANGSTROM = BOHR_ANGSTROM / math.sqrt(2.0)

_FORCE = HARTREE_EV / BOHR_ANGSTROM
_STRESS = HARTREE_EV / BOHR_ANGSTROM**3


class QEParseError(NequipPolIOError, ValueError):
    """A Quantum ESPRESSO run cannot be read or a set of runs cannot be turned into frames."""


@dataclass
class QERun:
    """One parsed ``pw.x`` run, already in eV / Angstrom / e / V units."""

    path: Path
    symbols: list
    positions: np.ndarray  # (N, 3) A
    cell: np.ndarray  # (3, 3) A, rows are lattice vectors
    energy: float  # eV
    forces: np.ndarray  # (N, 3) eV/A
    stress: np.ndarray | None  # (3, 3) eV/A^3, ASE sign; None when tstress was off
    dipole: np.ndarray  # (3,) e*A, raw branch as printed by QE
    field: np.ndarray  # (3,) V/A
    field_ry: np.ndarray = dc_field(default=None)  # (3,) Ry a.u., as in the XML


# --------------------------------------------------------------------------------------- reading


def _floats(elem, what: str, path: Path) -> np.ndarray:
    if elem is None or elem.text is None:
        raise QEParseError(f"{path}: malformed QE XML, missing <{what}>")
    try:
        return np.array(elem.text.split(), dtype=float)
    except ValueError as exc:
        raise QEParseError(
            f"{path}: malformed QE XML, non-numeric <{what}>: {exc}"
        ) from None


def _symbol(label: str, path: Path) -> str:
    from ase.data import chemical_symbols

    m = re.match(r"([A-Za-z]{1,2})", label.strip())
    cands = []
    if m:
        s = m.group(1)
        cands = [s[0].upper() + s[1:].lower(), s[0].upper()]
    for c in cands:
        if c in chemical_symbols[1:]:
            return c
    raise QEParseError(
        f"{path}: cannot map species label {label!r} to a chemical element"
    )


def _xml_in_folder(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.glob("*.xml") if p.is_file())
    if not found:
        found = sorted(
            p for p in folder.glob("*.save/data-file-schema.xml") if p.is_file()
        )
    return found


def find_qe_xml(path) -> list[Path]:
    """The QE XML data file(s) of a run: ``path`` itself if it is a file, else the ``*.xml`` files
    in the folder (or, when there are none, ``*.save/data-file-schema.xml``). A folder without
    XML whose subfolders hold runs (e.g. ``qe_runs/`` above ``qe_runs/BaTiO3-E0-0/``) gives the
    XML files of all its subfolders."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = _xml_in_folder(path)
        if not found:
            found = [
                xml
                for sub in sorted(p for p in path.iterdir() if p.is_dir())
                for xml in _xml_in_folder(sub)
            ]
        if not found:
            raise QEParseError(
                f"{path}: no QE XML file (*.xml or *.save/data-file-schema.xml) in this folder or its "
                f"subfolders; pass the run folders (e.g. `{path}/*/`) or the XML files"
            )
        return found
    raise QEParseError(f"{path}: no such file or folder")


def read_qe_xml(path) -> QERun:
    """Parse one QE XML data file of a ``lelfield`` run (see module docstring for units)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise QEParseError(f"{path}: unreadable or malformed XML: {exc}") from None
    except OSError as exc:
        raise QEParseError(f"{path}: cannot read file: {exc}") from None
    if not root.tag.endswith("espresso"):
        raise QEParseError(
            f"{path}: not a Quantum ESPRESSO XML file (root element <{root.tag}>)"
        )
    out = root.find("output")
    if out is None:
        raise QEParseError(
            f"{path}: malformed QE XML, no <output> section (run did not finish?)"
        )

    conv = out.find("convergence_info/scf_conv/convergence_achieved")
    if conv is None or conv.text is None:
        raise QEParseError(f"{path}: malformed QE XML, no <convergence_achieved> flag")
    if conv.text.strip().lower() not in ("true", "t", ".true."):
        raise QEParseError(
            f"{path}: the SCF did not converge (convergence_achieved={conv.text.strip()})"
        )
    status = root.find("exit_status")
    if (
        status is not None
        and status.text is not None
        and status.text.strip() not in ("0", "")
    ):
        raise QEParseError(f"{path}: pw.x ended with exit_status={status.text.strip()}")

    struct = out.find("atomic_structure")
    if struct is None:
        raise QEParseError(
            f"{path}: malformed QE XML, missing <output/atomic_structure>"
        )
    atoms = struct.findall("atomic_positions/atom")
    if not atoms:
        raise QEParseError(f"{path}: malformed QE XML, no atoms in <atomic_positions>")
    symbols = [_symbol(a.get("name", ""), path) for a in atoms]
    pos = [_floats(a, "atom", path) for a in atoms]
    if any(r.shape != (3,) for r in pos):
        raise QEParseError(
            f"{path}: malformed QE XML, atomic positions are not 3-vectors"
        )
    pos = np.array(pos)
    cell = [_floats(struct.find(f"cell/a{i}"), f"cell/a{i}", path) for i in (1, 2, 3)]
    if any(a.shape != (3,) for a in cell):
        raise QEParseError(f"{path}: malformed QE XML, cell vectors are not 3-vectors")
    cell = np.array(cell)
    if not np.all(np.isfinite(cell)):
        raise QEParseError(f"{path}: non-finite values in cell")
    if abs(np.linalg.det(cell)) < 1e-8:
        raise QEParseError(f"{path}: malformed QE XML, invalid cell")
    nat = len(atoms)

    energy = _floats(out.find("total_energy/etot"), "total_energy/etot", path)
    if energy.size != 1:
        raise QEParseError(f"{path}: malformed QE XML, <etot> is not a scalar")
    forces = _floats(out.find("forces"), "forces (run with tprnfor=.true.)", path)
    if forces.size != 3 * nat:
        raise QEParseError(
            f"{path}: malformed QE XML, {forces.size} force components for {nat} atoms"
        )
    stress_el = out.find("stress")
    stress = None
    if stress_el is not None:
        s = _floats(stress_el, "stress", path)
        if s.size != 9:
            raise QEParseError(
                f"{path}: malformed QE XML, stress has {s.size} components"
            )
        stress = (
            -s.reshape(3, 3) * _STRESS
        )  # QE: positive = compressive; ASE: the opposite

    info = out.find("electric_field/finiteElectricFieldInfo")
    if info is None:
        if out.find("electric_field/BerryPhase") is not None:
            raise QEParseError(
                f"{path}: run has only an lberry Berry phase along one direction (gdir); "
                "nequip-pol needs lelfield=.true. runs, which give the full cell dipole"
            )
        raise QEParseError(
            f"{path}: run has no Berry-phase polarization (no <finiteElectricFieldInfo>); "
            "run pw.x with lelfield=.true. (and efield_cart) for every field, including zero"
        )
    el = _floats(info.find("electronicDipole"), "electronicDipole", path)
    ion = _floats(info.find("ionicDipole"), "ionicDipole", path)
    if el.size != 3 or ion.size != 3:
        raise QEParseError(f"{path}: malformed QE XML, dipoles are not 3-vectors")
    dipole = (el + ion) * RY_DIPOLE_E_ANGSTROM

    fvec = root.find("input/electric_field/electric_field_vector")
    if fvec is None:
        # lelfield run without efield_cart: zero field
        field_ry = np.zeros(3)
    else:
        field_ry = _floats(fvec, "electric_field_vector", path)
        if field_ry.size != 3:
            raise QEParseError(
                f"{path}: malformed QE XML, electric_field_vector is not a 3-vector"
            )

    for name, arr in (
        ("positions", pos),
        ("cell", cell),
        ("energy", energy),
        ("forces", forces),
        ("stress", np.zeros(1) if stress is None else stress),
        ("dipole", dipole),
        ("electric_field_vector", field_ry),
    ):
        if not np.all(np.isfinite(arr)):
            raise QEParseError(f"{path}: non-finite values in {name}")

    return QERun(
        path=path,
        symbols=symbols,
        positions=pos * BOHR_ANGSTROM,
        cell=cell * BOHR_ANGSTROM,
        energy=float(energy[0]) * HARTREE_EV,
        forces=forces.reshape(nat, 3) * _FORCE,
        stress=stress,
        dipole=dipole,
        field=field_ry * RY_FIELD_V_PER_A,
        field_ry=field_ry,
    )
