"""Datasets of several files (nequip_pol.data.ASEFilesDataModule): one file is split exactly as
nequip's own ASEDataModule splits it, several files are split file by file, and
split_frame_indices names the same frames."""

import ase.io
import pytest
from ase import Atoms

from nequip.data import AtomicDataDict
from nequip.data.datamodule import ASEDataModule

from nequip_pol.data import ASEFilesDataModule, split_frame_indices

SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}


def write_frames(path, n, first_index):
    """Frames told apart by their first atom's x coordinate (= frame number)."""
    frames = []
    for k in range(n):
        atoms = Atoms("H2", positions=[[first_index + k, 0, 0], [0, 0, 0.74]])
        atoms.info["total_energy"] = float(first_index + k)
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")


def frame_numbers(datamodule, part):
    datamodule.setup("fit" if part != "test" else "test")
    dataset = {
        "train": "train_dataset",
        "val": "val_dataset",
        "test": "test_dataset",
    }[part]
    (parts,) = getattr(datamodule, dataset)
    return sorted(
        int(round(float(parts[i][AtomicDataDict.POSITIONS_KEY][0, 0])))
        for i in range(len(parts))
    )


@pytest.mark.parametrize("seed", [1, 7])
def test_one_file_splits_as_nequip_does(tmp_path, seed):
    path = tmp_path / "a.xyz"
    write_frames(path, 59, 0)
    ours = ASEFilesDataModule(seed=seed, file_paths=[str(path)], split=SPLIT)
    nequips = ASEDataModule(seed=seed, split_dataset={"file_path": str(path), **SPLIT})
    for part in ("train", "val", "test"):
        assert frame_numbers(ours, part) == frame_numbers(nequips, part)
        assert frame_numbers(ours, part) == split_frame_indices([59], SPLIT, seed, part)


def test_several_files_are_split_file_by_file(tmp_path):
    first, second = tmp_path / "a.xyz", tmp_path / "b.xyz"
    write_frames(first, 59, 0)
    write_frames(second, 10, 59)
    datamodule = ASEFilesDataModule(
        seed=1, file_paths=[str(first), str(second)], split=SPLIT
    )
    parts = {part: frame_numbers(datamodule, part) for part in SPLIT}
    # every frame once, and each part holds frames of both files in proportion
    assert sorted(sum(parts.values(), [])) == list(range(69))
    assert [sum(i >= 59 for i in parts[p]) for p in ("train", "val", "test")] == [
        7,
        1,
        2,
    ]
    # the first file's split does not change when the second is added
    alone = ASEFilesDataModule(seed=1, file_paths=[str(first)], split=SPLIT)
    assert [i for i in parts["test"] if i < 59] == frame_numbers(alone, "test")
    for part in SPLIT:
        assert parts[part] == split_frame_indices([59, 10], SPLIT, 1, part)


def test_bad_split_and_empty_file_list_are_refused(tmp_path):
    path = tmp_path / "a.xyz"
    write_frames(path, 5, 0)
    with pytest.raises(ValueError, match="`split` takes"):
        ASEFilesDataModule(seed=1, file_paths=[str(path)], split={"training": 1.0})
    with pytest.raises(ValueError, match="empty"):
        ASEFilesDataModule(seed=1, file_paths=[], split=SPLIT)


def test_dft_config_reads_every_file_of_the_dataset_config():
    """configs/dft.yaml composed with dataset=BaTiO3 trains on both of its files (thermal and
    domain frames), with SiO2 on its one file: the dataset group's data_files is not overridden
    by dft.yaml's own keys (it was, and a BaTiO3 run silently used one file)."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    configs = Path(__file__).resolve().parent.parent / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base=None):
        for dataset, names in (
            ("BaTiO3", ["BaTiO3.xyz", "BaTiO3_domains.xyz"]),
            ("SiO2", ["SiO2.xyz"]),
        ):
            cfg = compose(
                config_name="dft",
                overrides=[f"dataset={dataset}", "data_dir=/data"],
            )
            # resolve only the keys that do not need nequip's training-data resolvers
            paths = OmegaConf.to_container(cfg.data, resolve=True)["file_paths"]
            paths = [paths] if isinstance(paths, str) else paths
            assert [Path(p).name for p in paths] == names, dataset
            assert all(p.startswith("/data/dft/") for p in paths)
            recorder = next(
                c
                for c in cfg.trainer.callbacks
                if c["_target_"].endswith("TrainingRangeRecorder")
            )
            recorded = OmegaConf.to_container(recorder, resolve=False)
            assert "data_files" in recorded["data_file"]
