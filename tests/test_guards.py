"""nequip_pol.guards without a model: the training range of a data set (field, closest pairs,
species), the guard's checks and counts, and check-data printing the ranges. The calculator's
guard on a trained checkpoint is in tests/test_ase_calculator.py (test_extrapolation_guard)."""

import numpy as np
import pytest

from nequip_pol.cli import main as cli_main
from nequip_pol.guards import (
    ExtrapolationError,
    ExtrapolationGuard,
    ExtrapolationWarning,
    data_ranges,
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
    strict = ExtrapolationGuard(ranges, strict=True, report_at_exit=False)
    with pytest.raises(ExtrapolationError, match="closer than the training minimum"):
        strict.check(close, np.zeros(3))


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
