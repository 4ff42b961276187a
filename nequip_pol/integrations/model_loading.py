"""Loading field-aware models into :class:`~nequip_pol.integrations.ase.NequIPPolCalculator`.

Two kinds of model files:

* compiled (AOTInductor, ``nequip-compile ... --mode aotinductor --target nequip_pol_ase``,
  ``*.nequip.pt2``): :func:`load_compiled_calculator`. The inputs and outputs are read from
  the artifact's metadata and checked against the compile target :data:`ASE_TARGET_NAME`, or
  :data:`ASE_ATOMIC_FIELD_TARGET_NAME` for a model that takes a per-atom field
  (``set_atomic_field``; without one it gets zeros, see :class:`ZeroAtomicFieldDefault`);
* saved (a checkpoint ``*.ckpt`` or a package ``*.nequip.zip``), evaluated eagerly:
  :func:`load_saved_calculator`, optionally with nequip model modifiers applied.

What a model tells about itself: its input and output keys (:func:`eager_model_keys`) and the
training ranges recorded by :class:`nequip_pol.guards.TrainingRangeRecorder`
(read by :func:`nequip_pol.guards.saved_model_ranges` and
:func:`nequip_pol.guards.ranges_from_metadata`), from which
:func:`make_guard` builds the extrapolation guard. Missing, truncated or corrupted files raise
errors that name the file (:mod:`~nequip_pol.integrations.model_files`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch

from nequip.data import AtomicDataDict

from .model_files import check_model_file, load_error
from .._keys import ELECTRIC_FIELD_KEY, ATOMIC_ELECTRIC_FIELD_KEY

__all__ = [
    "ASE_TARGET_NAME",
    "ASE_ATOMIC_FIELD_TARGET_NAME",
    "ZeroAtomicFieldDefault",
    "ase_compile_target",
    "load_compiled_calculator",
    "load_saved_calculator",
    "eager_model_keys",
    "make_guard",
]

#: compile target the ASE calculator is made for (see ``nequip_pol._compile``)
ASE_TARGET_NAME = "nequip_pol_ase"
#: the same with the per-atom field ``atomic_electric_field`` as one more input
ASE_ATOMIC_FIELD_TARGET_NAME = "nequip_pol_ase_atomic_field"


def ase_compile_target() -> Dict:
    """The compile target :data:`ASE_TARGET_NAME` (its ``input`` and ``output`` keys, ...)."""
    import nequip_pol._compile  # noqa: F401  (registers the targets)
    from nequip.scripts._compile_utils import COMPILE_TARGET_DICT

    return COMPILE_TARGET_DICT[ASE_TARGET_NAME]


class ZeroAtomicFieldDefault(torch.nn.Module):
    """A compiled model with the input ``atomic_electric_field`` (target
    :data:`ASE_ATOMIC_FIELD_TARGET_NAME`), callable without it.

    An AOTInductor model takes exactly the inputs it was compiled with, but the calculator
    passes a per-atom field only when one is set (``set_atomic_field``). Without one, this
    wrapper passes zeros ((num_atoms, 3), V/A, the dtype and device of the positions), which
    gives the model's result at the homogeneous field alone. ``input_keys`` and
    ``output_keys`` are those of the wrapped model.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.input_keys = list(model.input_keys)
        self.output_keys = list(model.output_keys)

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        if ATOMIC_ELECTRIC_FIELD_KEY not in data:
            pos = data[AtomicDataDict.POSITIONS_KEY]
            data = dict(data)
            data[ATOMIC_ELECTRIC_FIELD_KEY] = torch.zeros_like(pos)
        return self.model(data)


