"""Synthetic VASP and Quantum ESPRESSO (pw.x, ph.x) outputs for the linear-response readers.

Each writer produces the lines the readers use, in the layout of the codes' outputs (OUTCAR of
VASP 5/6; pw.x and ph.x text outputs and the ph.x dynamical-matrix file of QE 6/7), for a small
cell whose labels are known, so that tests can check values, conventions and refusals. The real
outputs the readers were checked against are listed in tests/test_vasp_parse.py and
tests/test_qe_ph_parse.py (not stored in the repository).
"""

import gzip
from pathlib import Path

import numpy as np

# a low-symmetry two-species cell with non-symmetric Born charges (sum rule broken on purpose
# by SUM_RULE_ERROR, as a real run breaks it a little) to pin the index order
CELL = np.array([[4.0, 0.1, 0.0], [0.2, 4.2, 0.0], [0.0, 0.3, 4.4]])
SYMBOLS = ["Na", "Na", "Cl", "Cl"]
FRAC = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.02], [0.5, 0.0, 0.48], [0.01, 0.5, 0.5]])
POSITIONS = FRAC @ CELL
FORCES = np.array(
    [
        [0.01, -0.02, 0.03],
        [-0.02, 0.01, 0.0],
        [0.005, 0.015, -0.02],
        [0.005, -0.005, -0.01],
    ]
)
ENERGY = -13.25
# VASP's order XX YY ZZ XY YZ ZX and sign, kB
STRESS_KB = np.array([1.5, -2.0, 0.5, 0.3, -0.2, 0.1])
_Z = np.array([[1.1, 0.2, 0.05], [-0.1, 1.2, 0.0], [0.03, 0.07, 1.3]])
SUM_RULE_ERROR = np.array([[0.01, 0.0, 0.0], [0.0, -0.02, 0.0], [0.0, 0.0, 0.005]])
BORN = np.array([_Z, _Z, -_Z, -_Z + SUM_RULE_ERROR])
EPS = np.array([[2.5, 0.1, 0.0], [0.1, 2.7, 0.05], [0.0, 0.05, 2.9]])
P_ION = np.array([2.2551, -1.5, 0.75])  # "electrons Angst"
P_ELC = np.array([0.1, 0.2, -3.3])


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _species(symbols):
    order, counts = [], []
    for s in symbols:
        if not order or order[-1] != s:
            order.append(s)
            counts.append(0)
        counts[-1] += 1
    return order, counts


