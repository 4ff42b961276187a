"""What a MODEL or STRUCTURE argument names: an ASE calculator, a structure.

The same MODEL arguments everywhere (every ``nequip-pol`` verb, the examples):

* ``reference:paraelectric`` / ``reference:ferroelectric``: the exact analytic materials
  (:mod:`nequip_pol.reference`); ``analytic`` is the old name of ``reference:paraelectric``
  (still accepted, with a note);
* the name of a shipped model (``sio2``, ``batio3``: :mod:`nequip_pol.models`);
* a file: a compiled model (``*.nequip.pt2``, ``--target nequip_pol_ase``), a checkpoint
  (``*.ckpt``) or a package (``*.nequip.zip``).

:func:`check_model` and :func:`check_file` are cheap (no torch): the command line runs them
before any heavy import. Problems raise :class:`ModelArgumentError` (a ``ValueError``) with one
line that names the problem and the fix. This module imports only the standard library at
module level.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = [
    "REFERENCE_MATERIALS",
    "DEPRECATED_MODEL_NAMES",
    "ModelArgumentError",
    "check_model",
    "check_file",
    "load_calculator",
    "read_structure",
]

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


class ModelArgumentError(ValueError):
    """A MODEL or STRUCTURE argument that cannot be used (the message names the problem)."""


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def check_model(model: str) -> str:
    """The canonical MODEL argument: a reference name or the path of an existing model file.

    Cheap (no torch); ``ModelArgumentError`` naming the problem: an unknown ``reference:``
    name, a shipped model missing from this installation, a missing file or a file that is
    not a model.
    """
    if model in DEPRECATED_MODEL_NAMES:
        _note(
            f"the model name {model!r} is now {DEPRECATED_MODEL_NAMES[model]!r}; the old name will go"
        )
        model = DEPRECATED_MODEL_NAMES[model]
    if model.startswith("reference:"):
        if model not in REFERENCE_MATERIALS:
            raise ModelArgumentError(
                f"unknown reference material {model!r}; choose one of {', '.join(REFERENCE_MATERIALS)}"
            )
        return model
    from nequip_pol import models

    if models.is_shipped_name(model) and not Path(model).exists():
        try:
            return str(models.model_path(model))
        except (ValueError, FileNotFoundError) as exc:
            raise ModelArgumentError(str(exc)) from None
    path = Path(model)
    if not path.exists():
        raise ModelArgumentError(
            f"model file not found: {model!r} (a file, a shipped model name such as "
            f"{', '.join(sorted(models.SHIPPED_MODELS))}, or one of {', '.join(REFERENCE_MATERIALS)})"
        )
    if path.is_dir():
        raise ModelArgumentError(f"{model!r} is a folder; give the model file")
    if path.suffix.lower() not in _MODEL_SUFFIXES:
        raise ModelArgumentError(
            f"{model!r} is not a model file: expected a compiled model (*.nequip.pt2), a checkpoint "
            f"(*.ckpt) or a package (*.nequip.zip)"
        )
    return str(path)


def check_file(path: str, what: str = "structure") -> None:
    """``ModelArgumentError`` unless ``path`` is an existing file (``what`` names it in the message)."""
    p = Path(path)
    if not p.exists():
        raise ModelArgumentError(f"{what} file not found: {path!r}")
    if not p.is_file():
        raise ModelArgumentError(f"{what} file {path!r} is a folder; give a file")


def load_calculator(model: str, device: str = "cpu", modifiers=None):
    """The ASE calculator of a MODEL argument (see the module docstring); ``ModelArgumentError``
    if it cannot load.

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
        raise ModelArgumentError(f"cannot load the model: {exc}") from None
    except Exception as exc:  # the loaders raise many kinds (UnpicklingError, BadZipFile, RuntimeError, ...)
        kind = (
            "compiled model (nequip-compile, --target nequip_pol_ase)"
            if model.endswith(".pt2")
            else "nequip checkpoint or package"
        )
        raise ModelArgumentError(
            f"cannot load the model {model!r}: not a readable {kind} "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        ) from None


def read_structure(path: str, index: int = 0, periodic: bool = True):
    """Frame ``index`` of a structure file (any format ASE reads), calculator removed.

    ``ModelArgumentError`` naming the file and what is wrong: missing, empty, a format ASE does
    not know, unreadable content, or (``periodic``) not periodic in x, y and z.
    """
    check_file(path, "structure")
    with open(path, "rb") as handle:  # ASE calls an empty file an unknown format
        if not handle.read(4096).strip():
            raise ModelArgumentError(
                f"cannot read the structure {path!r}: the file is empty"
            )
    import ase.io
    from ase.io.formats import UnknownFileTypeError

    try:
        atoms = ase.io.read(path, index=index)
    except UnknownFileTypeError:
        suffix = Path(path).suffix or "(no extension)"
        raise ModelArgumentError(
            f"cannot read the structure {path!r}: unknown file format {suffix!r}; give an extended XYZ "
            "(.extxyz, .xyz), CIF, POSCAR, LAMMPS data or another file that ASE reads"
        ) from None
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ModelArgumentError(
            f"cannot read the structure {path!r}: {type(exc).__name__}: {exc}"
        ) from None
    if periodic and not all(atoms.pbc):
        raise ModelArgumentError(
            f"{path}: the structure must be periodic in x, y and z"
        )
    atoms.calc = None
    return atoms