def load_compiled_calculator(
    cls,
    compile_path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    chemical_species_to_atom_type_map: Optional[Union[Dict[str, str], bool]] = None,
    neighborlist_backend: Optional[str] = None,
    neighborlist_backend_kwargs: Optional[dict] = None,
    guard: Union[str, dict, None] = "warn",
    guard_options: Optional[dict] = None,
    **kwargs,
):
    """A calculator of class ``cls`` for an AOTInductor model; see ``cls.from_compiled_model``.

    Checks the file (exists, ``*.nequip.pt2``, a complete zip archive), loads it, checks its
    input and output keys against ``cls._get_aoti_compile_target()`` (``ValueError`` naming the
    target to recompile with; the per-atom field ``atomic_electric_field`` of
    :data:`ASE_ATOMIC_FIELD_TARGET_NAME` is accepted as one more input, and such a model gets
    zeros when no per-atom field is set: :class:`ZeroAtomicFieldDefault`), builds the type
    mapper and neighbour list from its metadata and sets the extrapolation guard from the
    training ranges stored in the metadata.
    """
    from nequip.model.inference_models import load_compiled_model
    from nequip.nn import graph_model
    from nequip.integrations.utils import (
        handle_chemical_species_map,
        basic_transforms,
    )
    from nequip.data._nl import DEFAULT_NEIGHBORLIST_BACKEND

    path = Path(compile_path)
    if not path.is_file():
        raise FileNotFoundError(f"compiled model file not found: {os.fspath(path)!r}")
    if not path.name.endswith(".nequip.pt2"):
        raise ValueError(
            f"{os.fspath(path)!r} is not an AOTInductor model (`*.nequip.pt2`); compile one with "
            f"`nequip-compile MODEL OUT.nequip.pt2 --mode aotinductor --device cpu --target {ASE_TARGET_NAME}` "
            "or load a checkpoint/package with `from_saved_model`"
        )
    # a truncated or corrupted file: an error naming it (not one from torch's zip reader)
    check_model_file(path)
    target = cls._get_aoti_compile_target()
    try:  # input/output keys from the artifact's metadata
        try:
            model, metadata = load_compiled_model(str(path), device, None, None)
        except ValueError as err:
            if "keys" not in str(err):
                raise
            # artifacts written before nequip stored the keys: assume the nequip-pol ASE target
            model, metadata = load_compiled_model(
                str(path), device, list(target["input"]), list(target["output"])
            )
    except (ValueError, FileNotFoundError):
        raise
    except (
        Exception
    ) as exc:  # torch's loaders raise RuntimeError, OSError, KeyError, ...
        raise load_error(path, exc) from exc
    input_keys, output_keys = list(model.input_keys), list(model.output_keys)
    required_inputs = [k for k in target["input"] if k != ELECTRIC_FIELD_KEY]
    allowed_inputs = set(target["input"]) | {ATOMIC_ELECTRIC_FIELD_KEY}
    if set(input_keys) - allowed_inputs or set(required_inputs) - set(input_keys):
        raise ValueError(
            f"{os.fspath(path)!r} was compiled with inputs {input_keys}, which is not an ASE target; "
            f"recompile with `--target {ASE_TARGET_NAME}` (inputs {list(target['input'])}) or "
            f"`--target {ASE_ATOMIC_FIELD_TARGET_NAME}` (the same and `{ATOMIC_ELECTRIC_FIELD_KEY}`)"
        )
    if ATOMIC_ELECTRIC_FIELD_KEY in input_keys:
        model = ZeroAtomicFieldDefault(model).eval()
    for key in (AtomicDataDict.TOTAL_ENERGY_KEY, AtomicDataDict.FORCE_KEY):
        if key not in output_keys:
            raise ValueError(
                f"{os.fspath(path)!r} does not output `{key}` (outputs {output_keys}); "
                f"recompile with `--target {ASE_TARGET_NAME}`"
            )
    type_names = metadata[graph_model.TYPE_NAMES_KEY]
    species_map = handle_chemical_species_map(
        chemical_species_to_atom_type_map, type_names
    )
    if "transforms" in kwargs:
        raise KeyError("`transforms` not allowed here")
    transforms = basic_transforms(
        metadata,
        metadata[graph_model.R_MAX_KEY],
        type_names,
        species_map,
        neighborlist_backend=neighborlist_backend or DEFAULT_NEIGHBORLIST_BACKEND,
        neighborlist_backend_kwargs=neighborlist_backend_kwargs,
    )
    calc = cls(
        model=model,
        device=device,
        transforms=transforms,
        input_keys=input_keys,
        output_keys=output_keys,
        **kwargs,
    )
    calc.model_path = os.fspath(path)
    calc._compiled_dtype = metadata.get(graph_model.MODEL_DTYPE_KEY)
    from nequip_pol.guards import ranges_from_metadata

    calc.set_guard(guard, ranges_from_metadata(metadata), **(guard_options or {}))
    return calc


