"""Extrapolation guards: the range of fields and structures a model was trained on, and a check of
every evaluation against it.

A field-aware model is fitted on a finite range of fields and interatomic distances; outside it
the results look as confident as inside. :func:`data_ranges` records what a data set covers:

* ``max_field``: the largest |E| of any frame (V/A), and ``max_field_per_axis``: the largest
  |E_x|, |E_y|, |E_z| (V/A);
* ``min_distance``: the smallest interatomic distance per species pair (A, ``"O-Ti"`` with the
  symbols sorted), over pairs closer than ``cutoff`` (pairs never that close are absent: at
  least ``cutoff`` apart);
* ``species``: the chemical symbols seen.

At training time :class:`TrainingRangeRecorder` (a Lightning callback) computes them from the
training file and stores them in every checkpoint (``checkpoint["nequip_pol_training_ranges"]``)
and in ``training_ranges.json`` next to it. :class:`ExtrapolationGuard` checks an evaluation
(structure and field): it warns once per run when ``|E|`` exceeds ``field_factor`` x the trained
maximum, when two atoms come closer than ``distance_factor`` x the trained minimum of their
pair, or when a species was never seen; then it counts silently, and :meth:`~ExtrapolationGuard.report`
gives the counts (printed at exit when anything was counted). ``strict=True`` raises
:class:`ExtrapolationError` instead of warning. Models without recorded ranges run unguarded,
with one line saying so (:meth:`ExtrapolationGuard.off`).

Deployed models carry the ranges too. The recorder also writes them into the checkpoint's model
config (``hyper_parameters["model"]`` becomes :func:`with_training_ranges` around the original
config), so every model built from the checkpoint (``nequip-compile``, ``nequip-package``,
``ModelFromCheckpoint``) has them in its metadata (:func:`ranges_metadata`): the JSON under
:data:`RANGES_KEY` and flat keys for the LAMMPS pair styles, ``nequip_pol_max_field`` (V/A, one
number), ``nequip_pol_min_distance`` (``"Ba-O:2.31 O-Ti:1.71"``, A) and
``nequip_pol_distance_cutoff`` (A). :func:`saved_model_ranges` and :func:`ranges_from_metadata`
read them back.

Units: field V/A, distances A. numpy and ASE (torch and nequip only where a model is handled).
"""

from __future__ import annotations

import atexit
import json
import sys
import warnings
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional

import numpy as np

