"""``nequip-pol hysteresis | coercive``: ferroelectric switching from the command line.

``hysteresis`` runs P-E loops over temperatures x periods (:func:`~nequip_pol.analysis.sweeps.run_sweep`,
in ASE or LAMMPS); ``coercive`` gives the zero-temperature intrinsic coercive field of a
structure (:func:`~nequip_pol.analysis.coercive.intrinsic_coercive_field`). MODEL arguments,
errors and the exit status are those of every analysis verb
(:mod:`~nequip_pol.cli.common`). Only ``argparse`` is imported at module level.
"""

from __future__ import annotations

import argparse

from .common import (
    REFERENCE_MATERIALS,
    CommandError,
    check_file,
    check_model,
    input_checker,
    load_calculator,
    read_structure,
    run_guarded,
)

__all__ = [
    "add_hysteresis",
    "run_hysteresis",
    "add_coercive",
    "run_coercive",
    "check_inputs",
    "loop_protocol",
    "system_size",
]

#: STRUCTURE name of the relaxed +P state of the exact ferroelectric
POLED_REFERENCE = "reference:poled"
_MODEL_HELP = (
    "compiled model (*.nequip.pt2, --target nequip_pol_ase), checkpoint (*.ckpt) or package (*.nequip.zip), "
    f"a shipped model's name (sio2, batio3), or {' / '.join(REFERENCE_MATERIALS)} for the exact analytic "
    "materials"
)


# ---------------------------------------------------------------------- what both verbs share
def _add_model_and_structure(p: argparse.ArgumentParser, structure_help: str) -> None:
    """The positional MODEL and STRUCTURE arguments (``structure_help``: the verb's text)."""
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("structure", metavar="STRUCTURE", help=structure_help)


def system_size(verb: str, args) -> int:
    """Atoms of one model evaluation (what the thread rule weighs): STRUCTURE (``reference:poled``:
    the 5-atom cell) times ``--repeat`` for ``hysteresis``."""
    if args.structure == POLED_REFERENCE:
        from nequip_pol.reference import ideal_structure

        n_atoms = len(ideal_structure((1, 1, 1)))
    else:
        n_atoms = len(read_structure(args.structure, periodic=False))
    if verb == "hysteresis":
        a, b, c = _repeat(args.repeat)
        n_atoms *= a * b * c
    return n_atoms


def _calculator_and_structure(args, device: str = "cpu"):
    """``(calc, atoms)``: the MODEL's calculator on ``device`` and the STRUCTURE argument as
    Atoms (:func:`_starting_structure`; ``reference:poled`` in the model's own material)."""
    calc = load_calculator(args.model, device)
    return calc, _starting_structure(args, getattr(calc, "material", None))


# ---------------------------------------------------------------------- hysteresis
def add_hysteresis(p: argparse.ArgumentParser) -> None:
    p.description = (
        "P-E hysteresis loops by MD (Langevin) under E(t) = E0 f(t/T) along an axis, at each temperature x "
        "period: coercive fields Ec+/Ec-, remanent polarizations Pr+/Pr- and the loop area per cycle, "
        "averaged over cycles with their spread. Writes OUT/hysteresis.csv, one P(t) CSV per run, and "
        "loops.png, ec_vs_temperature.png, ec_vs_frequency.png. Units: V/A, fs, K, e*A, eV."
    )
    _add_model_and_structure(
        p,
        "starting structure (any file ASE reads; best a poled polar state), or 'reference:poled' "
        "for the relaxed +P state of the analytic ferroelectric along --axis",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--axis",
        default="z",
        help="field axis: x, y, z or a vector such as '1,1,0' (default z)",
    )
    p.add_argument(
        "--amplitude",
        type=float,
        required=True,
        metavar="E0",
        help="field amplitude E0, V/A (> 0)",
    )
    p.add_argument(
        "--period",
        type=float,
        nargs="+",
        required=True,
        metavar="FS",
        help="field period(s) T, fs",
    )
    p.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        required=True,
        metavar="K",
        help="temperature(s), K",
    )
    p.add_argument(
        "--waveform",
        choices=["triangle", "sine"],
        default="triangle",
        help="f(t/T): triangle (constant sweep rate; default) or sine",
    )
    p.add_argument(
        "--cycles",
        type=int,
        default=3,
        help="loops after the initial quarter period (default 3)",
    )
    p.add_argument(
        "--discard",
        type=int,
        default=1,
        help="first loops left out of the averages (poling; default 1)",
    )
    p.add_argument(
        "--timestep",
        type=float,
        default=1.0,
        metavar="FS",
        help="MD time step, fs (default 1)",
    )
    p.add_argument(
        "--friction",
        type=float,
        default=0.01,
        metavar="PER_FS",
        help="Langevin friction, 1/fs (default 0.01; 0: velocity Verlet, NVE)",
    )
    p.add_argument(
        "--sample-interval",
        type=int,
        default=1,
        metavar="N",
        help="record P every N steps (default 1)",
    )
    p.add_argument(
        "--snapshot-interval",
        type=int,
        default=0,
        metavar="N",
        help="write the structure every N steps beside each P(t) file (.snapshots.extxyz in ASE, "
        ".snapshots.lammpstrj in LAMMPS) for per-cell views (nequip_pol.analysis.domains; default 0: none)",
    )
    p.add_argument(
        "--repeat",
        default="1x1x1",
        metavar="NxNxN",
        help="repeat the structure (default 1x1x1)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial velocities and the Langevin noise",
    )
    p.add_argument(
        "--lammps-plugin",
        default=None,
        metavar="SO",
        help="run the loops in LAMMPS with this nequip_polplugin.so; MODEL is then a package compiled "
        "with --target nequip_pol_pair_allegro (or _no_born) and the axis x, y or z",
    )
    p.add_argument(
        "--ranks", type=int, default=1, help="MPI ranks of the LAMMPS loops (default 1)"
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite existing outputs in DIR"
    )


