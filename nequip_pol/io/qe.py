"""Quantum ESPRESSO finite-field runs -> extended-XYZ training frames.

For every configuration the user runs ``pw.x`` with ``lelfield=.true.`` once at zero field and once
(or twice, +E and -E) with a small homogeneous field along each Cartesian axis (``efield_cart``).
:func:`parse_qe_runs` reads the XML data files of those runs, groups them by configuration and
builds one frame per configuration with energy, forces, stress and polarization of the zero-field
run, plus Born effective charges and polarizability from finite differences with respect to the
field.

Units and conventions (verified against the Allegro-pol frames in ``shared/data/dft``; see
docs/quantum_espresso.md):

* the XML stores energy (Ha), forces (Ha/bohr), positions/cell (bohr) and stress (Ha/bohr^3) in
  Hartree atomic units; ``BOHR_ANGSTROM`` and ``HARTREE_EV`` below are the values that reproduce
  the stored frames bit for bit (CODATA-1986-like values, not CODATA 2018);
* the field (``input/electric_field/electric_field_vector``) and the dipoles
  (``output/electric_field/finiteElectricFieldInfo/{electronicDipole,ionicDipole}``) are in
  Rydberg atomic units (charge unit e/sqrt(2)): cell dipole [e*A] = dipole [Ry] * bohr / sqrt(2),
  field [V/A] = field [Ry] * Ha / (bohr * sqrt(2)) = 36.36090 V/A per Ry a.u.;
* stress: ASE sign (positive = tensile), i.e. the NEGATIVE of QE's stress;
* Born charges ``Z*_i,ab = dF_ib / dE_a`` (first index = field/polarization direction, second =
  force/displacement direction), stored row-major as 9 numbers per atom;
* polarizability ``alpha_ab = dP_a / dE_b`` (row = polarization, column = field), 9 numbers;
* the polarization is defined modulo the quantum e*R (R a lattice vector). Differences between runs
  are reduced to the nearest branch (minimum image in fractional coordinates); the frame's own P is
  folded to the branch closest to zero (fractional coordinates in [-1/2, 1/2)), as in the stored data.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "BOHR_ANGSTROM",
    "HARTREE_EV",
    "RY_FIELD_V_PER_A",
    "RY_DIPOLE_E_ANGSTROM",
    "NequipPolIOError",
    "QEParseError",
    "OutputExistsError",
    "QERun",
    "read_qe_xml",
    "find_qe_xml",
    "group_runs",
    "parse_qe_runs",
    "write_frames",
    "fold_polarization",
    "reduce_dipole_difference",
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
_AXES = "xyz"


class NequipPolIOError(Exception):
    """Base class of the data-conversion errors of nequip-pol (messages name the file)."""


class QEParseError(NequipPolIOError, ValueError):
    """A Quantum ESPRESSO run cannot be read or a set of runs cannot be turned into frames."""


class OutputExistsError(NequipPolIOError, FileExistsError):
    """The output file exists and overwriting was not requested."""


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


# ---------------------------------------------------------------------------- polarization branch


def fold_polarization(p: np.ndarray, cell: np.ndarray, center=None) -> np.ndarray:
    """Fold a cell dipole (e*A) to the branch closest to ``center`` (default zero)."""
    import torch

    from ..data.branch import fold_to_nearest_branch

    p = torch.as_tensor(np.asarray(p, dtype=float)).view(1, 3)
    c = (
        torch.zeros((1, 3), dtype=torch.float64)
        if center is None
        else torch.as_tensor(np.asarray(center, dtype=float)).view(1, 3)
    )
    cell = torch.as_tensor(np.asarray(cell, dtype=float)).view(1, 3, 3)
    return fold_to_nearest_branch(p, c, cell, torch.tensor([True])).numpy()[0]


def reduce_dipole_difference(dp: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Bring a dipole difference (e*A) to the nearest branch: subtract the lattice vector R
    (quantum e*R) that makes its fractional coordinates lie in [-1/2, 1/2]."""
    return fold_polarization(dp, cell)


# ------------------------------------------------------------------------------------- grouping


def _same_config(a: QERun, b: QERun, tol: float) -> str | None:
    """None when a and b are the same configuration, else the reason they differ."""
    if len(a.symbols) != len(b.symbols):
        return f"different number of atoms ({len(a.symbols)} vs {len(b.symbols)})"
    if a.symbols != b.symbols:
        i = next(k for k, (x, y) in enumerate(zip(a.symbols, b.symbols)) if x != y)
        return f"different species (atom {i}: {a.symbols[i]} vs {b.symbols[i]})"
    dc = np.abs(a.cell - b.cell).max()
    if dc > tol:
        return f"different cells (max |difference| {dc:.3g} A > tolerance {tol:g} A)"
    d = a.positions - b.positions
    frac = np.linalg.solve(a.cell.T, d.T).T
    frac -= np.round(frac)
    dmax = np.linalg.norm(frac @ a.cell, axis=1).max()
    if dmax > tol:
        return f"different atomic positions (max displacement {dmax:.3g} A > tolerance {tol:g} A)"
    return None


