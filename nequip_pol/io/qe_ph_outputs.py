"""The text outputs of a QE linear-response run: ph.x output, dyn file, pw.x SCF and lberry runs.

Readers of single files, used by :func:`nequip_pol.io.qe_ph.read_qe_ph_run` (which checks that
the files of a folder are of one structure and assembles the run). Each raises one
:class:`~nequip_pol.io.qe_xml.QEParseError` naming the file: an output without "JOB DONE"
(truncated or crashed), an SCF that did not converge, a pw.x run with several ionic steps, a ph.x
run without the dielectric tensor and Born charges, a malformed block.

* ``pw.x`` SCF run (``calculation='scf'``; ``tprnfor``, ``tstress`` for forces and stress):
  structure, energy, forces, stress, read with ASE's ``espresso-out`` reader (units converted,
  stress with ASE's sign: minus QE's), as for the ``parse-qe`` frames.
* ``ph.x`` run at q = 0 with ``epsil=.true.``: the ion-clamped dielectric tensor eps_inf
  ("Dielectric constant in cartesian axis", the DFPT one; not "... from finite-differences") and
  the Born charges "Effective charges (d Force / dE) in cartesian axis" (the block without the
  acoustic sum rule imposed: the computed values; the sum rule is as good as the run), else
  "(d P / du)" (``zue``). Its dynamical-matrix file (``fildyn``): "Dielectric Tensor" and
  "Effective Charges E-U: Z_{alpha}{s,beta}".
* The structure of a text output (alat or celldm(1), crystal axes, positions), in A with the bohr
  of ASE's ``espresso-out`` reader, so that it compares with the SCF's.

Conventions, from QE's source (PHonon ``write_epsilon_and_zeu``, ``summarize_zue``,
PW ``bp_c_phase``): ph.x prints, per atom, the row ``Ex`` as ``zstareu(1, 1:3, na)``, i.e. the
row is the field direction and the columns the force direction, ``Z_ab = dF_b/dE_a``; the
``(d P / du)`` rows ``Px`` are ``zstarue(1:3, na, 1)``, row = polarization, column =
displacement; the dyn file writes ``zstareu(icar, jcar, na)`` row by row. All three are the
project's Z*_i,ab = dP_a/dr_ib = dF_ib/dE_a with a the row: stored as printed, in e. alpha =
EPS_VAC V (eps_inf - 1) (:func:`nequip_pol.units.polarizability_from_dielectric`).

An ``lberry`` run prints "P = value (mod quantum) (e/Omega).bohr" along lattice vector ``gdir``
and "The polarization direction is: (...)" = a_gdir / |a_gdir|: the value is the fractional
coordinate of the cell dipole along a_gdir times |a_gdir| (``bp_c_phase``: ``rmod = alat
|a_gdir|``, ``P = pdl_tot * rmod``). The reader gives (a_gdir / |a_gdir|, value in e*A, quantum
in e*A; the quantum is the "mod" value, 2 e|a_gdir| without spin polarization).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .frames import stress_matrix
from .qe_xml import QEParseError
from .text_outputs import NUM as _NUM, last_line, numbers, read_text

__all__ = ["read_ph_output", "read_dyn_file"]


def _bohr() -> float:
    """bohr in A as ASE's espresso-out reader converts it (CODATA 2006), so that the dipole and
    the cell read by ASE share one length unit."""
    from ase.io.espresso import units

    return float(units["Bohr"])


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


# -------------------------------------------------------------------------------- ph.x output


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
    i = last_line(lines, lambda s: s == "Dielectric constant in cartesian axis")
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
        i = last_line(lines, test)
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
    i = last_line(lines, lambda s: s.startswith("Dielectric Tensor"))
    if i is not None:
        rows, _ = _next_rows(lines, i + 1, 3, path, "dielectric tensor")
        eps = np.array([_nums(r, 3, path, "dielectric tensor") for r in rows])
    i = last_line(lines, lambda s: s.startswith("Effective Charges E-U"))
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
        stress = stress_matrix(stress)
    return steps[0], float(res["energy"]), forces, stress
