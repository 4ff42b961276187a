"""Recording the training ranges at training time, and carrying them into every model built from
a checkpoint.

:class:`TrainingRangeRecorder` (a Lightning callback) computes the ranges of the training file
(:func:`~nequip_pol.guards.ranges.data_ranges`) and stores them in every checkpoint
(``checkpoint["nequip_pol_training_ranges"]``) and in ``training_ranges.json`` next to it. It
also wraps the checkpoint's model config (``hyper_parameters["model"]``) in
:func:`with_training_ranges`, so every model built from the checkpoint (``nequip-compile``,
``nequip-package``, ``ModelFromCheckpoint``) has them in its metadata
(:func:`~nequip_pol.guards.ranges.ranges_metadata`).

Units: field V/A, distances A. Lightning, Hydra and omegaconf (nequip's dependencies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

from .ranges import DEFAULT_CUTOFF, RANGES_FILE, RANGES_KEY, attach_ranges, data_ranges

__all__ = ["WRAPPER_TARGET", "with_training_ranges", "TrainingRangeRecorder"]

#: the model builder the recorder wraps a checkpoint's model config in; the public path (the
#: package re-exports it), written into checkpoints: keep it importable under this name
WRAPPER_TARGET = "nequip_pol.guards.with_training_ranges"


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

    The ranges (:func:`data_ranges` of ``data_file``, one path or a list, or of the datamodule's
    file when not given)
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
        data_file=None,
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
        if isinstance(self.data_file, (str, Path)) or self.data_file is None:
            paths = [
                Path(self.data_file) if self.data_file else _training_file(trainer)
            ]
        else:  # several files (nequip_pol.data.ASEFilesDataModule)
            paths = [Path(p) for p in self.data_file]
        for path in paths:
            if path is None or not path.is_file():
                raise ValueError(
                    f"TrainingRangeRecorder: training data file not found ({path}); give data_file"
                )
        import ase.io

        frames = [
            atoms
            for path in paths
            for atoms in ase.io.read(path, index=":", format="extxyz")
        ]
        self.ranges = data_ranges(frames, cutoff=self.cutoff)
        self.ranges["data_file"] = (
            str(paths[0]) if len(paths) == 1 else [str(p) for p in paths]
        )
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