def group_runs(runs: Sequence[QERun], tol: float = 1e-4) -> list[list[QERun]]:
    """Group runs by configuration (same species in the same order, cell and positions within
    ``tol`` Angstrom, positions compared as minimum images). Order of first appearance is kept."""
    groups: list[list[QERun]] = []
    for r in runs:
        for g in groups:
            if _same_config(g[0], r, tol) is None:
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def _names(runs: Iterable[QERun]) -> str:
    return ", ".join(str(r.path) for r in runs)


def _classify(group: list[QERun], field_tol: float):
    """Split a group into the zero-field run and {axis: {sign: run}}."""
    zero = []
    by_axis: dict[int, dict[int, QERun]] = {}
    for r in group:
        f = r.field_ry
        amp = np.abs(f)
        if amp.max() <= field_tol:
            zero.append(r)
            continue
        nz = np.flatnonzero(amp > field_tol)
        if nz.size != 1:
            raise QEParseError(
                f"{r.path}: field {f.tolist()} (Ry a.u.) is not along a Cartesian axis; "
                "use efield_cart with a single non-zero component"
            )
        ax = int(nz[0])
        sign = 1 if f[ax] > 0 else -1
        slot = by_axis.setdefault(ax, {})
        if sign in slot:
            raise QEParseError(
                f"{r.path}: duplicate run, same configuration and field direction "
                f"{'+' if sign > 0 else '-'}{_AXES[ax]} as {slot[sign].path}"
            )
        slot[sign] = r
    if len(zero) > 1:
        raise QEParseError(
            f"{zero[1].path}: duplicate zero-field run of the configuration of {zero[0].path}"
        )
    return (zero[0] if zero else None), by_axis


def _missing(group, zero, by_axis) -> list[str]:
    miss = [] if zero is not None else ["zero field"]
    miss += [f"field along {_AXES[a]}" for a in range(3) if a not in by_axis]
    return miss


# ------------------------------------------------------------------------------------ frames


def _derivatives(zero: QERun, by_axis):
    """dF_i/dE_a (N, 3, 3) [e] indexed [i, a, b] and dP/dE (3, 3) [a = P, b = field], plus the method."""
    nat = len(zero.symbols)
    z = np.zeros((nat, 3, 3))
    alpha = np.zeros((3, 3))
    methods = []
    for a in range(3):
        runs = by_axis[a]
        if 1 in runs and -1 in runs:
            hi, lo = runs[1], runs[-1]
            methods.append("central")
        else:
            hi, lo = (runs[1], zero) if 1 in runs else (zero, runs[-1])
            methods.append("forward")
        de = hi.field[a] - lo.field[a]  # V/A
        z[:, a, :] = (hi.forces - lo.forces) / de
        alpha[:, a] = reduce_dipole_difference(hi.dipole - lo.dipole, zero.cell) / de
    return z, alpha, methods


def _frame(
    run: QERun, polarization: np.ndarray, energy: float, z, alpha, with_field: bool
):
    from ase import Atoms

    atoms = Atoms(symbols=run.symbols, positions=run.positions, cell=run.cell, pbc=True)
    atoms.info["total_energy"] = float(energy)
    if run.stress is not None:
        atoms.info["stress"] = run.stress.reshape(9).copy()
    atoms.info["polarization"] = np.asarray(polarization, dtype=float)
    atoms.info["polarizability"] = alpha.reshape(9).copy()
    if with_field:
        atoms.info["electric_field"] = run.field.astype(float).copy()
    atoms.arrays["forces"] = run.forces.copy()
    atoms.arrays["born_effective_charges"] = z.reshape(len(run.symbols), 9).copy()
    return atoms


def _field_frame_energy(
    zero: QERun, run: QERun, p0: np.ndarray, p: np.ndarray
) -> float:
    """Energy of a finite-field run on the branch of ``p`` (convention E(F) = E_KS - F . P).

    QE's ``etot`` under a field contains -F . P on a branch of its own choosing, so it is only
    defined modulo F . (e R). First move it to the branch of ``p``, then remove any remaining whole
    quanta F . R by comparing with the linear-response estimate E0 - F . (P0 + P) / 2.
    """
    e = run.energy + float(run.field @ (run.dipole - p))
    target = zero.energy - float(run.field @ (p0 + p)) / 2.0
    quanta = run.cell @ run.field  # F . R_k, eV
    quanta = quanta[np.abs(quanta) > 1e-12]
    if quanta.size:
        resid = e - target
        grid = np.array(
            np.meshgrid(*([np.arange(-3, 4)] * quanta.size), indexing="ij")
        ).reshape(quanta.size, -1)
        shifts = quanta @ grid
        e -= float(shifts[np.argmin(np.abs(resid - shifts))])
    return e


