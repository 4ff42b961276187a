"""The response blocks of VASP's outputs (OUTCAR, vasprun.xml): what each is, its units, its sign.

Readers of single blocks, used by :func:`nequip_pol.io.vasp.read_vasp_run` (which decides which
file a label comes from and when a label is not taken). Each raises one
:class:`~nequip_pol.io.errors.VaspParseError` naming the file when its block is malformed.

* Born effective charges (LEPSILON=.TRUE. or LCALCEPS=.TRUE.): OUTCAR's last
  ``BORN EFFECTIVE CHARGES (in e, cummulative output)`` (LEPSILON) or
  ``BORN EFFECTIVE CHARGES (including local field effects) (in |e|, cummulative output)``
  (LCALCEPS) block, else vasprun.xml's ``born_charges``. VASP prints, per ion, one row per
  direction of the applied field (= polarization direction) and one column per displacement /
  force direction (VASP forum thread 19680, "Order of Born effective charge tensor output": for
  LEPSILON and LCALCEPS "the charges are printed by each direction of finite field applied").
  That is the project's Z*_i,ab = dP_a/dr_ib = dF_ib/dE_a with a the row: stored as printed, in e.
* The ion-clamped dielectric tensor eps_inf (dimensionless; the polarizability is
  alpha = EPS_VAC V (eps_inf - 1), :func:`nequip_pol.units.polarizability_from_dielectric`). The
  block taken is ``MACROSCOPIC STATIC DIELECTRIC TENSOR (including local field effects in DFT)``
  (LEPSILON) or ``... (including local field effects)`` (LCALCEPS): the self-consistent response
  with the Hartree and exchange-correlation local fields, i.e. the dP/dE of the same functional
  that gives the energy. Not taken: ``(excluding local field effects)`` and
  ``HEAD OF MICROSCOPIC ...`` (independent particles), ``... in RPA (Hartree)`` and any run with
  LRPA=.TRUE. (Hartree-only local fields: another functional; refused), and
  ``... IONIC CONTRIBUTION`` (not clamped-ion). Without OUTCAR, vasprun.xml's ``dielectric_dft``
  or ``epsilon`` array (not ``epsilon_rpa``).
* The cell dipole (LCALCPOL=.TRUE.): -(p[ion] + p[elc]) from OUTCAR's last ``Ionic dipole
  moment: p[ion]=(...)`` and ``Total electronic dipole moment: p[elc]=(...)`` lines. VASP prints
  them in "electrons Angst", i.e. in units of the electron's charge -|e| (VASP wiki, LCALCPOL: the
  NaF example, where moving F by +0.045 A along z changes p[ion] by -0.316), hence the minus sign
  for the cell dipole in e*A. P is defined modulo the quantum e*R (R a lattice vector; 2e*R for the
  electronic part without spin polarization): :attr:`nequip_pol.io.vasp.VaspRun.polarization_quantum`.
* The settings VASP echoes in OUTCAR (``TAG = value`` lines, e.g. ``LRPA``) and vasprun.xml's
  ``<incar>`` items, for the checks of :mod:`nequip_pol.io.vasp`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import VaspParseError
from .text_outputs import NUM as _NUM, last_line, numbers

_BORN_HEADERS = (
    "BORN EFFECTIVE CHARGES (in e, cummulative output)",
    "BORN EFFECTIVE CHARGES (including local field effects) (in |e|, cummulative output)",
)
_EPS_HEADERS = (
    "MACROSCOPIC STATIC DIELECTRIC TENSOR (including local field effects in DFT)",
    "MACROSCOPIC STATIC DIELECTRIC TENSOR (including local field effects)",
)
_EPS_RPA_HEADER = (
    "MACROSCOPIC STATIC DIELECTRIC TENSOR (including local field effects in RPA"
)
_P_ION = re.compile(
    rf"onic dipole moment:\s*p\[ion\]=\(\s*({_NUM})\s+({_NUM})\s+({_NUM})"
)
_P_ELC = re.compile(
    rf"Total electronic dipole moment:\s*p\[elc\]=\(\s*({_NUM})\s+({_NUM})\s+({_NUM})"
)


# ----------------------------------------------------------------------------------- OUTCAR


def _floats(line: str, n: int, path: Path, what: str) -> np.ndarray:
    return numbers(line, n, path, what, VaspParseError, last=True)


def _last_block(lines, headers):
    """(index of the line after the last of ``headers``, that header), or None; a header is a
    whole line (after strip)."""
    i = last_line(lines, lambda s: s in headers)
    return None if i is None else (i + 1, lines[i].strip())


def _outcar_setting(text: str, tag: str):
    """The last value OUTCAR echoes for ``tag`` (``TAG = value``), or None."""
    m = None
    for m in re.finditer(rf"^\s*{tag}\s*=\s*(\S+)", text, flags=re.M):
        pass
    return None if m is None else m.group(1)


def _parse_outcar_born(lines, nions: int, path: Path):
    """(Z* (nions, 3, 3) in e, rows = field direction; the header), or (None, None)."""
    found = _last_block(lines, _BORN_HEADERS)
    if found is None:
        return None, None
    i, header = found
    z = np.zeros((nions, 3, 3))
    i += 1  # the dashes
    for ion in range(nions):
        if i >= len(lines) or not re.match(rf"\s*ion\s+{ion + 1}\s*$", lines[i]):
            raise VaspParseError(
                f"{path}: malformed Born effective charge block ({header!r}): expected "
                f"'ion {ion + 1}' at line {i + 1}"
            )
        for row in range(3):
            line = lines[i + 1 + row] if i + 1 + row < len(lines) else ""
            if not re.match(rf"\s*{row + 1}\s", line):
                raise VaspParseError(
                    f"{path}: malformed Born effective charge block: expected row {row + 1} of "
                    f"ion {ion + 1} at line {i + 2 + row}"
                )
            z[ion, row] = _floats(line, 3, path, "Born effective charge block")
        i += 4
    return z, header


def _parse_outcar_epsilon(lines, path: Path):
    """(eps_inf (3, 3), the header) of the DFT local-field block, or (None, None)."""
    found = _last_block(lines, _EPS_HEADERS)
    if found is None:
        if _last_block(lines, (_EPS_RPA_HEADER + " (Hartree))",)) is not None:
            raise VaspParseError(
                f"{path}: the dielectric tensor has Hartree-only local fields (LRPA=.TRUE.); "
                "nequip-pol needs the DFT one (LRPA=.FALSE., the default)"
            )
        return None, None
    i, header = found
    rows = lines[i + 1 : i + 4]
    if len(rows) < 3:
        raise VaspParseError(f"{path}: malformed dielectric tensor block ({header!r})")
    eps = np.array([_floats(r, 3, path, "dielectric tensor block") for r in rows])
    return eps, header


def _parse_outcar_dipole(text: str, path: Path):
    """The cell dipole (3,) in e*A, VASP's branch, from the last LCALCPOL lines, or None."""
    ion = list(_P_ION.finditer(text))
    elc = list(_P_ELC.finditer(text))
    if not ion and not elc:
        return None
    if not ion or not elc:
        raise VaspParseError(
            f"{path}: LCALCPOL output incomplete: found the "
            f"{'ionic' if ion else 'electronic'} dipole moment but not the other"
        )
    p_ion = np.array([float(x) for x in ion[-1].groups()])
    p_elc = np.array([float(x) for x in elc[-1].groups()])
    # "electrons Angst": the unit is the electron's charge -|e|
    return -(p_ion + p_elc)


