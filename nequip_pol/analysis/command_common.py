"""What every analysis verb of ``nequip-pol`` shares: errors, exit status, the model loader, the structure reader.

Conventions (``docs/analysis.md``): inputs are checked first, before any heavy import (torch,
nequip, phonopy) and any work: the files exist, the numbers are in range, no output would be
overwritten (unless ``--force``). Bad input stops a verb with one line
``nequip-pol VERB: error: ...`` and the exit status :data:`EXIT_USER_ERROR` (2, as argparse),
and nothing is written. The verbs' modules import only ``argparse`` and the standard library at
module level (``--help`` stays fast); each gives :mod:`nequip_pol.cli` a ``check_inputs``
(:func:`input_checker`) that runs before the verb.

MODEL arguments, the same for every verb (:func:`check_model`, :func:`load_calculator`):

* ``reference:paraelectric`` / ``reference:ferroelectric``: the exact analytic materials
  (:mod:`nequip_pol.reference`); ``analytic`` is the old name of ``reference:paraelectric``
  (still accepted, with a note);
* the name of a shipped model (``sio2``, ``batio3``: :mod:`nequip_pol.models`);
* a file: a compiled model (``*.nequip.pt2``, ``--target nequip_pol_ase``), a checkpoint
  (``*.ckpt``) or a package (``*.nequip.zip``).

This module imports only the standard library at module level.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = [
    "EXIT_USER_ERROR",
    "REFERENCE_MATERIALS",
    "DEPRECATED_MODEL_NAMES",
    "CommandError",
    "run_guarded",
    "run_check",
    "input_checker",
    "check_model",
    "check_file",
    "load_calculator",
    "read_structure",
    "output_prefix",
    "output_paths",
    "write_csv",
    "progress_printer",
]

#: exit status of every verb for bad input (argparse's)
EXIT_USER_ERROR = 2
#: MODEL names of the exact analytic materials -> (module, class) in nequip_pol.reference
REFERENCE_MATERIALS = {
    "reference:paraelectric": (
        "nequip_pol.reference.paraelectric",
        "AnalyticPolarMaterial",
    ),
    "reference:ferroelectric": (
        "nequip_pol.reference.ferroelectric",
        "AnalyticFerroelectric",
    ),
}
#: old MODEL names -> their current name
DEPRECATED_MODEL_NAMES = {"analytic": "reference:paraelectric"}
_MODEL_SUFFIXES = (".pt2", ".ckpt", ".zip", ".pth", ".pt")


class CommandError(Exception):
    """A user-facing error: printed as one line without traceback, exit status 2."""


def run_guarded(verb: str, body, args) -> int:
    """``body(args)``, with user errors printed as ``nequip-pol VERB: error: ...`` and exit status 2."""
    try:
        return int(body(args) or 0)
    except (
        CommandError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        KeyError,
    ) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"nequip-pol {verb}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


def run_check(check, verb: str, args) -> int:
    """Run ``check(args)`` (a verb's input check: files, numbers, outputs) under
    :func:`run_guarded`: 0, or 2 after the error line."""

    def body(a) -> int:
        check(a)
        return 0

    return run_guarded(verb, body, args)


def input_checker(checks):
    """The ``check_inputs(verb, args) -> int`` of a module of verbs (what :mod:`nequip_pol.cli`
    runs before a verb): :func:`run_check` of ``checks[verb]``, the verb's check of its files,
    numbers and outputs (no heavy imports)."""

    def check_inputs(verb: str, args) -> int:
        """Check VERB's files, numbers and outputs without heavy imports; 0, or 2 after the error line."""
        return run_check(checks[verb], verb, args)

    return check_inputs


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def check_model(model: str) -> str:
    """The canonical MODEL argument: a reference name or the path of an existing model file.

    Cheap (no torch); ``CommandError`` naming the problem: an unknown ``reference:`` name, a
    shipped model missing from this installation, a missing file or a file that is not a model.
    """
    if model in DEPRECATED_MODEL_NAMES:
        _note(
            f"the model name {model!r} is now {DEPRECATED_MODEL_NAMES[model]!r}; the old name will go"
        )
        model = DEPRECATED_MODEL_NAMES[model]
    if model.startswith("reference:"):
        if model not in REFERENCE_MATERIALS:
            raise CommandError(
                f"unknown reference material {model!r}; choose one of {', '.join(REFERENCE_MATERIALS)}"
            )
        return model
    from nequip_pol import models

    if models.is_shipped_name(model) and not Path(model).exists():
        try:
            return str(models.model_path(model))
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from None
    path = Path(model)
    if not path.exists():
        raise CommandError(
            f"model file not found: {model!r} (a file, a shipped model name such as "
            f"{', '.join(sorted(models.SHIPPED_MODELS))}, or one of {', '.join(REFERENCE_MATERIALS)})"
        )
    if path.is_dir():
        raise CommandError(f"{model!r} is a folder; give the model file")
    if path.suffix.lower() not in _MODEL_SUFFIXES:
        raise CommandError(
            f"{model!r} is not a model file: expected a compiled model (*.nequip.pt2), a checkpoint "
            f"(*.ckpt) or a package (*.nequip.zip)"
        )
    return str(path)


def check_file(path: str, what: str = "structure") -> None:
    """``CommandError`` unless ``path`` is an existing file (``what`` names it in the message)."""
    p = Path(path)
    if not p.exists():
        raise CommandError(f"{what} file not found: {path!r}")
    if not p.is_file():
        raise CommandError(f"{what} file {path!r} is a folder; give a file")


def load_calculator(model: str, device: str = "cpu", modifiers=None):
    """The ASE calculator of a MODEL argument (see the module docstring); ``CommandError`` if it cannot load.

    A reference name gives the exact :class:`~nequip_pol.reference.ReferenceMaterialCalculator`;
    a file is loaded as a compiled model (``*.pt2``) or a checkpoint/package, with the species
    mapped to the model's types by chemical symbol. ``modifiers`` (checkpoints/packages only):
    nequip model modifiers, e.g. ``["disable_born_charges"]``.
    """
    model = check_model(model)
    if model in REFERENCE_MATERIALS:
        import importlib

        from nequip_pol.reference import ReferenceMaterialCalculator

        module, name = REFERENCE_MATERIALS[model]
        return ReferenceMaterialCalculator(
            getattr(importlib.import_module(module), name)()
        )
    from nequip_pol.integrations.ase import NequIPPolCalculator
    from nequip_pol.integrations.model_files import ModelFileError

    options = {"device": device, "chemical_species_to_atom_type_map": True}
    try:
        if model.endswith(".pt2"):
            return NequIPPolCalculator.from_compiled_model(model, **options)
        if modifiers:
            options["modifiers"] = list(modifiers)
        return NequIPPolCalculator.from_saved_model(model, **options)
    except (
        ModelFileError
    ) as exc:  # truncated, corrupted, unloadable: names the file already
        raise CommandError(f"cannot load the model: {exc}") from None
    except Exception as exc:  # the loaders raise many kinds (UnpicklingError, BadZipFile, RuntimeError, ...)
        kind = (
            "compiled model (nequip-compile, --target nequip_pol_ase)"
            if model.endswith(".pt2")
            else "nequip checkpoint or package"
        )
        raise CommandError(
            f"cannot load the model {model!r}: not a readable {kind} "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        ) from None


def read_structure(path: str, index: int = 0, periodic: bool = True):
    """Frame ``index`` of a structure file (any format ASE reads), calculator removed.

    ``CommandError`` naming the file and what is wrong: missing, a format ASE does not know,
    unreadable content, or (``periodic``) not periodic in x, y and z.
    """
    check_file(path, "structure")
    import ase.io
    from ase.io.formats import UnknownFileTypeError

    try:
        atoms = ase.io.read(path, index=index)
    except UnknownFileTypeError:
        suffix = Path(path).suffix or "(no extension)"
        raise CommandError(
            f"cannot read the structure {path!r}: unknown file format {suffix!r}; give an extended XYZ "
            "(.extxyz, .xyz), CIF, POSCAR, LAMMPS data or another file that ASE reads"
        ) from None
    except Exception as exc:  # ASE raises many types for unreadable files
        raise CommandError(
            f"cannot read the structure {path!r}: {type(exc).__name__}: {exc}"
        ) from None
    if periodic and not all(atoms.pbc):
        raise CommandError(f"{path}: the structure must be periodic in x, y and z")
    atoms.calc = None
    return atoms


def output_prefix(output, default_path) -> str:
    """The PREFIX of a verb's outputs: ``output`` (``-o``) if given, else ``default_path`` without its extension."""
    return output if output else str(Path(default_path).with_suffix(""))


def output_paths(prefix: str, names, force: bool):
    """``{name: Path(prefix_name)}``; ``CommandError`` if one exists (without ``force``) or the folder is missing."""
    paths = {name: Path(f"{prefix}_{name}") for name in names}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise CommandError(
            f"output file(s) exist: {', '.join(existing)}; not overwriting (use --force)"
        )
    parent = Path(prefix).parent
    if not parent.is_dir():
        raise CommandError(f"output folder {parent} does not exist")
    return paths


def write_csv(path, columns, rows, header_lines=()) -> None:
    """A CSV with ``# `` comment lines, a header and rows (floats with 10 significant digits)."""
    import numpy as np

    with open(path, "w") as f:
        for line in header_lines:
            f.write(f"# {line}\n")
        f.write(",".join(columns) + "\n")
        for row in np.atleast_2d(rows):
            f.write(
                ",".join(
                    f"{float(v):.10g}" if not isinstance(v, str) else v for v in row
                )
                + "\n"
            )


def progress_printer(verb: str):
    """A ``progress(message)`` callback printing ``[VERB  12.3 s] message``."""
    start = time.time()

    def report(msg: str) -> None:
        print(f"[{verb} {time.time() - start:7.1f} s] {msg}", flush=True)

    return report
