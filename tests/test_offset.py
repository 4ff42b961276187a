"""The polarization offset takes only the values inversion allows (0 or 1/2 quantum per lattice
vector): models of both families obey P(-R) = -P(R) modulo the quantum, a centrosymmetric cell
gets 0 or 1/2, and the data-side estimate (nequip_pol.data.offset, check-data) picks the offset
of point-charge crystals whose polarization is known exactly."""

import warnings

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms

from nequip_pol import POLARIZATION_KEY
from nequip_pol.data.offset import estimate_inversion_offset, project_offset
from nequip_pol.io.check_data import check_dataset
from test_response import ALLEGRO_POL, NEQUIP_POL, build, evaluate, perovskite_like

FAMILIES = {"allegro": ALLEGRO_POL, "nequip": NEQUIP_POL}


def fractional(p, atoms):
    """Cell dipole in units of the lattice vectors."""
    return np.linalg.solve(atoms.cell.array.T, np.asarray(p).reshape(3))


def whole_quanta(f, atol=1e-8):
    return np.allclose(f, np.round(f), atol=atol)


def centrosymmetric_perovskite():
    """ABO3 with ions at their ideal sites (P4/mmm in a tetragonal cell), as type names H, C, O."""
    a, c = 3.4, 3.6
    return Atoms(
        "CHO3",
        scaled_positions=[
            (0, 0, 0),
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0),
            (0.5, 0, 0.5),
            (0, 0.5, 0.5),
        ],
        cell=[a, a, c],
        pbc=True,
    ).repeat((2, 2, 2))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("offset", [[0.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
def test_inverted_structure_has_opposite_polarization(family, offset):
    model = build(FAMILIES[family], polarization_offset_fractional=offset)
    atoms = perovskite_like()
    inverted = atoms.copy()
    inverted.positions = -atoms.positions  # inversion through the origin; same lattice
    # zero field: inversion flips the field too, and P(R, E) = -P(-R, -E) is the general form
    p = evaluate(model, atoms, field=None)[POLARIZATION_KEY].numpy()
    p_inv = evaluate(model, inverted, field=None)[POLARIZATION_KEY].numpy()
    total = fractional(p + p_inv, atoms)
    assert whole_quanta(total), total
    # and not trivially: the structure itself is polar
    assert np.abs(fractional(p, atoms) - np.array(offset)).max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_field_reverses_with_the_structure(family):
    """P(-R, -E) = -P(R, E) modulo the quantum, with a field."""
    model = build(FAMILIES[family], polarization_offset_fractional=[0.0, 0.5, 0.0])
    atoms = perovskite_like(seed=3)
    inverted = atoms.copy()
    inverted.positions = -atoms.positions
    field = [0.05, -0.02, 0.08]
    p = evaluate(model, atoms, field=field)[POLARIZATION_KEY].numpy()
    p_inv = evaluate(model, inverted, field=[-x for x in field])[POLARIZATION_KEY]
    assert whole_quanta(fractional(p + p_inv.numpy(), atoms))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("offset", [[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.5, 0.5, 0.5]])
def test_centrosymmetric_cell_gets_zero_or_half_quantum(family, offset):
    model = build(FAMILIES[family], polarization_offset_fractional=offset)
    atoms = centrosymmetric_perovskite()
    p = evaluate(model, atoms, field=None)[POLARIZATION_KEY].numpy()
    f = fractional(p, atoms)
    np.testing.assert_allclose(f, offset, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_offsets_inversion_forbids_are_refused(family):
    with pytest.raises(ValueError, match="0 or 1/2"):
        build(FAMILIES[family], polarization_offset_fractional=[0.3, 0.0, 0.0])
    # whole quanta and 1/2 modulo 1 are fine
    build(FAMILIES[family], polarization_offset_fractional=[1.0, -0.5, 1.5])


@pytest.mark.parametrize("family", FAMILIES)
def test_learned_offset_of_older_checkpoints_is_projected(family):
    """Models trained with the old learned offset load with it projected to the nearest allowed
    value (so the shipped BaTiO3 checkpoints' -2.85 quanta act as -3, i.e. 0)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build(FAMILIES[family], polarization_offset_trainable=True)
    assert any("deprecated" in str(w.message) for w in caught)
    # a frozen parameter: checkpoints of the learned offset count it among the parameters
    # (EMA weights, optimizer state), so it stays one, but nothing trains it
    offsets = [
        p for name, p in model.named_parameters() if "polarization_offset" in name
    ]
    assert len(offsets) == 1 and not offsets[0].requires_grad
    state = model.state_dict()
    key = next(k for k in state if k.endswith("polarization_offset_fractional"))
    state[key] = torch.tensor([-0.0008, 0.3, -2.853], dtype=state[key].dtype)
    model.load_state_dict(state)
    atoms = centrosymmetric_perovskite()
    f = fractional(evaluate(model, atoms, field=None)[POLARIZATION_KEY].numpy(), atoms)
    np.testing.assert_allclose(f, [0.0, 0.5, -3.0], atol=1e-6)
    assert model.metadata["polarization_offset_fractional"].split() == [
        "0.0",
        "0.5",
        "0.0",
    ]


def test_project_offset():
    np.testing.assert_allclose(project_offset([0.1, 0.4, -2.853]), [0.0, 0.5, 0.0])
    np.testing.assert_allclose(project_offset([0.74, -0.26, 0.9]), [0.5, 0.5, 0.0])


# --- the data side: point-charge crystals, whose P = sum_i q_i r_i is known exactly ---------


def point_charge_frames(atoms, charges, n_frames, rng, polar=0.0, shift=(0, 0, 0)):
    """Frames of a point-charge crystal: random displacements (plus ``polar`` A along z of the
    cations), P = sum q r (Z* = q I) moved to a random branch, plus ``shift`` quanta."""
    frames = []
    cell = atoms.cell.array
    for _ in range(n_frames):
        frame = atoms.copy()
        frame.positions += rng.normal(scale=0.04, size=frame.positions.shape)
        frame.positions[charges > 0, 2] += polar
        p = charges @ frame.positions
        branch = rng.integers(-3, 4, size=3)
        p = p + (branch + np.asarray(shift)) @ cell
        z = np.repeat(np.eye(3)[None], len(frame), 0) * charges[:, None, None]
        frame.positions = frame.get_positions(wrap=True)  # any atom may sit anywhere
        frames.append((frame.positions, cell, frame.numbers, p, z))
    return frames


def rock_salt():
    atoms = Atoms(
        "NaCl" * 4,
        scaled_positions=[
            (0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0), (0, 0.5, 0),
            (0.5, 0, 0.5), (0, 0, 0.5), (0, 0.5, 0.5), (0.5, 0.5, 0.5),
        ],
        cell=[5.6, 5.6, 5.6],
        pbc=True,
    )  # fmt: skip
    return atoms, np.where(atoms.numbers == 11, 1.0, -1.0)


def cesium_chloride():
    """One formula unit: P(centrosymmetric) = -(1/2, 1/2, 1/2) quanta, the half-quantum case."""
    atoms = Atoms(
        "CsCl", scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5)], cell=[4.1] * 3, pbc=True
    )
    return atoms, np.array([1.0, -1.0])


def test_estimate_finds_zero_and_half_quanta(seed_offset):
    rng = np.random.default_rng(10 + seed_offset)
    atoms, charges = rock_salt()
    estimate = estimate_inversion_offset(point_charge_frames(atoms, charges, 6, rng))
    np.testing.assert_allclose(estimate.offset, [0, 0, 0])
    assert estimate.decided.all() and not estimate.one_sided.any()

    atoms, charges = cesium_chloride()
    estimate = estimate_inversion_offset(point_charge_frames(atoms, charges, 6, rng))
    np.testing.assert_allclose(estimate.offset, [0.5, 0.5, 0.5])
    assert estimate.decided.all()


def test_dataset_shifted_by_half_a_quantum_picks_half(seed_offset):
    rng = np.random.default_rng(20 + seed_offset)
    atoms, charges = rock_salt()
    frames = point_charge_frames(atoms, charges, 6, rng, shift=(0, 0.5, 0))
    estimate = estimate_inversion_offset(frames)
    np.testing.assert_allclose(estimate.offset, [0, 0.5, 0])
    assert estimate.decided.all()


def test_one_polar_direction_is_reported(seed_offset):
    """Every frame polarized along +z: the estimate rests on the Born charges carried over the
    whole distortion, and says so."""
    rng = np.random.default_rng(30 + seed_offset)
    atoms, charges = rock_salt()
    estimate = estimate_inversion_offset(
        point_charge_frames(atoms, charges, 6, rng, polar=0.3)
    )
    assert list(estimate.one_sided) == [False, False, True]
    assert list(estimate.decided) == [True, True, False]
    # the point charges have constant Z*, so the value is still right
    np.testing.assert_allclose(estimate.offset, [0, 0, 0])


def write_frames(path, frames, symbols_of):
    atoms_list = []
    for positions, cell, numbers, p, z in frames:
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
        atoms.info["polarization"] = np.asarray(p)
        atoms.arrays["born_charge"] = z.reshape(len(atoms), 9)
        atoms_list.append(atoms)
    ase.io.write(path, atoms_list, format="extxyz")


def test_check_data_reports_the_offset_and_warns_when_one_sided(tmp_path, seed_offset):
    rng = np.random.default_rng(40 + seed_offset)
    atoms, charges = rock_salt()
    both = tmp_path / "both.xyz"
    frames = point_charge_frames(atoms, charges, 3, rng, polar=0.3)
    frames += point_charge_frames(atoms, charges, 3, rng, polar=-0.3)
    write_frames(both, frames, None)
    report = check_dataset(both)
    np.testing.assert_allclose(report.inversion_offset.offset, [0, 0, 0])
    text = str(report)
    assert "polarization_offset: [0, 0, 0]" in text
    assert not any("one polar direction" in w for w in report.warnings)

    one_sided = tmp_path / "one_sided.xyz"
    write_frames(
        one_sided, point_charge_frames(atoms, charges, 4, rng, polar=0.3), None
    )
    report = check_dataset(one_sided)
    assert any("one polar direction" in w for w in report.warnings), report.warnings