__all__ = [
    "RANGES_KEY",
    "RANGES_FILE",
    "ExtrapolationError",
    "ExtrapolationWarning",
    "data_ranges",
    "format_ranges",
    "ExtrapolationGuard",
    "TrainingRangeRecorder",
    "ranges_metadata",
    "ranges_from_metadata",
    "ranges_from_model",
    "saved_model_ranges",
    "attach_ranges",
    "with_training_ranges",
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
#: the model builder the recorder wraps a checkpoint's model config in
WRAPPER_TARGET = "nequip_pol.guards.with_training_ranges"


class ExtrapolationError(ValueError):
    """An evaluation outside the trained range, with ``strict=True``."""


class ExtrapolationWarning(UserWarning):
    """An evaluation outside the trained range (warned once per guard)."""


def _pair(a: str, b: str) -> str:
    return "-".join(sorted((a, b)))


def _field_of(atoms) -> np.ndarray:
    field = atoms.info.get("electric_field")
    return np.zeros(3) if field is None else np.asarray(field, dtype=float).reshape(3)


def _pair_minima(atoms, cutoff: float) -> Dict[str, float]:
    """Smallest distance (A) per species pair of one structure, over pairs within ``cutoff``."""
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
        for key, dist in _pair_minima(atoms, cutoff).items():
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


class ExtrapolationGuard:
    """Compares evaluations with a training range (see the module docstring).

    Args:
        ranges: from :func:`data_ranges` (or a model's metadata); ``None``: the guard is off
        field_factor: warn when |E| > field_factor x the trained max |E|. A model trained at
            zero field only (the usual DFT set: P, Z*, alpha at E = 0, the field acting through
            that learned response) has no sampled field range: its field is not checked, and
            the guard says so once
        distance_factor: warn when a pair is closer than distance_factor x its trained minimum
        strict: raise :class:`ExtrapolationError` instead of warning
        name: the model's name in the messages (its file)
    """

    def __init__(
        self,
        ranges: Optional[dict],
        field_factor: float = 1.2,
        distance_factor: float = 1.0,
        strict: bool = False,
        name: str = "model",
        report_at_exit: bool = True,
    ):
        if not field_factor >= 1.0 or not 0 < distance_factor <= 1.0:
            raise ValueError(
                f"need field_factor >= 1 and 0 < distance_factor <= 1, got {field_factor}, {distance_factor}"
            )
        self.ranges = ranges
        self.field_factor = float(field_factor)
        self.distance_factor = float(distance_factor)
        self.strict = bool(strict)
        self.name = name
        self.counts = {"field": 0, "distance": 0, "species": 0}
        self.evaluations = 0
        self._warned = False
        if ranges is None:
            print(
                f"note: {name} has no recorded training range: the extrapolation guard is off",
                file=sys.stderr,
            )
        elif not ranges.get("max_field", 0.0) > 0.0:
            print(
                f"note: {name} was trained at zero field only (the field acts through the learned "
                "P, Z*, alpha): the extrapolation guard checks distances and species, not |E|",
                file=sys.stderr,
            )
        if ranges is not None and report_at_exit:
            atexit.register(self._report_at_exit)

    @classmethod
    def off(cls, name: str = "model") -> "ExtrapolationGuard":
        """A guard that checks nothing (a model without recorded ranges); says so once."""
        return cls(None, name=name)

    @property
    def active(self) -> bool:
        return self.ranges is not None

    def problems(self, atoms, field) -> list:
        """What lies outside the range for this structure and field: a list of (kind, text)."""
        if self.ranges is None:
            return []
        out = []
        r = self.ranges
        e = float(np.linalg.norm(np.asarray(field, dtype=float)))
        limit = self.field_factor * r["max_field"]
        if r["max_field"] > 0.0 and e > limit:
            out.append(
                (
                    "field",
                    f"|E| = {e:.4g} V/A exceeds {self.field_factor:g} x the trained maximum "
                    f"{r['max_field']:.4g} V/A",
                )
            )
        if r.get("species"):  # absent in ranges rebuilt from the flat metadata keys
            new = sorted(set(atoms.get_chemical_symbols()) - set(r["species"]))
            if new:
                out.append(
                    ("species", f"species {', '.join(new)} never seen in training")
                )
        minima = r["min_distance"]
        if minima:
            cutoff = max(minima.values())
            for key, dist in _pair_minima(atoms, cutoff).items():
                floor = minima.get(key)
                if floor is not None and dist < self.distance_factor * floor:
                    out.append(
                        (
                            "distance",
                            f"a {key} pair at {dist:.3f} A, closer than the training "
                            f"minimum {floor:.3f} A",
                        )
                    )
        return out

    def check(self, atoms, field) -> None:
        """Count (and warn about the first, or raise with ``strict``) what lies outside the range."""
        self.evaluations += 1
        found = self.problems(atoms, field)
        if not found:
            return
        for kind in {k for k, _ in found}:
            self.counts[kind] += 1
        message = (
            f"{self.name}: extrapolating: "
            + "; ".join(text for _, text in found)
            + " (results outside the trained range are unreliable)"
        )
        if self.strict:
            raise ExtrapolationError(message)
        if not self._warned:
            self._warned = True
            warnings.warn(
                message + "; further cases are counted silently (guard.report())",
                ExtrapolationWarning,
                stacklevel=3,
            )

    def report(self) -> str:
        """One line: evaluations checked and how many were outside the range, by kind."""
        if self.ranges is None:
            return f"{self.name}: extrapolation guard off (no recorded training range)"
        counted = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"{self.name}: extrapolation guard: {self.evaluations} evaluations, outside the trained range: {counted}"

    def _report_at_exit(self) -> None:
        if any(self.counts.values()):
            print(self.report(), file=sys.stderr)


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


def with_training_ranges(model: dict, training_ranges: dict):
    """Model builder: build ``model`` (a model config with ``_target_``) and put
    ``training_ranges`` into its metadata (:func:`attach_ranges`).

    :class:`TrainingRangeRecorder` wraps a checkpoint's model config in this builder, so that
    whatever rebuilds the model from the checkpoint (``nequip-compile``, ``nequip-package``,
    ``ModelFromCheckpoint``, a restart) gets the ranges; the weights and the model are those
    of the original config."""
    from hydra.utils import get_method

    config = dict(model)
    builder = get_method(config.pop("_target_"))
    return attach_ranges(builder(**config), training_ranges)


def _unwrapped(model_config):
    while isinstance(model_config, Mapping) and (
        model_config.get("_target_") == WRAPPER_TARGET
    ):
        model_config = model_config["model"]
    return model_config


def _plain(obj):
    try:
        from omegaconf import Container, OmegaConf

        if isinstance(obj, Container):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover - nequip depends on omegaconf
        pass
    return obj


def _training_file(trainer) -> Optional[Path]:
    """The extended-XYZ file of the run's training data, from the datamodule's config."""
    dm = getattr(trainer, "datamodule", None)
    for attr in ("train_dataset", "dataset", "split_dataset"):
        cfg = getattr(dm, attr, None)
        found = _find_file_path(cfg)
        if found is not None:
            return found
    return None


def _find_file_path(cfg) -> Optional[Path]:
    if cfg is None:
        return None
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:
        pass
    if isinstance(cfg, dict):
        if "file_path" in cfg:
            return Path(cfg["file_path"])
        for value in cfg.values():
            found = _find_file_path(value)
            if found is not None:
                return found
    if isinstance(cfg, (list, tuple)):
        for value in cfg:
            found = _find_file_path(value)
            if found is not None:
                return found
    return None


try:
    from lightning.pytorch.callbacks import Callback as _Callback
except ImportError:  # pragma: no cover - nequip depends on lightning
    _Callback = object


class TrainingRangeRecorder(_Callback):
    """Lightning callback: record the training data's range in every checkpoint.

    The ranges (:func:`data_ranges` of ``data_file``, or of the datamodule's file when not given)
    are computed once at the start of training, stored in each checkpoint under
    :data:`RANGES_KEY` and written to ``training_ranges.json`` in ``out_dir`` (default: the
    trainer's ``default_root_dir``). In a nequip-train config::

        trainer:
          callbacks:
            - _target_: nequip_pol.guards.TrainingRangeRecorder
              data_file: ${data_file}
              out_dir: ${hydra:runtime.output_dir}

    The whole file is used (training, validation and test frames): the range the data covers.
    The checkpoint's model config is wrapped in :func:`with_training_ranges`, so models built
    from the checkpoint (``nequip-compile``, ``nequip-package``) carry the ranges in their
    metadata (:func:`ranges_metadata`).
    """

    def __init__(
        self,
        data_file: Optional[str] = None,
        out_dir: Optional[str] = None,
        cutoff: float = DEFAULT_CUTOFF,
    ):
        super().__init__()
        self.data_file = data_file
        self.out_dir = out_dir
        self.cutoff = float(cutoff)
        self.ranges: Optional[dict] = None

    def _compute(self, trainer) -> None:
        if self.ranges is not None:
            return
        path = Path(self.data_file) if self.data_file else _training_file(trainer)
        if path is None or not path.is_file():
            raise ValueError(
                f"TrainingRangeRecorder: training data file not found ({path}); give data_file"
            )
        self.ranges = data_ranges(path, cutoff=self.cutoff)
        self.ranges["data_file"] = str(path)
        out = Path(self.out_dir or trainer.default_root_dir)
        if trainer.is_global_zero:
            out.mkdir(parents=True, exist_ok=True)
            (out / RANGES_FILE).write_text(json.dumps(self.ranges, indent=1))

    def on_fit_start(self, trainer, pl_module) -> None:
        self._compute(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._compute(trainer)
        checkpoint[RANGES_KEY] = self.ranges
        hparams = checkpoint.get("hyper_parameters")
        if hparams is None or "model" not in hparams:
            return
        # a copy (the module's own hyper-parameters stay as they are)
        hparams = dict(_plain(hparams))
        hparams["model"] = {
            "_target_": WRAPPER_TARGET,
            "model": _unwrapped(_plain(hparams["model"])),
            "training_ranges": self.ranges,
        }
        checkpoint["hyper_parameters"] = hparams

    def state_dict(self):
        return {"ranges": self.ranges}

    def load_state_dict(self, state_dict) -> None:
        self.ranges = state_dict.get("ranges") or self.ranges
