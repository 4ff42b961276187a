"""Quantum ESPRESSO linear response (pw.x + ph.x at Gamma) -> extended-XYZ training frames.

One run folder per configuration holds the text outputs (also ``.gz``, ``.bz2``, ``.xz``) of

* one ``pw.x`` SCF run (``calculation='scf'``; ``tprnfor``, ``tstress`` for forces and stress,
  left out of the frame without them): structure, energy, forces, stress (ASE's units and sign);
* one ``ph.x`` run at q = 0 with ``epsil=.true.`` (and/or its dynamical-matrix file ``fildyn``):
  the ion-clamped dielectric tensor eps_inf and the Born charges; the ph.x output's are taken
  over the dyn file's, which fills in what the output lacks;
* optionally ``pw.x`` Berry-phase runs (``lberry=.true.``, ``gdir`` = 1, 2 and 3): the cell dipole.

What each file's blocks are, their units and conventions (alpha = EPS_VAC V (eps_inf - 1), Z*
stored as printed) are in :mod:`nequip_pol.io.qe_ph_outputs`, which reads them. An ``lberry`` run
gives the dipole's component along its lattice vector a_gdir, so the dipole is sum_k P_k a_k/|a_k|
over the three ``gdir`` runs; with fewer than three (or dependent directions) the frame gets no
polarization and that is an error. The quantum (2 e|a_k| without spin polarization) is kept in
:class:`QEPhRun`.

Refused with one :class:`~nequip_pol.io.qe_xml.QEParseError` naming the file: outputs that did not
finish ("JOB DONE" missing: truncated or crashed), an SCF that did not converge, a pw.x run with
several ionic steps, a ph.x run without the dielectric tensor or Born charges, outputs of different
structures in one folder, two SCF or two ph.x outputs in one folder, malformed blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .qe_ph_outputs import _read_pw, _read_text, read_dyn_file, read_ph_output
from .qe_xml import QEParseError

__all__ = [
    "QEPhRun",
    "read_ph_output",
    "read_dyn_file",
    "read_qe_ph_run",
    "find_qe_ph_runs",
    "parse_qe_ph_runs",
]


@dataclass
class QEPhRun:
    """One configuration: pw.x SCF + ph.x (and lberry) outputs, in eV, A, e."""

    path: Path
    symbols: list
    positions: np.ndarray  # (N, 3) A
    cell: np.ndarray  # (3, 3) A
    energy: float
    forces: np.ndarray | None  # (N, 3) eV/A; None without tprnfor
    stress: np.ndarray | None  # (3, 3) eV/A^3, ASE sign
    epsilon: np.ndarray | None = None  # (3, 3)
    born_effective_charges: np.ndarray | None = None  # (N, 3, 3) [i, a, b] = dP_a/dr_ib
    dipole: np.ndarray | None = None  # (3,) e*A, QE's branch
    #: (3, 3): row k is the quantum along a_k, e*A
    polarization_quantum: np.ndarray | None = None
    sources: dict = field(default_factory=dict)

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))

    @property
    def polarizability(self):
        if self.epsilon is None:
            return None
        from ..units import polarizability_from_dielectric

        return polarizability_from_dielectric(self.epsilon, self.volume)


def _same_structure(a, b, pa: Path, pb: Path, tol: float = 2e-3) -> None:
    """Same species and positions (minimum image in ``a``'s cell) within ``tol`` A. ph.x prints
    the axes with 4 decimals of alat, hence the loose default."""
    sa, xa, ca = a
    sb, xb, cb = b
    why = None
    if len(sa) != len(sb):
        why = f"{len(sa)} vs {len(sb)} atoms"
    elif sa != sb:
        why = "different species"
    elif np.abs(ca - cb).max() > tol:
        why = f"different cells (max difference {np.abs(ca - cb).max():.3g} A)"
    else:
        frac = np.linalg.solve(ca.T, (xa - xb).T).T
        frac -= np.round(frac)
        d = np.linalg.norm(frac @ ca, axis=1).max()
        if d > tol:
            why = f"different positions (max {d:.3g} A)"
    if why:
        raise QEParseError(f"{pa} and {pb} are not of the same structure ({why})")


# ---------------------------------------------------------------------------------- runs


def _kind(path: Path) -> str | None:
    try:
        head = _read_text(path, 6000)
    except QEParseError:
        return None
    if head.startswith("Dynamical matrix file"):
        return "dyn"
    if "Program PHONON" in head:
        return "ph"
    if "Program PWSCF" in head:
        return "pw"
    return None


def _classified(folder: Path) -> dict:
    out = {"pw": [], "ph": [], "dyn": []}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            k = _kind(p)
            if k:
                out[k].append(p)
    return out


def find_qe_ph_runs(path) -> list[Path]:
    """Run folders under ``path``: ``path`` itself when it holds a ph.x output or dyn file,
    else its subfolders that do."""
    path = Path(path)
    if not path.is_dir():
        raise QEParseError(f"{path}: not a folder (pass one folder per configuration)")
    c = _classified(path)
    if c["ph"] or c["dyn"] or c["pw"]:
        return [path]
    subs = [
        p for p in sorted(path.iterdir()) if p.is_dir() and any(_classified(p).values())
    ]
    if not subs:
        raise QEParseError(
            f"{path}: no pw.x or ph.x output in this folder or its subfolders"
        )
    return subs


def read_qe_ph_run(folder) -> QEPhRun:
    """Read one configuration's pw.x SCF, ph.x and lberry outputs (module docstring)."""
    folder = Path(folder)
    c = _classified(folder)
    scf, berry = [], []
    for p in c["pw"]:
        struct, results, b = _read_pw(p, _read_text(p))
        if results is not None:
            scf.append((p, struct, results))
        if b is not None:
            berry.append((p, struct, b))
    if len(scf) != 1:
        what = "no pw.x SCF output" if not scf else "several pw.x SCF outputs"
        raise QEParseError(
            f"{folder}: {what} ({', '.join(str(s[0]) for s in scf) or 'none'}); put one SCF "
            "run (with '!    total energy' and forces) and its ph.x run in each folder"
        )
    if len(c["ph"]) > 1 or len(c["dyn"]) > 1:
        raise QEParseError(
            f"{folder}: several ph.x outputs or dyn files; one per folder"
        )
    if not c["ph"] and not c["dyn"]:
        raise QEParseError(f"{folder}: no ph.x output or dynamical-matrix file")
    scf_path, struct, (atoms, energy, forces, stress) = scf[0]
    eps = z = None
    sources = {"total_energy": str(scf_path)}
    if c["ph"]:
        ph_struct, eps, z, src = read_ph_output(c["ph"][0])
        _same_structure(struct, ph_struct, scf_path, c["ph"][0])
        sources.update(src)
    if c["dyn"]:
        dpath = c["dyn"][0]
        symbols, nat, deps, dz = read_dyn_file(dpath)
        if symbols != struct[0]:
            raise QEParseError(f"{dpath} and {scf_path} are not of the same structure")
        if eps is None and deps is not None:
            eps, sources["polarizability"] = deps, f"{dpath} (Dielectric Tensor)"
        if z is None and dz is not None:
            z, sources["born_effective_charges"] = (
                dz,
                f"{dpath} (Effective Charges E-U)",
            )
    dipole = quantum = None
    if berry:
        for p, s, _ in berry:
            _same_structure(struct, s, scf_path, p)
        dirs = np.array([b[0] for _, _, b in berry])
        if len(berry) != 3 or abs(np.linalg.det(dirs)) < 1e-6:
            raise QEParseError(
                f"{folder}: Berry-phase (lberry) runs along {len(berry)} independent "
                "direction(s); the cell dipole needs three (gdir = 1, 2, 3)"
            )
        dipole = sum(b[1] * b[0] for _, _, b in berry)
        quantum = np.array([b[2] * b[0] for _, _, b in berry])
        sources["polarization"] = ", ".join(str(p) for p, _, _ in berry)
    for name, v in (
        ("dielectric tensor", eps),
        ("Born charges", z),
        ("dipole", dipole),
    ):
        if v is not None and not np.all(np.isfinite(v)):
            raise QEParseError(f"{folder}: non-finite values in the {name}")
    return QEPhRun(
        path=folder,
        symbols=atoms.get_chemical_symbols(),
        positions=atoms.get_positions(),
        cell=np.array(atoms.cell[:]),
        energy=energy,
        forces=forces,
        stress=stress,
        epsilon=eps,
        born_effective_charges=z,
        dipole=dipole,
        polarization_quantum=quantum,
        sources=sources,
    )


def qe_ph_frame(run: QEPhRun, fold: bool = True):
    """The training frame of a configuration (keys of :mod:`nequip_pol.io.frames`)."""
    from .frames import run_frame

    return run_frame(run, fold=fold)


def parse_qe_ph_runs(paths, fold: bool = True, runs_out: list | None = None) -> list:
    """Frames of QE linear-response runs, one per configuration folder, in the order given.

    Args:
        paths: configuration folders (pw.x SCF + ph.x outputs), or folders of such folders.
        fold: fold P to the branch nearest zero (as ``parse-qe``); otherwise QE's branch.
        runs_out: if a list, the :class:`QEPhRun` records are appended to it.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    folders = []
    for p in paths:
        for f in find_qe_ph_runs(p):
            if f.resolve() not in {x.resolve() for x in folders}:
                folders.append(f)
    runs = [read_qe_ph_run(f) for f in folders]
    if runs_out is not None:
        runs_out.extend(runs)
    return [qe_ph_frame(r, fold=fold) for r in runs]
