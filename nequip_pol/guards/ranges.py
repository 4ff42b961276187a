"""Training ranges: what a data set covers, and how the ranges are stored in and read back from
checkpoints and deployed models.

:func:`data_ranges` computes the ranges of a data set (a dict):

* ``max_field``: the largest |E| of any frame (V/A), and ``max_field_per_axis``: the largest
  |E_x|, |E_y|, |E_z| (V/A);
* ``min_distance``: the smallest interatomic distance per species pair (A, ``"O-Ti"`` with the
  symbols sorted), over pairs closer than ``cutoff`` (pairs never that close are absent: at
  least ``cutoff`` apart);
* ``distance_cutoff`` (A), ``species`` (the chemical symbols seen), ``n_frames``.

In a deployed model's metadata they are the JSON under :data:`RANGES_KEY` and flat keys for the
LAMMPS pair styles (:func:`ranges_metadata`, written by :func:`attach_ranges`);
:func:`ranges_from_metadata` is the one reader of those entries, used by
:func:`ranges_from_model` (eager models) and :func:`saved_model_ranges` (checkpoints and
packages). Units: field V/A, distances A. numpy and ASE (torch only for checkpoints).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional

import numpy as np

__all__ = [
    "RANGES_KEY",
    "RANGES_FILE",
    "DEFAULT_CUTOFF",
    "MAX_FIELD_KEY",
    "MIN_DISTANCE_KEY",
    "DISTANCE_CUTOFF_KEY",
    "pair_minima",
    "data_ranges",
    "format_ranges",
    "ranges_metadata",
    "ranges_from_metadata",
    "attach_ranges",
    "ranges_from_model",
    "saved_model_ranges",
]

#: key of the ranges in a checkpoint (and in a model's metadata, as JSON)
RANGES_KEY = "nequip_pol_training_ranges"
#: file the recorder writes next to the checkpoints
RANGES_FILE = "training_ranges.json"
#: default distance cutoff of the pair minima, A (closer pairs are what a guard needs)
DEFAULT_CUTOFF = 4.0
#: flat metadata keys of a deployed model (for readers without JSON, e.g. the LAMMPS pair styles)
MAX_FIELD_KEY = "nequip_pol_max_field"
MIN_DISTANCE_KEY = "nequip_pol_min_distance"
DISTANCE_CUTOFF_KEY = "nequip_pol_distance_cutoff"


def _pair(a: str, b: str) -> str:
    return "-".join(sorted((a, b)))


def _field_of(atoms) -> np.ndarray:
    field = atoms.info.get("electric_field")
    return np.zeros(3) if field is None else np.asarray(field, dtype=float).reshape(3)


def pair_minima(atoms, cutoff: float) -> Dict[str, float]:
    """Smallest distance (A) per species pair of one structure, over pairs within ``cutoff``
    (A); keys ``"O-Ti"`` (symbols sorted)."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff)
    names, codes = np.unique(atoms.get_chemical_symbols(), return_inverse=True)
    lo = np.minimum(codes[i], codes[j])
    hi = np.maximum(codes[i], codes[j])
    pair = lo * len(names) + hi
    best = np.full(len(names) ** 2, np.inf)
    np.minimum.at(best, pair, d)
    return {
        _pair(names[k // len(names)], names[k % len(names)]): float(best[k])
        for k in np.flatnonzero(np.isfinite(best))
    }


def data_ranges(frames: Iterable, cutoff: float = DEFAULT_CUTOFF) -> dict:
    """What a data set covers: largest |E| (V/A, also per axis), smallest distance per species pair
    (A, within ``cutoff``), species. ``frames``: ``ase.Atoms`` (field in ``info["electric_field"]``,
    absent = zero) or the path of an extended-XYZ file."""
    if isinstance(frames, (str, Path)):
        import ase.io

        frames = ase.io.read(frames, index=":", format="extxyz")
    max_axis = np.zeros(3)
    max_field = 0.0
    minima: Dict[str, float] = {}
    species = set()
    n = 0
    for atoms in frames:
        n += 1
        field = _field_of(atoms)
        max_axis = np.maximum(max_axis, np.abs(field))
        max_field = max(max_field, float(np.linalg.norm(field)))
        species.update(atoms.get_chemical_symbols())
        for key, dist in pair_minima(atoms, cutoff).items():
            minima[key] = min(dist, minima.get(key, np.inf))
    if n == 0:
        raise ValueError("no frames: cannot record a training range")
    return {
        "max_field": max_field,
        "max_field_per_axis": [float(x) for x in max_axis],
        "min_distance": dict(sorted(minima.items())),
        "distance_cutoff": float(cutoff),
        "species": sorted(species),
        "n_frames": n,
    }


def format_ranges(ranges: dict) -> str:
    """Two readable lines: the field range and the smallest distance per species pair."""
    axis = ", ".join(f"{x:.4g}" for x in ranges["max_field_per_axis"])
    pairs = (
        ", ".join(f"{k} {v:.3f}" for k, v in ranges["min_distance"].items()) or "none"
    )
    return (
        f"field: max |E| {ranges['max_field']:.4g} V/A (max |Ex|, |Ey|, |Ez|: {axis})\n"
        f"closest pairs (A, within {ranges['distance_cutoff']:g} A): {pairs}"
    )


# ---------------------------------------------------------------- ranges in deployed models


def ranges_metadata(ranges: dict) -> Dict[str, str]:
    """The metadata entries (all strings) that carry ``ranges`` in a deployed model: the JSON
    under :data:`RANGES_KEY` and the flat keys ``nequip_pol_max_field`` (``"0.25"``, V/A),
    ``nequip_pol_min_distance`` (``"Ba-O:2.31 O-Ti:1.71"``, A, space-separated, pairs never
    closer than the cutoff absent) and ``nequip_pol_distance_cutoff`` (A)."""
    pairs = " ".join(
        f"{key}:{float(value)!r}"
        for key, value in sorted(ranges["min_distance"].items())
    )
    return {
        RANGES_KEY: json.dumps(ranges, sort_keys=True, separators=(",", ":")),
        MAX_FIELD_KEY: repr(float(ranges["max_field"])),
        MIN_DISTANCE_KEY: pairs,
        DISTANCE_CUTOFF_KEY: repr(float(ranges.get("distance_cutoff", DEFAULT_CUTOFF))),
    }


def ranges_from_metadata(metadata: Optional[Mapping]) -> Optional[dict]:
    """The training ranges in a model's metadata (a compiled model's, or ``model.metadata``):
    the JSON under :data:`RANGES_KEY`, else rebuilt from the flat keys (no species then); None
    when the model has none (or they do not parse)."""
    metadata = metadata or {}
    text = metadata.get(RANGES_KEY)
    if text:
        try:
            ranges = json.loads(text)
        except ValueError:
            ranges = None
        if isinstance(ranges, dict) and "max_field" in ranges:
            return ranges
    if not metadata.get(MAX_FIELD_KEY):
        return None
    try:
        minima = {}
        for item in str(metadata.get(MIN_DISTANCE_KEY, "")).split():
            key, value = item.rsplit(":", 1)
            minima[key] = float(value)
        max_field = float(metadata[MAX_FIELD_KEY])
        cutoff = float(metadata.get(DISTANCE_CUTOFF_KEY) or DEFAULT_CUTOFF)
    except ValueError:
        return None
    return {
        "max_field": max_field,
        "max_field_per_axis": [max_field] * 3,
        "min_distance": minima,
        "distance_cutoff": cutoff,
        "species": None,
    }


def _graph_models(model) -> list:
    """The nequip ``GraphModel`` s in ``model`` (itself, or the values of a ``ModuleDict``)."""
    if hasattr(model, "is_graph_model"):
        return [model]
    if hasattr(model, "values"):
        return [m for m in model.values() if hasattr(m, "is_graph_model")]
    return []


def attach_ranges(model, ranges: dict):
    """Put ``ranges`` into the metadata of ``model`` (a nequip ``GraphModel`` or a ``ModuleDict``
    of them): ``nequip-compile`` and ``nequip-package`` then carry it. Returns ``model``."""
    entries = ranges_metadata(ranges)
    found = _graph_models(model)
    if not found:
        raise TypeError(
            f"cannot attach training ranges to a {type(model).__name__}: not a nequip GraphModel"
        )
    for graph_model in found:
        graph_model._metadata = {**graph_model._metadata, **entries}
    return model


def ranges_from_model(model) -> Optional[dict]:
    """The training ranges in an eager model's metadata (a model loaded from a checkpoint or a
    package made from one with ranges), or None."""
    for graph_model in _graph_models(model):
        try:
            metadata = graph_model.metadata
        except Exception:  # a packaged model of an older nequip: the static part
            metadata = getattr(graph_model, "_metadata", None)
        ranges = ranges_from_metadata(metadata)
        if ranges is not None:
            return ranges
    return None


def saved_model_ranges(path, model=None) -> Optional[dict]:
    """The training ranges of a saved model: a checkpoint's :data:`RANGES_KEY` entry, else those
    in the metadata of ``model`` (the eager model loaded from ``path``: a package built from a
    checkpoint with ranges carries them there); None when there are none."""
    if str(path).endswith(".ckpt"):
        import torch

        try:
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
        except (
            Exception
        ):  # loaded already elsewhere; a failure here only means no ranges
            checkpoint = None
        ranges = checkpoint.get(RANGES_KEY) if isinstance(checkpoint, dict) else None
        if isinstance(ranges, dict):
            return ranges
    return None if model is None else ranges_from_model(model)
