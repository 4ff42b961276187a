"""``nequip-pol phonons``: Gamma phonons, IR oscillator strengths and LO-TO splitting of a relaxed structure.

Also the home of what the verbs on one relaxed structure share (``phonons`` and
``dielectric``, :mod:`~nequip_pol.cli.dielectric`): the MODEL and STRUCTURE
arguments and their checks (:func:`add_structure_arguments`, :func:`check_structure_arguments`),
the structure relaxed at zero field (:func:`relaxed_structure`) and the CSV table of the Gamma
modes (:func:`mode_rows`).

Registered in :mod:`nequip_pol.cli` (:data:`~nequip_pol.cli.VERBS`); imports, input
checks (:func:`check_inputs`), errors and exit status as for every analysis verb
(:mod:`~nequip_pol.cli.common`). Outputs are
``PREFIX_phonons.csv``, ``PREFIX_loto.csv``, ``PREFIX_phonons.png`` (PREFIX: ``-o``, default
the structure file without its extension). Units: frequencies in cm^-1 and THz, oscillator
strengths in e^2/amu, displacements in A, forces in eV/A.
"""

from __future__ import annotations

import argparse

from .common import (
    DEPRECATED_MODEL_NAMES,
    REFERENCE_MATERIALS,
    CommandError,
    check_file,
    check_model,
    input_checker,
    load_calculator,
    output_paths,
    output_prefix,
    progress_printer,
    read_structure,
    run_guarded,
    write_csv,
)

__all__ = [
    "add_phonons",
    "run_phonons",
    "check_inputs",
    "add_structure_arguments",
    "check_structure_arguments",
    "relaxed_structure",
    "mode_rows",
    "system_size",
]