def _repeat(text: str):
    try:
        repeat = tuple(int(k) for k in text.lower().split("x"))
        if len(repeat) != 3 or min(repeat) < 1:
            raise ValueError
    except ValueError:
        raise CommandError(f"--repeat must look like 2x2x2, got {text!r}") from None
    return repeat


def loop_protocol(args):
    """The :class:`~nequip_pol.analysis.protocol.LoopProtocol` of the hysteresis options in
    ``args`` (``axis``, ``amplitude`` V/A, ``period`` (fs, a list: its first), ``waveform``,
    ``cycles``, ``discard``, ``timestep`` fs, ``temperatures`` (K, a list: its first),
    ``friction`` 1/fs, ``sample_interval``, ``snapshot_interval``, ``seed``); a sweep varies period and temperature."""
    from nequip_pol.analysis.protocol import LoopProtocol

    return LoopProtocol(
        axis=args.axis,
        amplitude=args.amplitude,
        period_fs=args.period[0],
        waveform=args.waveform,
        cycles=args.cycles,
        discard_cycles=args.discard,
        timestep_fs=args.timestep,
        temperature_K=args.temperatures[0],
        friction_per_fs=args.friction,
        sample_interval=args.sample_interval,
        snapshot_interval=args.snapshot_interval,
        seed=args.seed,
    )


def _check_hysteresis(args) -> None:
    """Every setting, the files and existing outputs, before the (slow) model loading; numpy only."""
    from dataclasses import replace

    from nequip_pol.analysis.sweeps import check_output_dir

    _repeat(args.repeat)
    protocol = loop_protocol(args)
    for t in args.temperatures:
        for period in args.period:
            replace(protocol, temperature_K=t, period_fs=period).validate()
    if args.lammps_plugin and (
        args.model.startswith("reference:") or args.model in ("analytic",)
    ):
        raise CommandError(
            "the reference materials run in ASE only; --lammps-plugin needs a compiled model"
        )
    if args.structure != POLED_REFERENCE:
        check_file(args.structure, "structure")
    elif args.lammps_plugin:
        raise CommandError(
            f"{POLED_REFERENCE!r} is for the reference materials in ASE; give a structure file"
        )
    if args.lammps_plugin:
        check_file(args.model, "model")
        if args.ranks < 1:
            raise CommandError(f"--ranks must be >= 1, got {args.ranks}")
    else:
        args.model = check_model(args.model)
    check_output_dir(args.output, args.temperatures, args.period, args.force)


def _starting_structure(args, material=None):
    """The STRUCTURE argument as Atoms: a file, or the relaxed +P state of the exact ferroelectric."""
    if args.structure == POLED_REFERENCE:
        from nequip_pol.reference.ferroelectric import (
            AnalyticFerroelectric,
            spontaneous_state,
        )

        material = (
            material
            if isinstance(material, AnalyticFerroelectric)
            else AnalyticFerroelectric()
        )
        return spontaneous_state(material, args.axis)[0]
    return read_structure(args.structure, periodic=False)


def _check_polarization(calc, atoms) -> None:
    from ase.calculators.calculator import PropertyNotImplementedError

    try:
        calc.set_field([0.0, 0.0, 0.0])
        atoms.calc = calc
        calc.get_property("polarization", atoms)
    except PropertyNotImplementedError as exc:
        raise CommandError(f"the model gives no polarization: {exc}") from None
    finally:
        atoms.calc = None


def _run_hysteresis(args) -> int:
    from nequip_pol.analysis.loop_drivers import LammpsLoopRunner
    from nequip_pol.analysis.sweeps import run_sweep

    repeat = _repeat(args.repeat)
    protocol = loop_protocol(args)
    runner, calc = None, None
    if args.lammps_plugin:
        atoms = read_structure(args.structure, periodic=False)
        species = list(dict.fromkeys(atoms.get_chemical_symbols()))
        runner = LammpsLoopRunner(
            args.model, species, args.lammps_plugin, ranks=args.ranks
        )
        runner.check(protocol)
    if runner is None:
        calc, atoms = _calculator_and_structure(args)
        _check_polarization(calc, atoms)
    atoms = atoms.repeat(repeat)
    where = f"LAMMPS, {args.ranks} rank(s)" if runner else "ASE"
    print(f"{len(atoms)} atoms, model {args.model} ({where}); output {args.output}")
    try:
        run_sweep(
            atoms,
            calc,
            protocol,
            args.temperatures,
            args.period,
            args.output,
            force=args.force,
            runner=runner,
        )
    except (
        TypeError,
        RuntimeError,
    ) as exc:  # a calculator or LAMMPS failing during the run
        raise CommandError(str(exc)) from None
    print(f"wrote {args.output}/hysteresis.csv and the figures")
    return 0