def parse_qe_runs(
    paths,
    tol: float = 1e-4,
    field_tol: float = 1e-12,
    include_field_frames: bool = False,
    fold: bool = True,
) -> list:
    """Turn QE finite-field runs into training frames (``ase.Atoms``, one per configuration).

    Args:
        paths: run folders and/or XML files (a folder may hold several XML files); the field of
            each run is read from its XML, never from a name.
        tol: tolerance (A) on cell and positions for runs to count as the same configuration.
        field_tol: |field| (Ry a.u.) below which a run counts as zero-field.
        include_field_frames: also emit one frame per finite-field run (with ``electric_field``,
            its own energy/forces/stress/P and the configuration's Born charges and polarizability).
            Its energy is put on the branch of its P (convention E = E_KS - field . P): QE's
            field term uses its own branch, so whole quanta field . (e R) are removed.
        fold: fold each frame's P to the branch closest to zero (as in the reference data);
            otherwise keep QE's raw branch.

    Returns:
        list of ``ase.Atoms`` with ``info`` keys ``total_energy`` (eV), ``stress`` (eV/A^3, 9,
        ASE sign), ``polarization`` (e*A), ``polarizability`` (e*A^2/V, 9, row-major),
        [``electric_field`` (V/A)] and ``arrays`` ``forces`` (eV/A), ``born_effective_charges``
        (e, 9 per atom, row-major, Z*_ab = dF_b/dE_a).

    Raises:
        QEParseError: unreadable/malformed file, unconverged SCF, no Berry-phase polarization,
            runs that do not group into complete configurations, missing field direction.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        for f in find_qe_xml(p):
            if f.resolve() not in {x.resolve() for x in files}:
                files.append(f)
    if not files:
        raise QEParseError("no QE runs given")
    runs = [read_qe_xml(f) for f in files]
    groups = group_runs(runs, tol=tol)

    classified = [(g, *_classify(g, field_tol)) for g in groups]
    for g, zero, by_axis in classified:
        miss = _missing(g, zero, by_axis)
        if not miss:
            continue
        others = [h for h in groups if h is not g]
        if others:
            reasons = "; ".join(
                f"vs {h[0].path}: {_same_config(g[0], h[0], tol)}" for h in others
            )
            raise QEParseError(
                f"{_names(g)}: these runs do not group with the other runs into a complete "
                f"configuration (missing: {', '.join(miss)}); their atoms or cell differ: {reasons}"
            )
        what = "missing zero-field run" if zero is None else "missing field direction"
        raise QEParseError(
            f"{_names(g)}: {what} for this configuration: {', '.join(miss)} not found"
        )

    frames = []
    for g, zero, by_axis in classified:
        z, alpha, _ = _derivatives(zero, by_axis)
        p0 = fold_polarization(zero.dipole, zero.cell) if fold else zero.dipole
        frames.append(_frame(zero, p0, zero.energy, z, alpha, with_field=False))
        if include_field_frames:
            for a in range(3):
                for s in sorted(by_axis[a], reverse=True):
                    r = by_axis[a][s]
                    # keep the branch of the zero-field P: P(E) = P0 + nearest-branch difference
                    p = p0 + reduce_dipole_difference(r.dipole - zero.dipole, zero.cell)
                    e = _field_frame_energy(zero, r, p0, p)
                    frames.append(_frame(r, p, e, z, alpha, with_field=True))
    return frames


# --------------------------------------------------------------------------------------- writing


def write_frames(frames, out_path, force: bool = False) -> Path:
    """Write frames as extended XYZ. Refuses to overwrite an existing file unless ``force``;
    writes to a temporary file first so that nothing partial is left on failure."""
    import ase.io

    out_path = Path(out_path)
    frames = list(frames)
    if not frames:
        raise NequipPolIOError(f"{out_path}: no frames to write")
    if out_path.is_dir():
        raise NequipPolIOError(
            f"{out_path}: is a folder; give the path of the extended-XYZ file to write"
        )
    if out_path.exists() and not force:
        raise OutputExistsError(
            f"{out_path}: output file exists; not overwriting it (use --force / force=True)"
        )
    parent = out_path.parent if str(out_path.parent) else Path(".")
    if not parent.is_dir():
        raise NequipPolIOError(f"{out_path}: output folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        ase.io.write(tmp, frames, format="extxyz")
        # mkstemp creates the file private (0600): give it the permissions of a normal new file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