# ---------------------------------------------------------------------- what phonons and dielectric share
def add_structure_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, STRUCTURE and the options of a relaxed structure: ``--index``, ``--device``,
    ``--no-relax``, ``--fmax`` (eV/A), ``--displacement`` (A), ``-o PREFIX``, ``--force``."""
    p.add_argument(
        "model",
        metavar="MODEL",
        help="compiled model (*.nequip.pt2, target nequip_pol_ase), checkpoint (*.ckpt) or package "
        "(*.nequip.zip), a shipped model's name (sio2, batio3), or "
        f"{' / '.join(REFERENCE_MATERIALS)} for the exact analytic materials "
        + "; ".join(
            f"('{old}': the old name of {new})"
            for old, new in DEPRECATED_MODEL_NAMES.items()
        ),
    )
    p.add_argument(
        "structure",
        metavar="STRUCTURE",
        help="structure file readable by ASE (first frame unless --index)",
    )
    p.add_argument(
        "--index", type=int, default=0, help="frame of STRUCTURE (default 0)"
    )
    p.add_argument(
        "--device", default="cpu", help="torch device of the model (default cpu)"
    )
    p.add_argument(
        "--no-relax",
        action="store_true",
        help="do not relax the ions first (fixed cell)",
    )
    p.add_argument(
        "--fmax",
        type=float,
        default=None,
        help="force convergence of the relaxations, eV/A (default: from the model's precision, printed: "
        "1e-8 for float64 models and 'analytic', 30 x the measured force noise for float32 models)",
    )
    p.add_argument(
        "--displacement",
        type=float,
        default=0.01,
        help="phonopy finite displacement, A (default 0.01)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PREFIX",
        help="output prefix (default: STRUCTURE without extension)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def system_size(verb: str, args) -> int:
    """Atoms of one model evaluation (what the thread rule weighs): frame ``--index`` of STRUCTURE."""
    return len(read_structure(args.structure, args.index))


def relaxed_structure(args, verb):
    """``(atoms, calculator, report)``: frame ``--index`` of STRUCTURE, the MODEL's ASE calculator
    and a ``report(message)`` progress printer; the ions relaxed at zero field (fixed cell) to
    ``--fmax`` unless ``--no-relax``."""
    import numpy as np

    from nequip_pol.analysis.dielectric import relax_positions

    report = progress_printer(verb)
    atoms = read_structure(args.structure, args.index)
    calc = load_calculator(args.model, args.device)
    report(
        f"{len(atoms)} atoms ({atoms.get_chemical_formula()}), V = {atoms.get_volume():.4f} A^3, model {args.model}"
    )
    if not args.no_relax:
        atoms = relax_positions(
            atoms, calc, field=np.zeros(3), fmax=args.fmax, progress=report
        )
        report(
            f"relaxed at zero field (fixed cell): {atoms.info['relax_newton_steps']} Newton steps, "
            f"max |F| = {atoms.info['relax_fmax']:.2e} eV/A"
        )
    return atoms, calc, report


def mode_rows(phonons):
    """``(columns, rows)`` of the CSV table of the optical Gamma modes of
    :class:`~nequip_pol.analysis.phonons.GammaPhonons` (degenerate sets summed): frequency (cm^-1,
    THz), degeneracy, intensity and oscillator strength S (e^2/amu), delta_eps (diagonal)."""
    import numpy as np

    rows = []
    for r in phonons.mode_table():
        s = r.get("strength", np.zeros((3, 3)))
        de = r.get("delta_eps", np.zeros((3, 3)))
        rows.append(
            [
                r["frequency_cm1"],
                r["frequency_thz"],
                r["degeneracy"],
                r.get("intensity", 0.0),
                *np.diag(s),
                s[0, 1],
                s[0, 2],
                s[1, 2],
                *np.diag(de),
            ]
        )
    cols = [
        "frequency_cm1",
        "frequency_thz",
        "degeneracy",
        "intensity_e2_per_amu",
        "S_xx",
        "S_yy",
        "S_zz",
        "S_xy",
        "S_xz",
        "S_yz",
        "delta_eps_xx",
        "delta_eps_yy",
        "delta_eps_zz",
    ]
    return cols, rows


def check_structure_arguments(args) -> None:
    """Check MODEL (made canonical in ``args.model``), STRUCTURE, ``--displacement`` and
    ``--fmax`` without heavy imports; ``CommandError`` naming the problem."""
    args.model = check_model(
        args.model
    )  # canonical name (a deprecated one is noted once, here)
    check_file(args.structure, "structure")
    for name in ("displacement", "fmax"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise CommandError(f"--{name} must be > 0, got {value}")


# ---------------------------------------------------------------------- phonons
def add_phonons(p: argparse.ArgumentParser) -> None:
    add_structure_arguments(p)
    p.add_argument(
        "--directions",
        default="1,0,0;0,1,0;0,0,1",
        metavar="Q1;Q2;...",
        help="Cartesian q directions for the LO-TO splitting, e.g. '0,0,1;1,0,0' (default x;y;z)",
    )


def _parse_directions_text(text: str):
    """``'x,y,z;x,y,z'`` -> list of 3-lists of floats (no numpy); ``CommandError`` if malformed."""
    try:
        dirs = [
            [float(v) for v in item.split(",")]
            for item in text.split(";")
            if item.strip()
        ]
    except ValueError:
        raise CommandError(
            f"--directions: expected 'x,y,z;x,y,z;...', got {text!r}"
        ) from None
    if not dirs or any(len(d) != 3 or not any(d) for d in dirs):
        raise CommandError(
            f"--directions: each direction needs 3 numbers, not all zero; got {text!r}"
        )
    return dirs


def _parse_directions(text: str):
    import numpy as np

    return np.array(_parse_directions_text(text))


def _run_phonons(args) -> int:
    from nequip_pol.analysis.phonons import lo_to_splitting, phonopy_gamma
    from nequip_pol.analysis.plots import plot_phonons

    paths = output_paths(
        output_prefix(args.output, args.structure), PHONON_OUTPUTS, args.force
    )
    directions = _parse_directions(args.directions)
    atoms, calc, report = relaxed_structure(args, "phonons")
    ph = phonopy_gamma(
        atoms, calc, displacement=args.displacement, born_charges=True, progress=report
    )
    ph.check_stable()
    loto = lo_to_splitting(ph, directions)
    cols, rows = mode_rows(ph)
    write_csv(
        paths["phonons.csv"],
        cols,
        rows,
        [
            f"Gamma modes of {args.structure} with {args.model} (phonopy, displacement {args.displacement} A), optical modes, "
            "degenerate sets summed; S = oscillator strength (e^2/amu), delta_eps = S/(eps_vac V omega^2)"
        ],
    )
    with open(paths["loto.csv"], "w") as f:
        f.write("qx,qy,qz,to_cm1,lo_cm1,splitting_cm1,to_intensity_e2_per_amu\n")
        for row in loto.splitting_table(ph):
            q = row["direction"]
            f.write(
                f"{q[0]:.6g},{q[1]:.6g},{q[2]:.6g},{row['to_cm1']:.6f},{row['lo_cm1']:.6f},"
                f"{row['splitting_cm1']:.6f},{row['intensity']:.6g}\n"
            )
    plot_phonons(ph, paths["phonons.png"], loto)
    print("optical modes (cm^-1, degeneracy, oscillator strength tr S in e^2/amu):")
    for r in ph.mode_table():
        print(f"  {r['frequency_cm1']:9.2f}  x{r['degeneracy']}  {r['intensity']:.4f}")
    print("largest LO-TO splittings (cm^-1):")
    for row in loto.splitting_table(ph, top=6):
        q = row["direction"]
        print(
            f"  q = ({q[0]:.2f},{q[1]:.2f},{q[2]:.2f}): TO {row['to_cm1']:.1f} -> LO {row['lo_cm1']:.1f} ({row['splitting_cm1']:+.1f})"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


PHONON_OUTPUTS = ("phonons.csv", "loto.csv", "phonons.png")


def run_phonons(args) -> int:
    return run_guarded("phonons", _run_phonons, args)


# ---------------------------------------------------------------------- input checks
def _check_phonons(args) -> None:
    check_structure_arguments(args)
    _parse_directions_text(args.directions)
    output_paths(output_prefix(args.output, args.structure), PHONON_OUTPUTS, args.force)


_CHECKS = {"phonons": _check_phonons}

check_inputs = input_checker(_CHECKS)