# -------------------------------------------------------------------------------- vasprun.xml


def _vasprun_response(root, path: Path):
    """(born (N,3,3) or None, eps (3,3) or None, eps name, incar dict) from a parsed vasprun."""
    incar = {}
    for item in root.findall("incar/*"):
        name = item.get("name")
        if name:
            incar[name.upper()] = (item.text or "").strip()
    calc = root.findall("calculation")
    if not calc:
        raise VaspParseError(
            f"{path}: vasprun.xml has no <calculation> (the run did not start or finish)"
        )
    eps = name = None
    for cand in ("dielectric_dft", "epsilon"):
        for node in root.iter("varray"):
            if node.get("name") == cand:
                vals = [np.array((v.text or "").split(), dtype=float) for v in node]
                if len(vals) != 3 or any(v.shape != (3,) for v in vals):
                    raise VaspParseError(f"{path}: malformed <varray name={cand!r}>")
                eps, name = np.array(vals), cand
        if eps is not None:
            break
    born = None
    for node in root.iter("array"):
        if node.get("name") == "born_charges":
            sets = node.findall("set")
            born = np.array(
                [
                    [np.array((v.text or "").split(), dtype=float) for v in s]
                    for s in sets
                ]
            )
            if born.ndim != 3 or born.shape[1:] != (3, 3):
                raise VaspParseError(f"{path}: malformed <array name='born_charges'>")
    return born, eps, name, incar
