"""``nequip-pol`` command line.

Subcommands live in :data:`SUBCOMMANDS`: ``name -> (help, add_arguments, run)``. To add one, write
``_add_<name>(parser)`` and ``_run_<name>(args) -> int`` and register them with
:func:`register` (or add an entry to the dict). Keep heavy imports (numpy, ase, torch, nequip)
inside the run functions so that ``nequip-pol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

#: name -> (one-line help, add_arguments(parser), run(args) -> exit code)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register(name: str, help: str, add_arguments, run) -> None:
    """Register a subcommand (later registrations replace earlier ones of the same name)."""
    SUBCOMMANDS[name] = (help, add_arguments, run)


# ------------------------------------------------------------------------------------- parse-qe


def _add_parse_qe(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_XML",
                   help="QE run folders or XML files (zero field + fields along x, y, z for each configuration)")
    p.add_argument("-o", "--output", required=True, help="extended-XYZ file to write")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="tolerance (Angstrom) on cell and positions for grouping runs (default 1e-4)")
    p.add_argument("--include-field-frames", action="store_true",
                   help="also write one frame per finite-field run, with electric_field")
    p.add_argument("--no-fold", action="store_true",
                   help="keep QE's raw polarization branch instead of folding P to the branch closest to zero")


def _run_parse_qe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nequip_pol.io.qe import NequipPolIOError, OutputExistsError, parse_qe_runs, write_frames

    out = Path(args.output)
    # fail before the (possibly long) parsing
    if out.is_dir():
        print(f"nequip-pol parse-qe: error: {out}: is a folder; give the path of the extended-XYZ file to write "
              f"(e.g. -o {out / 'frames.xyz'})", file=sys.stderr)
        return 2
    if out.exists() and not args.force:
        print(f"nequip-pol parse-qe: error: {out}: output file exists; not overwriting it (use --force)", file=sys.stderr)
        return 2
    try:
        frames = parse_qe_runs(args.runs, tol=args.tol, include_field_frames=args.include_field_frames,
                               fold=not args.no_fold)
        write_frames(frames, out, force=args.force)
    except OutputExistsError as exc:
        print(f"nequip-pol parse-qe: error: {exc}", file=sys.stderr)
        return 2
    except NequipPolIOError as exc:
        print(f"nequip-pol parse-qe: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(frames)} frame(s) to {out}")
    return 0


# ----------------------------------------------------------------------------------- check-data


def _add_check_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="extended-XYZ files")
    p.add_argument("--key-map", action="append", default=[], metavar="FILE_KEY=KEY",
                   help="rename a key of the file to a canonical key (e.g. my_bec=born_effective_charges); repeatable")


def _run_check_data(args: argparse.Namespace) -> int:
    from nequip_pol.io.check_data import check_dataset

    mapping = {}
    for item in args.key_map:
        if "=" not in item:
            print(f"nequip-pol check-data: error: --key-map expects FILE_KEY=KEY, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        mapping[k.strip()] = v.strip()
    rc = 0
    for f in args.files:
        rep = check_dataset(f, key_mapping=mapping)
        print(rep)
        if not rep.ok:
            rc = 1
    return rc


register("parse-qe", "convert Quantum ESPRESSO finite-field runs to extended XYZ", _add_parse_qe, _run_parse_qe)
register("check-data", "check an extended-XYZ dataset (keys, sum rule, symmetry, P branch)", _add_check_data, _run_check_data)


# ----------------------------------------------------------------------------------------- demo


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, got {text!r}") from None
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"must be positive (minutes of training wall time), got {text}")
    return value


def _add_demo(p: argparse.ArgumentParser) -> None:
    # defined here, not in nequip_pol.demo: that module imports torch, and help stays fast. The
    # numbers are checked here, so that a bad one stops the verb before anything is written.
    p.add_argument("out_dir", nargs="?", default="nequip-pol-demo",
                   help="folder to write into (default: nequip-pol-demo); it must not exist or be empty")
    p.add_argument("--epochs", type=_at_least_one, default=None,
                   help="training epochs, at least 1 (default: the shipped schedule; fewer gives a quick, "
                        "under-trained run)")
    p.add_argument("--max-minutes", type=_positive_minutes, default=120.0,
                   help="safety limit on the training wall time in minutes, > 0 (default 120; a normal run takes "
                        "a few minutes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data (default 0)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty folder")


def _run_demo(args: argparse.Namespace) -> int:
    from nequip_pol.demo import main as demo_main

    return demo_main(args)


register("demo", "the whole method on the shipped analytic material: generate, train, evaluate, plot", _add_demo, _run_demo)


# ------------------------------------------------------------------------------------- analysis
# IR / Raman spectra, dielectric constants, phonons (nequip_pol/analysis/commands.py; it imports
# only argparse at module level, the numerics are imported when a verb runs)


def _analysis_verb(name: str):
    def add(p: argparse.ArgumentParser) -> None:
        from nequip_pol.analysis import commands

        getattr(commands, f"add_{name}")(p)

    def run(args: argparse.Namespace) -> int:
        from nequip_pol.analysis import commands

        return getattr(commands, f"run_{name}")(args)

    return add, run


register("ir", "IR absorption and eps(omega) from a P(t) log (dipole autocorrelation, fluctuation-dissipation)",
         *_analysis_verb("ir"))
register("raman", "isotropic and anisotropic Raman spectra from an alpha(t) log", *_analysis_verb("raman"))
register("dielectric", "eps_inf and eps_0 of a structure by the harmonic, field-response and MD-fluctuation routes",
         *_analysis_verb("dielectric"))
register("phonons", "Gamma phonons (phonopy), IR oscillator strengths and LO-TO splitting of a structure",
         *_analysis_verb("phonons"))


# ----------------------------------------------------------------------------------- hysteresis


def _add_hysteresis(p: argparse.ArgumentParser) -> None:
    p.description = (
        "P-E hysteresis loops by MD (Langevin) under E(t) = E0 f(t/T) along an axis, at each temperature x "
        "period: coercive fields Ec+/Ec-, remanent polarizations Pr+/Pr- and the loop area per cycle, "
        "averaged over cycles with their spread. Writes OUT/hysteresis.csv, one P(t) CSV per run, and "
        "loops.png, ec_vs_temperature.png, ec_vs_frequency.png. Units: V/A, fs, K, e*A, eV."
    )
    p.add_argument("model", metavar="MODEL",
                   help="compiled model (*.nequip.pt2, --target nequip_pol_ase), checkpoint or package, or "
                        "'reference:ferroelectric' / 'reference:paraelectric' for the exact analytic materials")
    p.add_argument("structure", metavar="STRUCTURE",
                   help="starting structure (any file ASE reads; best a poled polar state), or 'reference:poled' "
                        "for the relaxed +P state of the analytic ferroelectric along --axis")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--axis", default="z", help="field axis: x, y, z or a vector such as '1,1,0' (default z)")
    p.add_argument("--amplitude", type=float, required=True, metavar="E0", help="field amplitude E0, V/A (> 0)")
    p.add_argument("--period", type=float, nargs="+", required=True, metavar="FS", help="field period(s) T, fs")
    p.add_argument("--temperatures", type=float, nargs="+", required=True, metavar="K", help="temperature(s), K")
    p.add_argument("--waveform", choices=["triangle", "sine"], default="triangle",
                   help="f(t/T): triangle (constant sweep rate; default) or sine")
    p.add_argument("--cycles", type=int, default=3, help="loops after the initial quarter period (default 3)")
    p.add_argument("--discard", type=int, default=1, help="first loops left out of the averages (poling; default 1)")
    p.add_argument("--timestep", type=float, default=1.0, metavar="FS", help="MD time step, fs (default 1)")
    p.add_argument("--friction", type=float, default=0.01, metavar="PER_FS",
                   help="Langevin friction, 1/fs (default 0.01; 0: velocity Verlet, NVE)")
    p.add_argument("--sample-interval", type=int, default=1, metavar="N", help="record P every N steps (default 1)")
    p.add_argument("--repeat", default="1x1x1", metavar="NxNxN", help="repeat the structure (default 1x1x1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial velocities and the Langevin noise")
    p.add_argument("--lammps-plugin", default=None, metavar="SO",
                   help="run the loops in LAMMPS with this nequip_polplugin.so; MODEL is then a package compiled "
                        "with --target nequip_pol_pair_allegro (or _no_born) and the axis x, y or z")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks of the LAMMPS loops (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs in DIR")


def _run_hysteresis(args: argparse.Namespace) -> int:
    def fail(message: str, code: int = 2) -> int:
        print(f"nequip-pol hysteresis: error: {message}", file=sys.stderr)
        return code

    try:
        repeat = tuple(int(k) for k in args.repeat.lower().split("x"))
        if len(repeat) != 3 or min(repeat) < 1:
            raise ValueError
    except ValueError:
        return fail(f"--repeat must look like 2x2x2, got {args.repeat!r}")
    from nequip_pol.analysis.hysteresis import LammpsLoopRunner, LoopProtocol, check_output_dir, run_sweep

    protocol = LoopProtocol(axis=args.axis, amplitude=args.amplitude, period_fs=args.period[0],
                            waveform=args.waveform, cycles=args.cycles, discard_cycles=args.discard,
                            timestep_fs=args.timestep, temperature_K=args.temperatures[0],
                            friction_per_fs=args.friction, sample_interval=args.sample_interval, seed=args.seed)
    try:
        # every setting, and existing outputs, before the (slow) model loading
        for t in args.temperatures:
            for period in args.period:
                LoopProtocol(**{**protocol.__dict__, "temperature_K": t, "period_fs": period}).validate()
        check_output_dir(args.output, args.temperatures, args.period, args.force)
        runner = None
        if args.lammps_plugin:
            if args.model.startswith("reference:"):
                raise ValueError("the reference materials run in ASE only; --lammps-plugin needs a compiled model")
            atoms = _read_structure(args.structure)
            species = list(dict.fromkeys(atoms.get_chemical_symbols()))
            runner = LammpsLoopRunner(args.model, species, args.lammps_plugin, ranks=args.ranks)
            runner.check(protocol)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        return fail(str(exc))

    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    try:
        calc = None
        if runner is None:
            calc, atoms = _hysteresis_inputs(args)
        atoms = atoms.repeat(repeat)
        where = f"LAMMPS, {args.ranks} rank(s)" if runner else "ASE"
        print(f"{len(atoms)} atoms, model {args.model} ({where}); output {args.output}")
        run_sweep(atoms, calc, protocol, args.temperatures, args.period, args.output, force=args.force, runner=runner)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, TypeError, RuntimeError) as exc:
        return fail(str(exc))
    print(f"wrote {args.output}/hysteresis.csv and the figures")
    return 0


def _read_structure(path: str):
    import os

    import ase.io

    if path.startswith("reference:"):
        raise ValueError(f"{path!r} is for the reference materials in ASE; give a structure file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"structure file not found: {path!r}")
    try:
        return ase.io.read(path)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ValueError(f"cannot read the structure {path!r}: {exc}") from exc


def _hysteresis_inputs(args):
    """(calculator, structure) from the MODEL and STRUCTURE arguments; ValueError naming the problem."""
    import os

    from ase.calculators.calculator import PropertyNotImplementedError

    model = args.model
    if model.startswith("reference:"):
        from nequip_pol.reference import AnalyticPolarMaterial, ReferenceMaterialCalculator
        from nequip_pol.reference.ferroelectric import AnalyticFerroelectric

        materials = {"reference:ferroelectric": AnalyticFerroelectric, "reference:paraelectric": AnalyticPolarMaterial}
        if model not in materials:
            raise ValueError(f"unknown reference material {model!r}; choose one of {', '.join(materials)}")
        material = materials[model]()
        calc = ReferenceMaterialCalculator(material)
    else:
        from nequip_pol.integrations.ase import NequIPPolCalculator

        if not os.path.exists(model):
            raise FileNotFoundError(f"model file not found: {model!r}")
        loader = NequIPPolCalculator.from_compiled_model if model.endswith(".pt2") else NequIPPolCalculator.from_saved_model
        calc = loader(model, chemical_species_to_atom_type_map=True)
        material = None
    if args.structure == "reference:poled":
        from nequip_pol.reference.ferroelectric import AnalyticFerroelectric, spontaneous_state

        atoms, _ = spontaneous_state(material if isinstance(material, AnalyticFerroelectric) else AnalyticFerroelectric(),
                                     args.axis)
    else:
        atoms = _read_structure(args.structure)
    atoms.calc = None
    try:
        calc.set_field([0.0, 0.0, 0.0])
        atoms.calc = calc
        calc.get_property("polarization", atoms)
    except PropertyNotImplementedError as exc:
        raise ValueError(f"the model gives no polarization: {exc}") from exc
    finally:
        atoms.calc = None
    return calc, atoms


register("hysteresis", "P-E hysteresis loops under an oscillating field: Ec, Pr, loop area vs temperature and period",
         _add_hysteresis, _run_hysteresis)


from nequip_pol.lammps import commands as _lammps_commands  # noqa: E402,F401  (registers `lammps`)


# ----------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nequip-pol", description="nequip-pol tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_, add_arguments, run) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add_arguments(sp)
        sp.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # the console script imports the package without nequip (fast --help); register keys and
    # compile targets now, as an import through nequip would have
    from nequip_pol import _register_with_nequip

    _register_with_nequip()
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
