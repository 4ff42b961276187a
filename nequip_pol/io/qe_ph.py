"""Quantum ESPRESSO linear response (pw.x + ph.x at Gamma) -> extended-XYZ training frames.

One run folder per configuration holds the text outputs (also ``.gz``, ``.bz2``, ``.xz``) of

* one ``pw.x`` SCF run (``calculation='scf'``; ``tprnfor``, ``tstress`` for forces and stress,
  left out of the frame without them): structure, energy, forces, stress, read with ASE's ``espresso-out`` reader (units converted, stress with ASE's sign: minus
  QE's), as for the ``parse-qe`` frames;
* one ``ph.x`` run at q = 0 with ``epsil=.true.`` (and/or its dynamical-matrix file ``fildyn``):
  the ion-clamped dielectric tensor eps_inf ("Dielectric constant in cartesian axis", the DFPT
  one; not "... from finite-differences") and the Born charges "Effective charges (d Force / dE)
  in cartesian axis" (the block without the acoustic sum rule imposed: the computed values; the
  sum rule is as good as the run), else "(d P / du)" (``zue``), else the dyn file's
  "Effective Charges E-U: Z_{alpha}{s,beta}";
* optionally ``pw.x`` Berry-phase runs (``lberry=.true.``, ``gdir`` = 1, 2 and 3): the cell dipole.

Conventions, from QE's source (PHonon ``write_epsilon_and_zeu``, ``summarize_zue``,
PW ``bp_c_phase``): ph.x prints, per atom, the row ``Ex`` as ``zstareu(1, 1:3, na)``, i.e. the
row is the field direction and the columns the force direction, ``Z_ab = dF_b/dE_a``; the
``(d P / du)`` rows ``Px`` are ``zstarue(1:3, na, 1)``, row = polarization, column =
displacement; the dyn file writes ``zstareu(icar, jcar, na)`` row by row. All three are the
project's Z*_i,ab = dP_a/dr_ib = dF_ib/dE_a with a the row: stored as printed. alpha =
EPS_VAC V (eps_inf - 1) (:func:`nequip_pol.units.polarizability_from_dielectric`).

An ``lberry`` run prints "P = value (mod quantum) (e/Omega).bohr" along lattice vector ``gdir``
and "The polarization direction is: (...)" = a_gdir / |a_gdir|: the value is the fractional
coordinate of the cell dipole along a_gdir times |a_gdir| (``bp_c_phase``: ``rmod = alat
|a_gdir|``, ``P = pdl_tot * rmod``), so the dipole is sum_k P_k a_k/|a_k| over the three
``gdir`` runs; with fewer than three the frame gets no polarization and that is an error. The
quantum (the "mod" value, 2 e|a_k| without spin polarization) is kept in :class:`QEPhRun`.

Refused with one :class:`~nequip_pol.io.qe_xml.QEParseError` naming the file: outputs that did not
finish ("JOB DONE" missing: truncated or crashed), an SCF that did not converge, a pw.x run with
several ionic steps, a ph.x run without the dielectric tensor or Born charges, outputs of different
structures in one folder, two SCF or two ph.x outputs in one folder, malformed blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .qe_xml import QEParseError
from .text_outputs import NUM as _NUM, numbers, read_text

__all__ = [
    "QEPhRun",
    "read_ph_output",
    "read_dyn_file",
    "read_qe_ph_run",
    "find_qe_ph_runs",
    "parse_qe_ph_runs",
]


def _bohr() -> float:
    """bohr in A as ASE's espresso-out reader converts it (CODATA 2006), so that the dipole and
    the cell read by ASE share one length unit."""
    from ase.io.espresso import units

    return float(units["Bohr"])


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


def _read_text(path: Path, limit: int = -1) -> str:
    return read_text(path, limit, QEParseError)


def _nums(line: str, n: int, path: Path, what: str) -> np.ndarray:
    return numbers(line, n, path, what, QEParseError)


def _next_rows(lines, i, n, path, what):
    """The next ``n`` non-blank lines from index ``i`` (skipping blank lines)."""
    rows = []
    while i < len(lines) and len(rows) < n:
        if lines[i].strip():
            rows.append(lines[i])
        i += 1
    if len(rows) < n:
        raise QEParseError(f"{path}: {what} cut short (file truncated?)")
    return rows, i


# ------------------------------------------------------------------------ structure (text)


def _structure(lines, path: Path):
    """(symbols, positions A, cell A) from a pw.x / ph.x text output (first structure)."""
    alat = nat = celldm = None
    cell = None
    symbols, tau = [], []
    for i, line in enumerate(lines):
        if alat is None and "lattice parameter (alat)" in line:
            alat = _nums(line.split("=", 1)[1], 1, path, "alat")[0]
        elif celldm is None and "celldm(1)=" in line:  # more digits than alat
            celldm = _nums(line.split("=", 1)[1], 1, path, "celldm(1)")[0]
        elif nat is None and "number of atoms/cell" in line:
            nat = int(line.split("=")[1].split()[0])
        elif cell is None and "crystal axes: (cart. coord. in units of alat)" in line:
            rows, _ = _next_rows(lines, i + 1, 3, path, "crystal axes")
            cell = np.array(
                [_nums(r.split("=", 1)[1], 3, path, "crystal axes") for r in rows]
            )
        elif not symbols and "site n." in line and "positions (alat units)" in line:
            if nat is None:
                raise QEParseError(
                    f"{path}: malformed output: no 'number of atoms/cell'"
                )
            rows = lines[i + 1 : i + 1 + nat]
            for r in rows:
                m = re.match(r"\s*\d+\s+(\S+)\s.*tau\(\s*\d+\)\s*=\s*\((.*)\)", r)
                if m is None:
                    raise QEParseError(
                        f"{path}: malformed atomic positions: {r.strip()!r}"
                    )
                symbols.append(_element(m.group(1), path))
                tau.append(_nums(m.group(2), 3, path, "atomic positions"))
    if alat is None or cell is None or len(symbols) != (nat or -1):
        raise QEParseError(
            f"{path}: no structure (alat, crystal axes, positions) in this output"
        )
    a = (celldm or alat) * _bohr()
    return symbols, np.array(tau) * a, cell * a


def _element(label: str, path: Path) -> str:
    from .qe_xml import _symbol

    return _symbol(label, path)


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


# -------------------------------------------------------------------------------- ph.x output


def _last_header(lines, test):
    idx = None
    for i, line in enumerate(lines):
        if test(line.strip()):
            idx = i
    return idx


def _zstar_block(lines, i, nat, path, what):
    z = np.zeros((nat, 3, 3))
    i += 1
    for na in range(nat):
        rows, i = _next_rows(lines, i, 4, path, what)
        if not re.match(rf"\s*atom\s*#?\s*{na + 1}\b", rows[0]):
            raise QEParseError(
                f"{path}: malformed {what}: expected atom {na + 1}, got {rows[0]!r}"
            )
        for r in range(3):
            z[na, r] = _nums(rows[1 + r], 3, path, what)
    return z


def read_ph_output(path):
    """(structure, eps or None, Z* (N,3,3) or None, sources) of a ph.x text output at q = 0."""
    path = Path(path)
    text = _read_text(path)
    if "Program PHONON" not in text[:5000]:
        raise QEParseError(f"{path}: not a ph.x output (no 'Program PHONON' header)")
    if "JOB DONE" not in text:
        raise QEParseError(
            f"{path}: ph.x output without 'JOB DONE': the run did not finish or the file is "
            "truncated"
        )
    lines = text.splitlines()
    struct = _structure(lines, path)
    nat = len(struct[0])
    sources = {}
    eps = None
    i = _last_header(lines, lambda s: s == "Dielectric constant in cartesian axis")
    if i is not None:
        rows, _ = _next_rows(lines, i + 1, 3, path, "dielectric constant")
        eps = np.array([_nums(r, 3, path, "dielectric constant") for r in rows])
        sources["polarizability"] = f"{path} (Dielectric constant in cartesian axis)"
    zeu = "Effective charges (d Force / dE) in cartesian axis"
    z = None
    for name, test in (
        (zeu, lambda s: s.startswith(zeu) and "with asr" not in s and "apply" not in s),
        (
            "Effective charges (d P / du) in cartesian axis",
            lambda s: (
                s.startswith("Effective charges (d P / du) in cartesian axis")
                and "with asr" not in s
                and "apply" not in s
            ),
        ),
    ):
        i = _last_header(lines, test)
        if i is not None:
            z = _zstar_block(lines, i, nat, path, name)
            sources["born_effective_charges"] = f"{path} ({lines[i].strip()})"
            break
    if eps is None and z is None:
        raise QEParseError(
            f"{path}: ph.x output without the dielectric tensor and Born charges: run ph.x at "
            "q = 0 with epsil=.true."
        )
    return struct, eps, z, sources


def read_dyn_file(path):
    """(species, nat, eps or None, Z* or None) of a ph.x dynamical-matrix file at q = 0."""
    path = Path(path)
    lines = _read_text(path).splitlines()
    if not lines or not lines[0].startswith("Dynamical matrix file"):
        raise QEParseError(f"{path}: not a ph.x dynamical-matrix file")
    try:
        ntyp, nat, ibrav = (int(x) for x in lines[2].split()[:3])
        k = 3 + (4 if ibrav == 0 else 0)
        names = {}
        for line in lines[k : k + ntyp]:
            m = re.match(r"\s*(\d+)\s+'([^']*)'", line)
            names[int(m.group(1))] = _element(m.group(2), path)
        symbols = [
            names[int(line.split()[1])] for line in lines[k + ntyp : k + ntyp + nat]
        ]
    except (ValueError, IndexError, AttributeError, KeyError):
        raise QEParseError(f"{path}: malformed dynamical-matrix file header") from None
    eps = z = None
    i = _last_header(lines, lambda s: s.startswith("Dielectric Tensor"))
    if i is not None:
        rows, _ = _next_rows(lines, i + 1, 3, path, "dielectric tensor")
        eps = np.array([_nums(r, 3, path, "dielectric tensor") for r in rows])
    i = _last_header(lines, lambda s: s.startswith("Effective Charges E-U"))
    if i is not None:
        z = _zstar_block(lines, i, nat, path, "effective charges E-U")
    return symbols, nat, eps, z


# -------------------------------------------------------------------------------- pw.x output


_BERRY = re.compile(rf"P\s*=\s*({_NUM})\s*\(mod\s*({_NUM})\)\s*\(e/Omega\)\.bohr")
_BERRY_GDIR = re.compile(r"phases done along the direction of vector\s+(\d)")
_BERRY_DIR = re.compile(
    rf"polarization direction is:\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)"
)


def _read_pw(path: Path, text: str):
    """(structure, results or None, berry or None) of a pw.x text output."""
    if "JOB DONE" not in text:
        raise QEParseError(
            f"{path}: pw.x output without 'JOB DONE': the run did not finish or the file is "
            "truncated"
        )
    if "convergence NOT achieved" in text:
        raise QEParseError(
            f"{path}: the SCF did not converge ('convergence NOT achieved')"
        )
    lines = text.splitlines()
    struct = _structure(lines, path)
    berry = None
    if "VALUES OF POLARIZATION" in text:
        p, d = list(_BERRY.finditer(text)), list(_BERRY_DIR.finditer(text))
        g = list(_BERRY_GDIR.finditer(text))
        if not p or not d or not g or not 1 <= int(g[-1].group(1)) <= 3:
            raise QEParseError(
                f"{path}: malformed Berry-phase ('VALUES OF POLARIZATION') block"
            )
        # the direction a_gdir/|a_gdir| from the cell (QE prints it with 5 decimals only)
        a = struct[2][int(g[-1].group(1)) - 1]
        direction = a / np.linalg.norm(a)
        printed = np.array([float(x) for x in d[-1].groups()])
        if np.abs(printed - direction).max() > 1e-3:
            raise QEParseError(
                f"{path}: the Berry-phase direction {printed.tolist()} is not lattice vector "
                f"{g[-1].group(1)} of this structure"
            )
        b = _bohr()
        berry = (direction, float(p[-1].group(1)) * b, float(p[-1].group(2)) * b)
    results = None
    if re.search(r"^!\s+total energy", text, flags=re.M):
        results = _pw_results(path)
    return struct, results, berry


def _pw_results(path: Path):
    import ase.io

    try:
        steps = ase.io.read(path, index=":", format="espresso-out")
    except Exception as exc:  # ASE raises many types on bad files; one error here
        raise QEParseError(
            f"{path}: unreadable or malformed pw.x output: {type(exc).__name__}: {exc}"
        ) from None
    if len(steps) != 1:
        raise QEParseError(
            f"{path}: {len(steps)} ionic steps (relax or MD); one SCF run per configuration"
        )
    res = steps[0].calc.results
    for name, v in (
        ("positions", steps[0].get_positions()),
        ("cell", steps[0].cell[:]),
        ("energy", res.get("energy")),
        ("forces", res.get("forces")),
        ("stress", res.get("stress")),
    ):
        if v is not None and not np.all(np.isfinite(v)):
            raise QEParseError(f"{path}: non-finite values in {name}")
    forces = res.get("forces")
    if forces is not None:
        forces = np.asarray(forces, dtype=float)
    stress = res.get("stress")
    if stress is not None:
        xx, yy, zz, yz, xz, xy = np.asarray(stress, dtype=float)
        stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return steps[0], float(res["energy"]), forces, stress


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