def run_hysteresis(args) -> int:
    return run_guarded("hysteresis", _run_hysteresis, args)


# ---------------------------------------------------------------------- coercive
def add_coercive(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Zero-temperature intrinsic coercive field of a polar structure: relaxed at zero field, then followed "
        "under a growing field against its polarization (continuation, FIRE relaxations at fixed cell) until "
        "the polar minimum disappears; bisection to --tol. Prints Ec (V/A and MV/cm). Writes nothing."
    )
    _add_model_and_structure(
        p,
        "a polar structure with P along +AXIS (any file ASE reads), or 'reference:poled' (the exact "
        "ferroelectric's +P state; its centrosymmetric reference is the ideal cubic cell)",
    )
    p.add_argument(
        "--centrosymmetric",
        default=None,
        metavar="FILE",
        help="the centrosymmetric structure of the same atoms in the same order (the order parameter of "
        "the switching is the distortion from it); required unless STRUCTURE is reference:poled",
    )
    p.add_argument(
        "--axis",
        default="z",
        help="direction of P: x, y, z, -z or a vector such as '1,1,0' (default z)",
    )
    p.add_argument(
        "--step",
        type=float,
        default=0.05,
        metavar="V_A",
        help="field step of the continuation, V/A",
    )
    p.add_argument(
        "--max-field",
        type=float,
        default=2.0,
        metavar="V_A",
        help="give up above this field, V/A",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        metavar="V_A",
        help="width of the final bracket, V/A",
    )
    p.add_argument(
        "--fmax",
        type=float,
        default=1e-3,
        help="force tolerance of each relaxation, eV/A (default 1e-3, enough for float32 models)",
    )
    p.add_argument(
        "--device", default="cpu", help="torch device of the model (default cpu)"
    )


def _check_coercive(args) -> None:
    from nequip_pol.analysis.protocol import axis_vector

    args.model = check_model(args.model)
    axis_vector(args.axis)
    if args.structure != POLED_REFERENCE:
        check_file(args.structure, "structure")
        if args.centrosymmetric is None:
            raise CommandError(
                "give --centrosymmetric FILE: the centrosymmetric structure that tells a polar "
                "state from a switched one"
            )
    if args.centrosymmetric is not None:
        check_file(args.centrosymmetric, "centrosymmetric structure")
    if not (
        args.step > 0 and args.max_field > args.step and args.tol > 0 and args.fmax > 0
    ):
        raise CommandError(
            "need --step > 0, --max-field > --step, --tol > 0 and --fmax > 0"
        )


def _run_coercive(args) -> int:
    from nequip_pol.units import V_PER_A_TO_MV_PER_CM, dipole_density_to_uc_cm2
    from nequip_pol.analysis.coercive import intrinsic_coercive_field

    calc, atoms = _calculator_and_structure(args, args.device)
    if args.structure == POLED_REFERENCE and args.centrosymmetric is None:
        from nequip_pol.reference import ideal_structure

        centro = ideal_structure((1, 1, 1))
    else:
        centro = read_structure(args.centrosymmetric, periodic=False)
    print(
        f"{len(atoms)} atoms ({atoms.get_chemical_formula()}), model {args.model}, P along {args.axis}"
    )
    try:
        res = intrinsic_coercive_field(
            atoms,
            calc,
            args.axis,
            reference=centro,
            step=args.step,
            max_field=args.max_field,
            fmax=args.fmax,
            tol=args.tol,
            progress=print,
        )
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    ec = res["coercive_field"]
    print(
        f"intrinsic coercive field: {ec:.5f} V/A = {ec * V_PER_A_TO_MV_PER_CM:.3f} MV/cm "
        f"(between {res['bracket_low']:.5f} and {res['bracket_high']:.5f} V/A; 0 K, single domain, fixed cell)"
    )
    if atoms.pbc.all():
        ps = dipole_density_to_uc_cm2(res["spontaneous_dipole"], atoms.get_volume())
        print(
            f"P - P(centrosymmetric) at zero field: {res['spontaneous_dipole']:.4f} e*A = {ps:.2f} uC/cm^2"
        )
    return 0


def run_coercive(args) -> int:
    return run_guarded("coercive", _run_coercive, args)


# ---------------------------------------------------------------------- input checks
_CHECKS = {"hysteresis": _check_hysteresis, "coercive": _check_coercive}

check_inputs = input_checker(_CHECKS)