def outcar_text(
    *,
    symbols=SYMBOLS,
    cell=CELL,
    positions=POSITIONS,
    forces=FORCES,
    energy=ENERGY,
    stress_kb=STRESS_KB,
    born=BORN,
    eps=EPS,
    p_ion=P_ION,
    p_elc=P_ELC,
    born_header="BORN EFFECTIVE CHARGES (in e, cummulative output)",
    eps_header="MACROSCOPIC STATIC DIELECTRIC TENSOR (including local field effects in DFT)",
    lrpa=False,
    steps=1,
    finished=True,
):
    """An OUTCAR of a single-point run with the given labels (None: block left out)."""
    order, counts = _species(symbols)
    out = [" vasp.6.4.2 20Jul23 (build Sep 21 2023) complex", "", " INCAR:"]
    out += [f" POTCAR:    PAW_PBE {s} 08Apr2002" for s in order]
    for s in order:
        out += [f" POTCAR:    PAW_PBE {s} 08Apr2002", "   VRHFIN =x", ""]
    out += [
        f"   number of dos      NEDOS =    301   number of ions     NIONS = {len(symbols):6d}",
        "   ions per type =  " + " ".join(f"{c:4d}" for c in counts),
        "   ISPIN  =      1    spin polarized calculation?",
        "   NSW    =      0    number of steps for IOM",
        "   IBRION =     -1    ionic relax: 0-MD 1-quasi-New 2-CG",
        f"   LRPA    =     {'T' if lrpa else 'F'}    only Hartree local field effects (RPA)",
        "",
        "      direct lattice vectors                 reciprocal lattice vectors",
    ]
    rec = np.linalg.inv(cell).T
    out += [
        "   "
        + " ".join(f"{x:12.9f}" for x in cell[i])
        + "   "
        + " ".join(f"{x:12.9f}" for x in rec[i])
        for i in range(3)
    ]
    for step in range(steps):
        out += [
            "",
            f"----------------------------------------- Iteration    {step + 1}(   1)  "
            "---------------------------------------",
            "",
        ]
        if stress_kb is not None:
            out += [
                "  FORCE on cell =-STRESS in cart. coord.  units (eV):",
                "  Direction    XX          YY          ZZ          XY          YZ          ZX",
                "  in kB   " + " ".join(f"{x:11.5f}" for x in stress_kb),
                "",
            ]
        out += [
            "      direct lattice vectors                 reciprocal lattice vectors",
        ]
        out += [
            "   "
            + " ".join(f"{x:12.9f}" for x in cell[i])
            + "   "
            + " ".join(f"{x:12.9f}" for x in rec[i])
            for i in range(3)
        ]
        out += [
            "",
            " POSITION                                       TOTAL-FORCE (eV/Angst)",
            " " + "-" * 83,
        ]
        out += [
            " "
            + " ".join(f"{x:12.5f}" for x in r)
            + "   "
            + " ".join(f"{x:13.6f}" for x in f)
            for r, f in zip(positions, forces)
        ]
        out += [
            " " + "-" * 83,
            "",
            "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
            "  ---------------------------------------------------",
            f"  free  energy   TOTEN  = {energy:18.8f} eV",
            "",
            f"  energy  without entropy= {energy:18.8f}  energy(sigma->0) = {energy:18.8f}",
            "",
        ]
    if eps is not None:
        out += ["", f" {eps_header}", " " + "-" * 54]
        out += ["  " + " ".join(f"{x:12.6f}" for x in row) for row in eps]
        out += [" " + "-" * 54, ""]
    if born is not None:
        out += [" ", f" {born_header}", " " + "-" * 49]
        for i, z in enumerate(born):
            out.append(f" ion {i + 1:4d}")
            out += [
                f"  {r + 1:3d} " + " ".join(f"{x:11.5f}" for x in z[r])
                for r in range(3)
            ]
        out.append("")
    if p_ion is not None:
        out += [
            "",
            "            Ionic dipole moment: p[ion]=("
            + " ".join(f"{x:11.5f}" for x in p_ion)
            + " ) electrons Angst",
        ]
    if p_elc is not None:
        out += [
            "",
            " Total electronic dipole moment: p[elc]=("
            + " ".join(f"{x:11.5f}" for x in p_elc)
            + " ) electrons Angst",
        ]
    if finished:
        out += [
            "",
            " General timing and accounting informations for this job:",
            " ========================================================",
            "",
            "                  Total CPU time used (sec):        1.000",
        ]
    return "\n".join(out) + "\n"


def make_outcar(folder, name="OUTCAR", incar=None, **kw) -> Path:
    """Write ``folder/name`` (``.gz``: compressed) and, if given, ``folder/INCAR``."""
    folder = Path(folder)
    if incar is not None:
        _write(folder / "INCAR", incar)
    return _write(folder / name, outcar_text(**kw))


# --------------------------------------------------------------------------- Quantum ESPRESSO

ALAT_BOHR = 7.5589045  # 4 A
QE_CELL_ALAT = CELL / 4.0


