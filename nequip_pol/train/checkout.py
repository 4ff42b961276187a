"""What the training tools need from the repository: the checkout, its ``configs/``, the
dataset configs and nequip's random split of their frames.

The nequip-train configs of the DFT data (``configs/dft.yaml``, ``configs/dataset/``,
``configs/model/``) live in the repository, not in the package (``package-data`` of
``pyproject.toml`` does not list them): the tools take ``config_dir`` (``--config-dir`` on the
command line) and default to the ``configs/`` folder of the checkout the package runs from
(an editable install, ``pip install -e .``); installed from a wheel there is none, and
:func:`config_dir` says so. Errors are :class:`TrainingToolError` (one line that names the
problem and the fix). Only the standard library is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = [
    "TrainingToolError",
    "checkout_root",
    "config_dir",
    "dataset_names",
    "read_dataset_config",
    "config_seed",
    "split_indices",
]


class TrainingToolError(Exception):
    """Bad input to a training tool (a user error): the message names the problem and the fix."""


def checkout_root() -> Optional[Path]:
    """The root of the repository checkout this package runs from (the folder holding
    ``pyproject.toml`` and ``nequip_pol/``), or None when it is installed from a wheel."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "nequip_pol").is_dir():
        return root
    return None


def config_dir(given=None) -> Path:
    """The folder of the nequip-train configs (``dft.yaml``, ``dataset/``, ``model/``): ``given``
    (``--config-dir``), else the checkout's ``configs/``; ``TrainingToolError`` when there is none."""
    if given is not None:
        path = Path(given).resolve()
        if not (path / "dft.yaml").is_file():
            raise TrainingToolError(
                f"--config-dir {given}: no dft.yaml in it; give the configs/ folder of a "
                "checkout of nequip-pol (or a copy of it)"
            )
        return path
    root = checkout_root()
    if root is None or not (root / "configs" / "dft.yaml").is_file():
        where = "this installation" if root is None else f"the checkout {root}"
        raise TrainingToolError(
            f"no configs/dft.yaml found beside {where}: the nequip-train configs are not "
            "packaged with nequip-pol; run from a checkout of the repository "
            "(pip install -e .) or give --config-dir DIR (the repository's configs/ folder)"
        )
    return root / "configs"


def dataset_names(configs: Path) -> list:
    """The dataset configs in ``configs/dataset`` (``BaTiO3``, ``SiO2``, ``analytic``, ...)."""
    return sorted(p.stem for p in (Path(configs) / "dataset").glob("*.yaml"))


def read_dataset_config(dataset: str, configs: Path) -> dict:
    """``configs/dataset/DATASET.yaml`` (its file name and split fractions)."""
    import yaml

    path = Path(configs) / "dataset" / f"{dataset}.yaml"
    if not path.is_file():
        raise TrainingToolError(
            f"no dataset config {dataset!r} in {Path(configs) / 'dataset'} (choose from "
            f"{', '.join(dataset_names(configs))})"
        )
    return yaml.safe_load(path.read_text())


def config_seed(configs: Path) -> int:
    """The seed of ``configs/dft.yaml``, which fixes the train/val/test split."""
    import yaml

    return int(yaml.safe_load((Path(configs) / "dft.yaml").read_text())["seed"])


def split_indices(n_frames: int, fractions, seed: int, part: str = "test") -> list:
    """Indices of one part ("train", "val" or "test") of nequip's own random split
    (RandomSplitAndIndexDataset), as nequip-train draws it from the config's fractions and seed."""
    from nequip.data.dataset import RandomSplitAndIndexDataset

    split = dict(zip(("train", "val", "test"), fractions))
    chosen = RandomSplitAndIndexDataset(list(range(n_frames)), split, part, seed)
    return sorted(int(i) for i in chosen.indices)