def load_saved_calculator(
    nequip_loader,
    model_path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    chemical_species_to_atom_type_map: Optional[Union[Dict[str, str], bool]] = None,
    modifiers: Sequence[str] = (),
    guard: Union[str, dict, None] = "warn",
    guard_options: Optional[dict] = None,
    **kwargs,
):
    """A calculator for a checkpoint or package; see ``NequIPPolCalculator._from_saved_model``.

    ``nequip_loader``: nequip's ``NequIPCalculator._from_saved_model`` bound to the calculator
    class, which builds the calculator. Checks the file first (exists, not a compiled model, a
    complete zip archive), builds the calculator in full mode, applies ``modifiers``, then
    switches to the asked ``mode`` and sets the extrapolation guard (training ranges from a
    checkpoint).
    """
    path_str = os.fspath(model_path)
    if not path_str.startswith("nequip.net:") and not Path(path_str).is_file():
        raise FileNotFoundError(
            f"model file not found: {path_str!r} (expected a .ckpt or .nequip.zip)"
        )
    if path_str.endswith(".nequip.pt2") or path_str.endswith(".nequip.pth"):
        raise ValueError(
            f"{path_str!r} is a compiled model: load it with `from_compiled_model`"
        )
    ctor_kwargs = {k: kwargs.pop(k) for k in ("field", "mode", "time") if k in kwargs}
    mode = ctor_kwargs.pop("mode", "full")
    if not path_str.startswith("nequip.net:"):
        # a truncated or corrupted file: an error naming it (not one from torch's zip reader)
        check_model_file(path_str)
    # build in full mode first: the output check of the linear mode needs the modifiers applied
    try:
        calc = nequip_loader(
            path_str,
            device=device,
            chemical_species_to_atom_type_map=chemical_species_to_atom_type_map,
            **ctor_kwargs,
            **kwargs,
        )
    except (ValueError, FileNotFoundError, TypeError):
        raise
    except Exception as exc:  # UnpicklingError, KeyError, RuntimeError, ...
        raise load_error(path_str, exc) from exc
    if modifiers:
        from nequip.model.modify_utils import modify

        model = modify(calc.model, [{"modifier": name} for name in modifiers])
        calc.model = model.eval().to(calc.device)
        calc.input_keys, calc.output_keys = eager_model_keys(calc.model)
    if mode != "full":
        calc.set_mode(mode)
    calc.model_path = path_str
    ranges = None
    if guard not in (
        None,
        "off",
    ):  # a checkpoint's entry, else the package model's metadata
        from nequip_pol.guards import saved_model_ranges

        ranges = saved_model_ranges(path_str, calc.model)
    calc.set_guard(guard, ranges, **(guard_options or {}))
    return calc


def eager_model_keys(model):
    """(input keys, output keys) of an eager model, or (None, None) if it does not declare them.

    For nequip's ``GraphModel`` the keys of the wrapped module are used: the wrapper's own
    ``irreps_out`` is fixed at build time and misses the effect of modifiers such as
    ``energy_forces_only``.
    """
    inner = getattr(model, "model", None)
    source = inner if inner is not None and hasattr(inner, "irreps_out") else model
    if not hasattr(source, "irreps_out"):
        return None, None
    inputs = list(getattr(model, "irreps_in", getattr(source, "irreps_in", {})).keys())
    return inputs or None, list(source.irreps_out.keys())


def make_guard(
    guard: Union[str, dict, None] = "warn",
    ranges: Optional[dict] = None,
    name: str = "model",
    **options,
):
    """The extrapolation guard (:class:`nequip_pol.guards.ExtrapolationGuard`), or None for no checks.

    ``guard``: ``"warn"``, ``"strict"``, ``"off"`` / ``None``, or a dict of training ranges to
    use instead of ``ranges`` (the model's recorded ones); see
    ``NequIPPolCalculator.set_guard``. ``name`` names the model in the messages; ``options`` go
    to the guard (``field_factor``, ``distance_factor``).
    """
    from nequip_pol.guards import ExtrapolationGuard

    if guard in (None, "off"):
        return None
    if isinstance(guard, dict):
        ranges, guard = guard, "warn"
    if guard not in ("warn", "strict"):
        raise ValueError(
            f"`guard` must be 'warn', 'strict', 'off' or a dict of ranges, got {guard!r}"
        )
    return ExtrapolationGuard(ranges, strict=guard == "strict", name=name, **options)
