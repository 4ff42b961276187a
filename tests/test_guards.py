"""nequip_pol.guards: the training range of a data set (field, closest pairs, species), the
guard's checks and counts, check-data printing the ranges, and how the ranges travel into a
deployed model (the metadata entries, the recorder wrapping the checkpoint's model config, the
builder putting them into a small model's metadata). The calculator's guard on a trained
checkpoint and the ranges in a real ``nequip-compile`` output are in
tests/test_ase_calculator.py (test_extrapolation_guard); the LAMMPS guard in
tests/test_lammps_guard.py."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from nequip_pol.cli import main as cli_main
from nequip_pol.guards import (
    RANGES_FILE,
    RANGES_KEY,
    WRAPPER_TARGET,
    ExtrapolationError,
    ExtrapolationGuard,
    ExtrapolationWarning,
    TrainingRangeRecorder,
    data_ranges,
    ranges_from_metadata,
    ranges_from_model,
    ranges_metadata,
    saved_model_ranges,
    with_training_ranges,
)
from nequip_pol.reference import generate_dataset, write_dataset


@pytest.fixture(scope="module")
def frames():
    return generate_dataset(4, seed=3)


def test_data_ranges_match_brute_force(frames):
    r = data_ranges(frames, cutoff=6.0)  # all pairs of these cells
    fields = np.array([a.info["electric_field"] for a in frames])
    assert r["max_field"] == pytest.approx(np.linalg.norm(fields, axis=1).max())
    np.testing.assert_allclose(r["max_field_per_axis"], np.abs(fields).max(axis=0))
    assert r["species"] == ["Ba", "O", "Ti"] and r["n_frames"] == 4
    # O-Ti by brute force over minimum images (cells large enough: one image per pair)
    best = np.inf
    for a in frames:
        d = a.get_all_distances(mic=True)
        s = np.array(a.get_chemical_symbols())
        best = min(best, d[np.ix_(s == "O", s == "Ti")].min())
    assert r["min_distance"]["O-Ti"] == pytest.approx(best)


def test_guard_field_distance_species_and_counts(frames):
    ranges = dict(data_ranges(frames), max_field=0.2)
    guard = ExtrapolationGuard(ranges, report_at_exit=False, name="m.ckpt")
    atoms = frames[0]
    guard.check(atoms, [0.0, 0.0, 0.15])  # inside
    guard.check(atoms, [0.0, 0.2, 0.0])  # 1.0 x: inside (factor 1.2)
    with pytest.warns(ExtrapolationWarning, match="m.ckpt: extrapolating: .*0.5 V/A"):
        guard.check(atoms, [0.0, 0.0, 0.5])
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.4, 0.0, 0.0]
    guard.check(close, np.zeros(3))  # counted silently after the first warning
    other = atoms.copy()
    other.symbols[0] = "Sr"
    guard.check(other, np.zeros(3))
    assert guard.counts == {"field": 1, "distance": 1, "species": 1}
    assert guard.evaluations == 5
    assert "5 evaluations" in guard.report()
    one = ExtrapolationGuard(ranges, report_at_exit=False, name="m.ckpt")
    one.check(atoms, np.zeros(3))
    assert "1 evaluation," in one.report()
    strict = ExtrapolationGuard(ranges, strict=True, report_at_exit=False)
    with pytest.raises(ExtrapolationError, match="closer than the training minimum"):
        strict.check(close, np.zeros(3))


def test_zero_field_training_checks_distances_not_the_field(frames, capsys):
    """Data at zero field only (the DFT sets: P, Z*, alpha at E = 0) sample no field range: the
    field is not checked (it acts through the learned response), distances still are."""
    ranges = dict(data_ranges(frames), max_field=0.0)
    guard = ExtrapolationGuard(ranges, report_at_exit=False, name="sio2")
    assert "trained at zero field only" in capsys.readouterr().err
    atoms = frames[0]
    guard.check(atoms, [0.0, 0.0, 0.3])
    assert guard.counts["field"] == 0
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.4, 0.0, 0.0]
    with pytest.warns(ExtrapolationWarning, match="closer than the training minimum"):
        guard.check(close, [0.0, 0.0, 0.3])
    assert guard.counts == {"field": 0, "distance": 1, "species": 0}


def test_guard_off_says_so_once(capsys):
    guard = ExtrapolationGuard.off("old.nequip.zip")
    assert not guard.active
    guard.check(None, [9.0, 9.0, 9.0])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "guard is off" in err and "old.nequip.zip" in err
    with pytest.raises(ValueError, match="field_factor"):
        ExtrapolationGuard({}, field_factor=0.5)


def test_check_data_prints_field_and_distance_ranges(frames, tmp_path, capsys):
    path = tmp_path / "a.xyz"
    write_dataset(frames, path)
    assert cli_main(["check-data", str(path)]) == 0
    out = capsys.readouterr().out
    r = data_ranges(frames)
    assert f"field: max |E| {r['max_field']:.4g} V/A" in out
    assert f"O-Ti {r['min_distance']['O-Ti']:.3f}" in out


# ------------------------------------------------------------ the ranges in deployed models


def test_ranges_metadata_round_trip(frames):
    r = data_ranges(frames)
    meta = ranges_metadata(r)
    assert all(
        isinstance(v, str) for v in meta.values()
    )  # AOTInductor metadata: strings
    assert ranges_from_metadata(meta) == json.loads(json.dumps(r))
    # the flat keys a C++ reader parses: one number, "A-B:distance" words
    assert float(meta["nequip_pol_max_field"]) == r["max_field"]
    pairs = dict(w.split(":") for w in meta["nequip_pol_min_distance"].split())
    assert {k: float(v) for k, v in pairs.items()} == r["min_distance"]
    assert float(meta["nequip_pol_distance_cutoff"]) == r["distance_cutoff"]
    # the flat keys alone give the same field and distance ranges (species unknown)
    flat = ranges_from_metadata({k: v for k, v in meta.items() if k != RANGES_KEY})
    assert (
        flat["max_field"] == r["max_field"]
        and flat["min_distance"] == r["min_distance"]
    )
    assert flat["species"] is None
    guard = ExtrapolationGuard(flat, report_at_exit=False)
    other = frames[0].copy()
    other.symbols[0] = "Sr"  # not checked without species
    assert guard.problems(other, np.zeros(3)) == []
    assert [k for k, _ in guard.problems(other, [0.0, 0.0, 2 * r["max_field"]])] == [
        "field"
    ]
    assert ranges_from_metadata({"type_names": "Ba Ti O", "r_max": "5.0"}) is None
    assert ranges_from_metadata(None) is None


def test_recorder_wraps_the_checkpoint_model_config(frames, tmp_path):
    data = tmp_path / "a.xyz"
    write_dataset(frames, data)
    recorder = TrainingRangeRecorder(data_file=str(data), out_dir=str(tmp_path))
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), is_global_zero=True)
    inner = {"_target_": "nequip_pol.model.AllegroPolModel", "seed": 1}
    hparams = {"model": inner, "info_dict": {"x": 1}}
    checkpoint = {"hyper_parameters": hparams}
    recorder.on_save_checkpoint(trainer, None, checkpoint)
    assert checkpoint[RANGES_KEY] == recorder.ranges
    assert recorder.ranges["data_file"] == str(data)
    assert recorder.ranges["max_field"] == pytest.approx(
        data_ranges(frames)["max_field"]
    )
    assert json.loads((tmp_path / RANGES_FILE).read_text()) == recorder.ranges
    saved = checkpoint["hyper_parameters"]
    assert saved["model"] == {
        "_target_": WRAPPER_TARGET,
        "model": inner,
        "training_ranges": recorder.ranges,
    }
    assert saved["info_dict"] == {"x": 1}
    assert hparams["model"] is inner  # the module's own hyper-parameters are untouched
    # a run restarted from that checkpoint (its module built from the wrapped config): the
    # config is wrapped once, with the current ranges
    again = {"hyper_parameters": dict(saved)}
    recorder.on_save_checkpoint(trainer, None, again)
    assert again["hyper_parameters"]["model"]["model"] == inner
    # a checkpoint without hyper-parameters only gets the ranges
    bare = {}
    recorder.on_save_checkpoint(trainer, None, bare)
    assert set(bare) == {RANGES_KEY}


def test_builder_puts_the_ranges_into_the_model_metadata(frames, tmp_path):
    """The builder the checkpoint's config is wrapped in: the same model (same weights) with
    the ranges in ``model.metadata``, which nequip-compile and nequip-package carry."""
    import torch
    from nequip.utils.global_state import set_global_state

    from nequip_pol import testing

    set_global_state()
    config = dict(testing.ALLEGRO_POL, model_dtype="float64")
    ranges = dict(data_ranges(frames), species=["C", "H", "O"])
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = with_training_ranges(config, ranges)
        from hydra.utils import get_method

        plain_config = dict(config)
        plain = get_method(plain_config.pop("_target_"))(**plain_config)
    finally:
        torch.set_default_dtype(old)
    meta = model.metadata
    assert meta["r_max"] == "4.0" and meta["type_names"] == "H C O"
    assert json.loads(meta[RANGES_KEY]) == ranges
    assert meta["nequip_pol_max_field"] == repr(ranges["max_field"])
    assert ranges_from_model(model) == ranges
    assert ranges_from_model(torch.nn.ModuleDict({"sole_model": model})) == ranges
    assert ranges_from_model(plain) is None and RANGES_KEY not in plain.metadata
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    # a saved model: a checkpoint's own entry first, else the eager model's metadata
    ckpt = tmp_path / "m.ckpt"
    torch.save({RANGES_KEY: dict(ranges, max_field=0.5)}, ckpt)
    assert saved_model_ranges(ckpt)["max_field"] == 0.5
    assert saved_model_ranges(tmp_path / "m.nequip.zip", model) == ranges
    assert saved_model_ranges(tmp_path / "m.nequip.zip", plain) is None
