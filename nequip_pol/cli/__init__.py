"""``nequip-pol`` command line: every verb's parser and run function, one registry.

The verbs live in the modules of this package, one per family (:data:`VERBS` is the table):

- :mod:`~nequip_pol.cli.data`: ``parse-qe``, ``parse-qe-ph``, ``parse-vasp``, ``check-data``,
  ``align-branches``
- :mod:`~nequip_pol.cli.demo`: ``demo`` (the main job)
- :mod:`~nequip_pol.cli.spectra`: ``ir``, ``raman``
- :mod:`~nequip_pol.cli.dielectric`: ``dielectric``
- :mod:`~nequip_pol.cli.phonons`: ``phonons``
- :mod:`~nequip_pol.cli.switching`: ``hysteresis``, ``coercive``
- :mod:`~nequip_pol.cli.lammps`: ``lammps``
- :mod:`~nequip_pol.cli.training`: ``train-long``, ``save-run``, ``frame-errors``, ``ship``
- :mod:`~nequip_pol.cli.common`: what they share (errors, exit status, input checks, outputs)

A module of verbs defines ``add_<verb>(parser)`` and ``run_<verb>(args) -> int`` for each of its
verbs (``-`` in the verb's name becomes ``_``) and, optionally, ``check_inputs(verb, args) ->
int``: files, numbers and outputs checked before anything heavy is imported (0, or 2 after one
``nequip-pol VERB: error: ...`` line). These modules import only ``argparse`` and the standard
library at module level, so that ``nequip-pol --help`` stays fast; numpy, torch, ase and nequip
are imported inside the run functions. To add a verb: a row in :data:`VERBS` and the functions
in its module (or :func:`register` for a verb defined elsewhere). The science packages
(``analysis``, ``io``, ``reference``, ``integrations``, ``lammps``) import nothing from here.

Threads: the verbs of :data:`RUNS_A_MODEL` take ``--threads N``, and :func:`main` runs them on
the threads of one rule (:mod:`nequip_pol.threads`: ``--threads``, else ``OMP_NUM_THREADS``,
else the free cores and the system's size), chosen once before the model is loaded and printed
as the first line; a module may give the size with ``system_size(verb, args) -> int | None``
(atoms of one model evaluation; :func:`~nequip_pol.cli.common.verb_threads`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from typing import Callable

__all__ = [
    "VERBS",
    "SUBCOMMANDS",
    "INPUT_CHECKS",
    "SYSTEM_SIZES",
    "WITHOUT_NEQUIP",
    "RUNS_A_MODEL",
    "register",
    "build_parser",
    "main",
]

#: verb -> (module of nequip_pol.cli, one-line help); the order is that of ``nequip-pol --help``
VERBS = {
    "parse-qe": (
        "data",
        "convert Quantum ESPRESSO finite-field runs to extended XYZ",
    ),
    "parse-qe-ph": (
        "data",
        "convert Quantum ESPRESSO linear-response runs (pw.x + ph.x at q = 0) to extended XYZ",
    ),
    "parse-vasp": (
        "data",
        "convert VASP runs (LEPSILON / LCALCEPS / LCALCPOL; one frame per run) to extended XYZ",
    ),
    "check-data": (
        "data",
        "check an extended-XYZ dataset (keys, sum rule, symmetry, P branch)",
    ),
    "align-branches": (
        "data",
        "move P labels by whole quanta to the branch of a reference model (one consistent branch)",
    ),
    "demo": (
        "demo",
        "the whole method on the shipped analytic material: generate, train, evaluate, plot",
    ),
    "ir": (
        "spectra",
        "IR absorption and eps(omega) from a P(t) log (dipole autocorrelation, fluctuation-dissipation)",
    ),
    "raman": (
        "spectra",
        "isotropic and anisotropic Raman spectra from an alpha(t) log",
    ),
    "dielectric": (
        "dielectric",
        "eps_inf and eps_0 of a structure by the harmonic, field-response and MD-fluctuation "
        "routes",
    ),
    "phonons": (
        "phonons",
        "Gamma phonons (phonopy), IR oscillator strengths and LO-TO splitting of a structure",
    ),
    "hysteresis": (
        "switching",
        "P-E hysteresis loops under an oscillating field: Ec, Pr, loop area vs "
        "temperature and period",
    ),
    "coercive": (
        "switching",
        "zero-temperature intrinsic coercive field of a polar structure (continuation "
        "under a growing opposite field)",
    ),
    "lammps": (
        "lammps",
        "LAMMPS plugin: build it from the installed package (build [OUT]) or show its files (path)",
    ),
    "train-long": (
        "training",
        "train long in chunks, resumable, with a test point per chunk (learning curve vs CPU hours)",
    ),
    "save-run": (
        "training",
        "copy a long run's resumable state (to commit it, or to continue on another machine)",
    ),
    "frame-errors": (
        "training",
        "per-frame errors of a model on a part of a dataset's split: which frames make the error",
    ),
    "ship": (
        "training",
        "package a long run's best model into nequip_pol/models with its card (a checkout only)",
    ),
}
#: verbs that never touch a nequip model in this process (no key or compile-target
#: registration needed; train-long runs nequip-train in subprocesses)
WITHOUT_NEQUIP = {"lammps", "train-long", "save-run"}
#: verbs that run a model, here or in the processes they start: they take ``--threads`` and run
#: on the threads of :mod:`nequip_pol.threads` (``train-long``: its nequip-train processes)
RUNS_A_MODEL = {
    "demo",
    "dielectric",
    "phonons",
    "hysteresis",
    "coercive",
    "train-long",
    "frame-errors",
    "align-branches",
}
#: verbs whose positional arguments may come between their options (argparse's
#: ``parse_intermixed_args``: ``OUT --dataset X key=value --resume key2=value2``)
INTERMIXED = {"train-long"}

#: name -> (one-line help, add_arguments(parser), run(args) -> exit code)
SUBCOMMANDS: dict[
    str,
    tuple[
        str,
        Callable[[argparse.ArgumentParser], None],
        Callable[[argparse.Namespace], int],
    ],
] = {}
#: verb -> check(args) -> exit code: run by main() before the nequip registration and the verb,
#: so that bad input is answered at once (no torch import)
INPUT_CHECKS: dict[str, Callable[[argparse.Namespace], int]] = {}
#: verb -> system_size(args) -> atoms of one model evaluation (or None): the size that the thread
#: rule weighs (verbs of :data:`RUNS_A_MODEL`)
SYSTEM_SIZES: dict[str, Callable[[argparse.Namespace], "int | None"]] = {}


def register(
    name: str, help: str, add_arguments, run, check=None, system_size=None
) -> None:
    """Register a subcommand (later registrations replace earlier ones of the same name);
    ``check(args) -> int``, if given, runs before it (see the module docstring);
    ``system_size(args)``, if given, is the size the thread rule weighs (a verb of
    :data:`RUNS_A_MODEL`)."""
    SUBCOMMANDS[name] = (help, add_arguments, run)
    for table, value in ((INPUT_CHECKS, check), (SYSTEM_SIZES, system_size)):
        if value is not None:
            table[name] = value
        else:
            table.pop(name, None)


def _verb(name: str, module_name: str):
    """``(add, run, check, system_size)`` of a verb of :data:`VERBS`: its module is imported
    when they are called (argparse and the standard library only)."""
    attribute = name.replace("-", "_")

    def module():
        return importlib.import_module(f"{__name__}.{module_name}")

    def add(p: argparse.ArgumentParser) -> None:
        getattr(module(), f"add_{attribute}")(p)

    def run(args: argparse.Namespace) -> int:
        return getattr(module(), f"run_{attribute}")(args)

    def check(args: argparse.Namespace) -> int:
        check_inputs = getattr(module(), "check_inputs", None)
        return 0 if check_inputs is None else check_inputs(name, args)

    def system_size(args: argparse.Namespace):
        size = getattr(module(), "system_size", None)
        return None if size is None else size(name, args)

    return add, run, check, system_size


for _name, (_module, _help) in VERBS.items():
    _add, _run, _check, _size = _verb(_name, _module)
    register(_name, _help, _add, _run, _check, _size)


# ----------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nequip-pol", description="nequip-pol tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_, add_arguments, run) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add_arguments(sp)
        if name in RUNS_A_MODEL:
            from .common import add_threads_argument

            add_threads_argument(sp)
        sp.set_defaults(_run=run)
    return parser


def _parse(argv) -> argparse.Namespace:
    """The arguments of one verb; a verb of :data:`INTERMIXED` is parsed by its own parser with
    ``parse_intermixed_args`` (argparse parses subcommands without it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in INTERMIXED:
        (verbs,) = [a for a in parser._actions if isinstance(a.choices, dict)]
        args = verbs.choices[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    check = INPUT_CHECKS.get(args.command)
    if check is not None and SUBCOMMANDS[args.command][2] is args._run:
        code = check(args)
        if code:
            return code
    threads = contextlib.nullcontext()
    if args.command in RUNS_A_MODEL:
        # one rule, once, before the model is loaded (nequip_pol.threads); printed first
        from .common import verb_threads

        threads = verb_threads(
            args,
            SYSTEM_SIZES.get(args.command),
            torch_threads=args.command not in WITHOUT_NEQUIP,
        )
    with threads:
        if args.command not in WITHOUT_NEQUIP:
            # the console script imports the package without nequip (fast --help); register
            # keys and compile targets now, as an import through nequip would have
            from nequip_pol import _register_with_nequip

            _register_with_nequip()
        return int(args._run(args) or 0)