def _qe_structure(symbols, frac, cell_alat, program_line):
    tau = frac @ cell_alat
    out = [
        "",
        f"     {program_line} v.7.2 starts on  1Jan2024 at 10: 0: 0 ",
        "",
        f"     lattice parameter (alat)  = {ALAT_BOHR:12.4f}  a.u.",
        f"     number of atoms/cell      = {len(symbols):12d}",
        f"     number of atomic types    = {len(set(symbols)):12d}",
        "",
        f"     celldm(1)=  {ALAT_BOHR:9.6f}  celldm(2)=   0.000000  celldm(3)=   0.000000",
        "",
        "     crystal axes: (cart. coord. in units of alat)",
    ]
    out += [
        f"               a({k + 1}) = ( "
        + " ".join(f"{x:10.6f}" for x in cell_alat[k])
        + " )  "
        for k in range(3)
    ]
    out += ["", "     site n.     atom                  positions (alat units)"]
    out += [
        f"         {i + 1}           {s}  tau(   {i + 1}) = ( "
        + " ".join(f"{x:11.7f}" for x in t)
        + "  )"
        for i, (s, t) in enumerate(zip(symbols, tau))
    ]
    return out


def pw_scf_text(
    *,
    symbols=SYMBOLS,
    frac=FRAC,
    cell_alat=QE_CELL_ALAT,
    energy_ry=-42.5,
    forces_ry_bohr=None,
    stress_ry_bohr3=None,
    converged=True,
    finished=True,
    berry=None,
):
    """pw.x SCF output; ``berry`` = (gdir 1..3, P (e/Omega).bohr, mod) adds an lberry block."""
    out = _qe_structure(symbols, frac, cell_alat, "Program PWSCF")
    out += [
        "",
        "     number of k points=     1",
        "                       cart. coord. in units 2pi/alat",
        "        k(    1) = (   0.0000000   0.0000000   0.0000000), wk =   2.0000000",
    ]
    if forces_ry_bohr is None:
        forces_ry_bohr = FORCES / 25.71104309541616  # eV/A -> Ry/bohr
    if berry is not None:
        gdir, p, mod = berry
        a = cell_alat[gdir - 1] / np.linalg.norm(cell_alat[gdir - 1])
        out += [
            "",
            "                             VALUES OF POLARIZATION",
            "                             ~~~~~~~~~~~~~~~~~~~~~~",
            "",
            f"        The calculation of phases done along the direction of vector {gdir}",
            "",
            f"           P = {p:11.7f}  (mod {mod:11.7f})  (e/Omega).bohr",
            "",
            f"        The polarization direction is:  ({a[0]:8.5f} ,{a[1]:8.5f} ,{a[2]:8.5f} )",
        ]
    if energy_ry is not None:
        out += [
            "",
            "     End of self-consistent calculation",
            "",
            "          k = 0.0000 0.0000 0.0000 (   311 PWs)   bands (ev):",
            "",
            "    -6.3575   1.7035   4.6969   4.6969",
            "",
            "     highest occupied level (ev):     4.6969",
            "",
            f"!    total energy              = {energy_ry:17.8f} Ry",
            "",
            "     convergence has been achieved in   7 iterations"
            if converged
            else "     convergence NOT achieved after 100 iterations: stopping",
            "",
            "     Forces acting on atoms (cartesian axes, Ry/au):",
            "",
        ]
        out += [
            f"     atom {i + 1:4d} type  1   force = "
            + " ".join(f"{x:14.8f}" for x in f)
            for i, f in enumerate(forces_ry_bohr)
        ]
        out += [
            "",
            "     Total force =     0.001000     Total SCF correction =     0.000000",
        ]
        if stress_ry_bohr3 is not None:
            s = np.asarray(stress_ry_bohr3)
            out += [
                "",
                "     Computing stress (Cartesian axis) and pressure",
                "",
                "          total   stress  (Ry/bohr**3)                   (kbar)     P=   -5.04",
            ]
            out += [
                " "
                + " ".join(f"{x:13.8f}" for x in s[i])
                + "   "
                + " ".join(f"{x * 147105.08:12.2f}" for x in s[i])
                for i in range(3)
            ]
    if finished:
        out += ["", "   JOB DONE.", ""]
    return "\n".join(out) + "\n"


