"""Datasets of several extended-XYZ files, split file by file.

A material's data often come in more than one file (thermal snapshots, then configurations added
later: the BaTiO3 domain frames). :class:`ASEFilesDataModule` reads them all and splits *each
file* into train/val/test with nequip's own random split (``RandomSplitAndIndexDataset``, the
config's fractions and seed), then joins the parts: every part holds frames of every file (a test
split with domain frames), the split of a file does not change when another file is added, and a
single file is split exactly as nequip's ``ASEDataModule`` splits it.

Frames are numbered in reading order: the frames of the first file, then those of the second, ...
(:func:`split_frame_indices` gives each part's numbers, for model cards and per-frame errors).
"""

from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
from hydra.utils import instantiate

from nequip.data.datamodule import NequIPDataModule
from nequip.data.dataset import RandomSplitAndIndexDataset

__all__ = ["ASEFilesDataModule", "split_part", "split_frame_indices"]

_PARTS = ("train", "val", "test")


def _as_list(file_paths: Union[str, Sequence[str]]) -> List[str]:
    paths = (
        [file_paths] if isinstance(file_paths, str) else [str(p) for p in file_paths]
    )
    if not paths:
        raise ValueError(
            "ASEFilesDataModule: `file_paths` is empty; give one or more files"
        )
    return paths


def split_part(
    file_paths: Sequence[str],
    dataset: Dict,
    split: Dict[str, float],
    part: str,
    seed: int,
) -> torch.utils.data.ConcatDataset:
    """One part (``train``, ``val`` or ``test``) of every file, joined in file order.

    Args:
        file_paths: extended-XYZ files
        dataset: an ``ASEDataset`` config without ``file_path`` (transforms, keys, ase_args)
        split: fractions (or counts) per part, as nequip's ``split_dataset`` takes them
        part: the part to return
        seed: the split seed (the config's ``seed``)
    """
    parts = []
    for path in _as_list(file_paths):
        config = copy.deepcopy(dict(dataset))
        config["file_path"] = path
        parts.append(
            RandomSplitAndIndexDataset(
                instantiate(config), dict(split), part, seed=seed
            )
        )
    return torch.utils.data.ConcatDataset(parts)


def split_frame_indices(
    frame_counts: Sequence[int], split: Dict[str, float], seed: int, part: str
) -> List[int]:
    """Indices (in reading order over all files) of one part of the file-by-file split.

    Args:
        frame_counts: frames in each file, in the order the files are given
        split: fractions per part, e.g. ``{"train": 0.7, "val": 0.1, "test": 0.2}``
        seed: the split seed
        part: ``train``, ``val`` or ``test``
    """
    indices: List[int] = []
    start = 0
    for count in frame_counts:
        chosen = RandomSplitAndIndexDataset(list(range(count)), dict(split), part, seed)
        indices.extend(start + int(i) for i in chosen.indices)
        start += count
    return sorted(indices)


class ASEFilesDataModule(NequIPDataModule):
    """nequip's data module over several extended-XYZ files, each split by the same fractions.

    Args:
        seed: split seed
        file_paths: one file or a list of files
        split: fractions (or counts) of ``train``, ``val``, ``test`` (as in ``split_dataset``)
        transforms, ase_args, include_keys, exclude_keys, key_mapping: as for nequip's
            ``ASEDataModule``
        **kwargs: dataloaders and ``stats_manager``, as for ``NequIPDataModule``
    """

    def __init__(
        self,
        seed: int,
        file_paths: Union[str, List[str]],
        split: Dict[str, float],
        transforms: List = [],
        ase_args: Dict = {},
        include_keys: Optional[List[str]] = [],
        exclude_keys: Optional[List[str]] = [],
        key_mapping: Optional[Dict[str, str]] = {},
        **kwargs,
    ):
        from omegaconf import DictConfig, ListConfig, OmegaConf

        def plain(value):
            if isinstance(value, (DictConfig, ListConfig)):
                return OmegaConf.to_container(value, resolve=True)
            return value

        split = plain(split)
        unknown = set(split) - set(_PARTS)
        if unknown:
            raise ValueError(
                f"ASEFilesDataModule: `split` takes {', '.join(_PARTS)}; got {sorted(unknown)}"
            )
        dataset = {
            "_target_": "nequip.data.dataset.ASEDataset",
            "transforms": plain(transforms),
            "ase_args": plain(ase_args),
            "include_keys": plain(include_keys),
            "exclude_keys": plain(exclude_keys),
            "key_mapping": plain(key_mapping),
        }
        configs = {
            part: [
                {
                    "_target_": "nequip_pol.data.files.split_part",
                    "_recursive_": False,  # split_part instantiates each file's dataset
                    "file_paths": _as_list(plain(file_paths)),
                    "dataset": dataset,
                    "split": split,
                    "part": part,
                    "seed": seed,
                }
            ]
            for part in split
        }
        super().__init__(
            seed=seed,
            train_dataset=configs.get("train", []),
            val_dataset=configs.get("val", []),
            test_dataset=configs.get("test", []),
            **kwargs,
        )
