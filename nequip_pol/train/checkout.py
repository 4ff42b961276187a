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
    "dataset_files",
    "split_parts",
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


def dataset_files(dataset_config: dict, data_file=None) -> list:
    """The files of a dataset config, in reading order, as nequip-train reads them.

    A config's ``data_files`` entries may name ``${data_file}`` (the main file: the shared
    data's ``dft/<dataset_file>``, or ``data_file`` when given) and ``${data_dir}`` (the shared
    data folder, ``NEQUIP_POL_DATA``); without ``data_files``, the main file alone.
    """
    from nequip_pol.data_path import shared_data_dir

    data_dir = shared_data_dir()
    if data_file:
        main = Path(data_file)
        if not main.is_file():
            raise TrainingToolError(f"--data-file {main}: no such file")
    else:
        main = data_dir / "dft" / dataset_config["dataset_file"]
    entries = dataset_config.get("data_files") or ["${data_file}"]
    paths = [
        Path(
            str(entry)
            .replace("${data_file}", str(main))
            .replace("${data_dir}", str(data_dir))
        )
        for entry in entries
    ]
    for path in paths:
        if not path.is_file():
            raise TrainingToolError(
                f"{path}: not found (set NEQUIP_POL_DATA to the shared data folder, which "
                "holds dft/, or give --data-file)"
            )
    return paths


def split_parts(frame_counts, split: dict, seed: int) -> dict:
    """``{frame index: "train" | "val" | "test"}`` over all files in reading order: each file
    split by the fractions with the seed, as nequip-train draws it
    (:class:`nequip_pol.data.ASEFilesDataModule`)."""
    from nequip_pol.data import split_frame_indices

    fractions = {k: split[k] for k in ("train", "val", "test")}
    return {
        i: part
        for part in ("train", "val", "test")
        for i in split_frame_indices(list(frame_counts), fractions, seed, part)
    }