def ph_text(
    *,
    symbols=SYMBOLS,
    frac=FRAC,
    cell_alat=QE_CELL_ALAT,
    eps=EPS,
    born=BORN,
    asr_block=True,
    zue=True,
    finished=True,
):
    """ph.x output at q = 0 with epsil: blocks as QE 7 prints them (raw and ASR-imposed Z*)."""
    out = _qe_structure(symbols, frac, cell_alat, "Program PHONON")
    if eps is not None:
        out += ["", "          Dielectric constant in cartesian axis ", ""]
        out += [
            "          (" + " ".join(f"{x:18.9f}" for x in row) + " )" for row in eps
        ]

    def zblock(header, z, labels):
        lines = ["", f"          {header}", ""]
        for i, s in enumerate(symbols):
            lines.append(
                f"           atom {i + 1:6d}   {s}  Mean Z*: {np.trace(z[i]) / 3:12.5f}"
            )
            lines += [
                f"      {labels[r]}  (" + " ".join(f"{x:15.5f}" for x in z[i][r]) + " )"
                for r in range(3)
            ]
        return lines

    if born is not None:
        out += zblock(
            "Effective charges (d Force / dE) in cartesian axis without acoustic sum rule "
            "applied (asr)",
            born,
            ("Ex", "Ey", "Ez"),
        )
        if asr_block:
            out += zblock(
                "Effective charges (d Force / dE) in cartesian axis with asr applied: ",
                born - born.sum(0) / len(born),
                ("E*x", "E*y", "E*z"),
            )
        if zue:
            out += zblock(
                "Effective charges (d P / du) in cartesian axis ",
                born + 1e-4,
                ("Px", "Py", "Pz"),
            )
    if finished:
        out += ["", "   JOB DONE.", ""]
    return "\n".join(out) + "\n"


def dyn_text(*, symbols=SYMBOLS, frac=FRAC, eps=EPS, born=BORN):
    """ph.x dynamical-matrix file (fildyn) at q = 0 with epsil (ibrav = 0)."""
    order = []
    for s in symbols:
        if s not in order:
            order.append(s)
    tau = frac @ QE_CELL_ALAT
    out = [
        "Dynamical matrix file",
        "synthetic",
        f"{len(order):3d} {len(symbols):4d}  0 {ALAT_BOHR:11.7f}  0.0000000  0.0000000  "
        "0.0000000  0.0000000  0.0000000",
        "Basis vectors",
    ]
    out += ["  " + " ".join(f"{x:15.9f}" for x in QE_CELL_ALAT[k]) for k in range(3)]
    out += [f"           {k + 1}  '{s}  '    20000.0" for k, s in enumerate(order)]
    out += [
        f"{i + 1:5d}{order.index(s) + 1:5d}" + "".join(f"{x:18.10f}" for x in t)
        for i, (s, t) in enumerate(zip(symbols, tau))
    ]
    out += [
        "",
        "     Dynamical  Matrix in cartesian axes",
        "",
        "     Dielectric Tensor:",
        "",
    ]
    out += ["".join(f"{x:24.12f}" for x in row) for row in eps]
    out += ["", "     Effective Charges E-U: Z_{alpha}{s,beta}", ""]
    for i, z in enumerate(born):
        out.append(f"     atom # {i + 1:4d}")
        out += ["".join(f"{x:24.12f}" for x in row) for row in z]
    return "\n".join(out) + "\n"


def make_qe_ph_run(folder, *, scf=None, ph=None, dyn=None, berry=()) -> Path:
    """A configuration folder: pw.x SCF (``scf.out``), ph.x (``ph.out``), dyn file (``dyn``),
    lberry runs (``berry{gdir}.out``); each argument is the file's text (None: left out)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if scf is not None:
        _write(folder / "scf.out", scf)
    if ph is not None:
        _write(folder / "ph.out", ph)
    if dyn is not None:
        _write(folder / "matdyn.dyn1", dyn)
    for text in berry:
        k = len(list(folder.glob("berry*.out"))) + 1
        _write(folder / f"berry{k}.out", text)
    return folder
