"""VASP runs -> extended-XYZ training frames, one frame per run folder.

A run folder holds ``OUTCAR`` and/or ``vasprun.xml`` (each may be compressed: ``.gz``, ``.bz2``,
``.xz``). :func:`read_vasp_run` reads one into a :class:`VaspRun`; :func:`parse_vasp_runs` turns
run folders into frames with the keys and units of ``parse-qe`` (:mod:`nequip_pol.io.frames`),
written by the same writer (:func:`nequip_pol.io.qe.write_frames`). A run gives the labels it
has computed and no others:

* ``total_energy``, ``forces``, ``stress``: every finished run. Read with ASE's VASP readers
  (``vasp-xml`` for vasprun.xml, else ``vasp-out`` for OUTCAR): they are maintained against
  VASP's changing output formats, convert units (kB -> eV/A^3) and give the stress with ASE's sign
  (positive = tensile, minus VASP's printed stress), the convention of the QE converter. The
  energy is the free energy TOTEN (``e_fr_energy``), the one the forces are the derivative of.
* ``born_effective_charges`` (LEPSILON=.TRUE. or LCALCEPS=.TRUE.): OUTCAR's Born-charge block,
  else vasprun.xml's ``born_charges``; rows are the field direction, stored as printed, in e.
* ``polarizability`` from the ion-clamped dielectric tensor eps_inf with the DFT local fields,
  alpha = EPS_VAC V (eps_inf - 1): OUTCAR's block, else vasprun.xml's ``dielectric_dft`` or
  ``epsilon`` array. A run with LRPA=.TRUE. (Hartree-only local fields) is refused.
* ``polarization`` (LCALCPOL=.TRUE.): the cell dipole -(p[ion] + p[elc]) in e*A from OUTCAR,
  defined modulo the quantum e*R (:attr:`VaspRun.polarization_quantum`). Like ``parse-qe``, the
  frame's P is folded to the branch nearest zero unless ``fold=False``. Not taken when the run
  applies a field (LCALCEPS, EFIELD_PEAD, EFIELD, read from vasprun.xml or the folder's INCAR) or
  is an LBERRY run (one direction): the dipole printed last is then not the zero-field cell dipole.

The blocks these labels are read from, their units and sign conventions are in
:mod:`nequip_pol.io.vasp_blocks`. When a folder has both files, OUTCAR's blocks are taken over
vasprun.xml's (the Born charges must then agree).

Refused, with one :class:`VaspParseError` naming the file (and nothing written by the verb): a
missing, unreadable, truncated or unfinished file (OUTCAR without VASP's closing timing block,
vasprun.xml that does not parse), a run with several ionic steps (relaxation, MD, IBRION=5/6:
one frame per run; use a single-point run, IBRION=-1 or 7/8), OUTCAR and vasprun.xml that
disagree (two different runs in one folder), a malformed Born or dielectric block, and LRPA=.TRUE.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import VaspParseError
from .frames import stress_matrix
from .text_outputs import NUM as _NUM, read_text
from .vasp_blocks import (
    _outcar_setting,
    _parse_outcar_born,
    _parse_outcar_dipole,
    _parse_outcar_epsilon,
    _vasprun_response,
)

__all__ = [
    "VaspParseError",
    "VaspRun",
    "find_vasp_runs",
    "read_vasp_run",
    "parse_vasp_runs",
    "vasp_frame",
]

_SUFFIXES = ("", ".gz", ".bz2", ".xz")
_FINISHED = "General timing and accounting informations for this job"


@dataclass
class VaspRun:
    """One VASP run folder, in eV, A, e, V/A (conventions: :mod:`nequip_pol.io.vasp_blocks`)."""

    path: Path
    symbols: list
    positions: np.ndarray  # (N, 3) A
    cell: np.ndarray  # (3, 3) A, rows are lattice vectors
    energy: float | None = None  # eV, free energy TOTEN
    forces: np.ndarray | None = None  # (N, 3) eV/A
    stress: np.ndarray | None = None  # (3, 3) eV/A^3, ASE sign
    #: (N, 3, 3) e, [i, a, b] = dP_a/dr_ib
    born_effective_charges: np.ndarray | None = None
    epsilon: np.ndarray | None = None  # (3, 3) ion-clamped eps_inf
    dipole: np.ndarray | None = None  # (3,) e*A, VASP's branch, physical sign
    sources: dict = field(default_factory=dict)  # label -> "file (block)"
    notes: list = field(default_factory=list)  # labels found but not taken, and why

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))

    @property
    def polarization_quantum(self) -> np.ndarray:
        """(3, 3): row k is the quantum e*R_k (e*A) along lattice vector k; P is defined modulo
        integer combinations of the rows (2 e*R_k for the electronic part alone at ISPIN=1)."""
        return self.cell.copy()

    @property
    def polarizability(self) -> np.ndarray | None:
        """alpha = EPS_VAC V (eps_inf - 1), (3, 3), e*A^2/V; None without a dielectric tensor."""
        if self.epsilon is None:
            return None
        from ..units import polarizability_from_dielectric

        return polarizability_from_dielectric(self.epsilon, self.volume)


# ------------------------------------------------------------------------------------- files


def _first(folder: Path, names) -> Path | None:
    for name in names:
        for suffix in _SUFFIXES:
            p = folder / (name + suffix)
            if p.is_file():
                return p
    return None


def _run_files(path: Path):
    """(OUTCAR or None, vasprun.xml or None) of a run folder, or of a single file."""
    if path.is_file():
        name = path.name.lower()
        if name.startswith("outcar"):
            return path, None
        if "vasprun" in name or name.endswith(
            (".xml", ".xml.gz", ".xml.bz2", ".xml.xz")
        ):
            return None, path
        raise VaspParseError(
            f"{path}: not an OUTCAR or vasprun.xml file (pass the run folder or the file)"
        )
    return _first(path, ["OUTCAR"]), _first(path, ["vasprun.xml"])


def find_vasp_runs(path) -> list[Path]:
    """The run folders under ``path``: ``path`` itself when it holds OUTCAR or vasprun.xml (or is
    such a file), else its subfolders that do (sorted by name), e.g. ``runs/`` above ``runs/0001/``.
    """
    path = Path(path)
    if not path.exists():
        raise VaspParseError(f"{path}: no such file or folder")
    if path.is_file() or any(_run_files(path)):
        return [path]
    subs = [p for p in sorted(path.iterdir()) if p.is_dir() and any(_run_files(p))]
    if not subs:
        raise VaspParseError(
            f"{path}: no OUTCAR or vasprun.xml (also .gz, .bz2, .xz) in this folder or its "
            "subfolders"
        )
    return subs


def _read_text(path: Path, limit: int = -1) -> str:
    return read_text(path, limit, VaspParseError)


# ------------------------------------------------------------------------------------ INCAR


def _incar_file(folder: Path) -> dict:
    p = _first(folder, ["INCAR"])
    if p is None:
        return {}
    out = {}
    for line in _read_text(p).splitlines():
        for part in line.split("#")[0].split("!")[0].split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip().upper()] = v.strip()
    return out


def _true(value) -> bool:
    return str(value).strip().lstrip(".").upper().startswith("T")


def _applies_field(settings: dict) -> str | None:
    if _true(settings.get("LCALCEPS", "F")):
        return "LCALCEPS"
    for tag in ("EFIELD_PEAD", "EFIELD"):
        if tag in settings:
            try:
                vals = [float(x) for x in re.findall(_NUM, settings[tag])]
            except ValueError:
                vals = []
            if any(abs(v) > 0 for v in vals):
                return tag
    return None


# ---------------------------------------------------------------------------------- reading


def _ase_steps(path: Path, fmt: str):
    import ase.io

    try:
        steps = ase.io.read(path, index=":", format=fmt)
    except Exception as exc:  # ASE raises many types on bad files; one error here
        raise VaspParseError(
            f"{path}: unreadable or malformed {fmt} file: {type(exc).__name__}: {exc}"
        ) from None
    if not steps:
        raise VaspParseError(f"{path}: no ionic step in this file")
    if len(steps) > 1:
        raise VaspParseError(
            f"{path}: {len(steps)} ionic steps (relaxation, MD or IBRION=5/6); parse-vasp "
            "takes one frame per run: use single-point runs (NSW=0, or IBRION=7/8)"
        )
    return steps[0]


def _results(atoms, path: Path):
    res = atoms.calc.results if atoms.calc is not None else {}
    energy = res.get("free_energy", res.get("energy"))
    forces = res.get("forces")
    stress = res.get("stress")
    if stress is not None:
        stress = stress_matrix(stress)
    for name, v in (
        ("positions", atoms.get_positions()),
        ("cell", atoms.cell[:]),
        ("energy", energy),
        ("forces", forces),
        ("stress", stress),
    ):
        if v is not None and not np.all(np.isfinite(v)):
            raise VaspParseError(f"{path}: non-finite values in {name}")
    return energy, forces, stress


def read_vasp_run(path) -> VaspRun:
    """Read one VASP run (a folder with OUTCAR and/or vasprun.xml, or one of those files)."""
    path = Path(path)
    if not path.exists():
        raise VaspParseError(f"{path}: no such file or folder")
    outcar, vasprun = _run_files(path)
    if outcar is None and vasprun is None:
        raise VaspParseError(
            f"{path}: no OUTCAR or vasprun.xml (also .gz, .bz2, .xz) in this folder"
        )
    folder = path if path.is_dir() else path.parent
    settings = _incar_file(folder) if path.is_dir() else {}
    atoms = None
    born = eps = dipole = None
    sources = {}
    notes = []

    if vasprun is not None:
        try:
            root = ET.fromstring(_read_text(vasprun))
        except ET.ParseError as exc:
            raise VaspParseError(
                f"{vasprun}: unreadable or truncated vasprun.xml: {exc}"
            ) from None
        if root.tag != "modeling":
            raise VaspParseError(
                f"{vasprun}: not a vasprun.xml file (root element <{root.tag}>)"
            )
        born_x, eps_x, eps_name, incar = _vasprun_response(root, vasprun)
        settings = {**settings, **incar}
        atoms = _ase_steps(vasprun, "vasp-xml")
        src = str(vasprun)
        if born_x is not None:
            born, sources["born_effective_charges"] = born_x, f"{src} (born_charges)"
        if eps_x is not None:
            eps, sources["polarizability"] = eps_x, f"{src} ({eps_name})"

    if outcar is not None:
        text = _read_text(outcar)
        if _FINISHED not in text:
            raise VaspParseError(
                f"{outcar}: the OUTCAR ends before VASP's closing timing block: the run did "
                "not finish or the file is truncated"
            )
        o_atoms = _ase_steps(outcar, "vasp-out")
        if atoms is None:
            atoms = o_atoms
        else:
            _check_same_run(atoms, o_atoms, vasprun, outcar)
        lrpa = _outcar_setting(text, "LRPA")
        if lrpa is not None and _true(lrpa):
            raise VaspParseError(
                f"{outcar}: LRPA=.TRUE. (Hartree-only local fields): the dielectric tensor "
                "and Born charges are not those of the DFT functional; rerun with LRPA=.FALSE."
            )
        lines = text.splitlines()
        born_o, born_header = _parse_outcar_born(lines, len(o_atoms), outcar)
        eps_o, eps_header = _parse_outcar_epsilon(lines, outcar)
        if born_o is not None:
            if born is not None and np.abs(born_o - born).max() > 2e-5:
                raise VaspParseError(
                    f"{outcar}: Born charges differ from those of {vasprun} by "
                    f"{np.abs(born_o - born).max():.3g} e: the two files are from different runs"
                )
            born = born_o
            sources["born_effective_charges"] = f"{outcar} ({born_header})"
        if eps_o is not None:
            eps = eps_o
            sources["polarizability"] = f"{outcar} ({eps_header})"
        dipole = _parse_outcar_dipole(text, outcar)
        if dipole is not None:
            fld = _applies_field(settings)
            if fld is None and "e<r>_bp" in text:
                fld = "LBERRY (one direction per run)"
            if fld is not None:
                notes.append(f"polarization not taken: the run uses {fld}")
                dipole = None
            else:
                sources["polarization"] = f"{outcar} (p[ion] + p[elc], LCALCPOL)"

    energy, forces, stress = _results(atoms, outcar or vasprun)
    if born is not None and born.shape != (len(atoms), 3, 3):
        raise VaspParseError(
            f"{path}: {born.shape[0]} Born charge tensors for {len(atoms)} atoms"
        )
    for name, v in (
        ("Born charges", born),
        ("dielectric tensor", eps),
        ("dipole", dipole),
    ):
        if v is not None and not np.all(np.isfinite(v)):
            raise VaspParseError(f"{path}: non-finite values in the {name}")
    return VaspRun(
        path=path,
        symbols=atoms.get_chemical_symbols(),
        positions=atoms.get_positions(),
        cell=np.array(atoms.cell[:]),
        energy=None if energy is None else float(energy),
        forces=None if forces is None else np.asarray(forces, dtype=float),
        stress=stress,
        born_effective_charges=born,
        epsilon=eps,
        dipole=dipole,
        sources=sources,
        notes=notes,
    )


def _check_same_run(a, b, pa: Path, pb: Path, tol: float = 1e-4) -> None:
    why = None
    if a.get_chemical_symbols() != b.get_chemical_symbols():
        why = "different species"
    elif np.abs(a.cell[:] - b.cell[:]).max() > tol:
        why = "different cells"
    else:
        d = a.get_scaled_positions() - b.get_scaled_positions()
        d -= np.round(d)
        if np.abs(d @ a.cell[:]).max() > tol:
            why = "different positions"
        else:
            ea = a.calc.results.get("free_energy") if a.calc else None
            eb = b.calc.results.get("free_energy") if b.calc else None
            if ea is not None and eb is not None and abs(ea - eb) > 1e-4:
                why = f"different energies ({ea:.6f} vs {eb:.6f} eV)"
    if why:
        raise VaspParseError(
            f"{pa} and {pb} are from different runs ({why}); keep one run per folder"
        )


# ----------------------------------------------------------------------------------- frames


def vasp_frame(run: VaspRun, fold: bool = True):
    """The training frame of a run: the labels it has (module docstring), others left out."""
    from .frames import run_frame

    return run_frame(run, fold=fold)


def parse_vasp_runs(paths, fold: bool = True, runs_out: list | None = None) -> list:
    """Frames (``ase.Atoms``) of VASP runs, one per run folder, in the order given.

    Args:
        paths: run folders (OUTCAR and/or vasprun.xml), such files, or folders of run folders.
        fold: fold each P to the branch nearest zero (as ``parse-qe``); otherwise VASP's branch.
        runs_out: if a list, the :class:`VaspRun` records are appended to it (for reports).

    Raises:
        VaspParseError: see the module docstring; the message names the file.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    folders = []
    for p in paths:
        for f in find_vasp_runs(p):
            if f.resolve() not in {x.resolve() for x in folders}:
                folders.append(f)
    if not folders:
        raise VaspParseError("no VASP runs given")
    runs = [read_vasp_run(f) for f in folders]
    if runs_out is not None:
        runs_out.extend(runs)
    return [vasp_frame(r, fold=fold) for r in runs]
