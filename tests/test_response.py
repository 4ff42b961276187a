"""The physics contract of the response head, checked against finite differences and second code
paths (float64, both builders, a periodic perovskite-like cell and a molecule)."""

import copy

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from hydra.utils import get_method

from nequip.data import AtomicDataDict, from_ase
from nequip.data.transforms import (
    ChemicalSpeciesToAtomTypeMapper,
    NeighborListTransform,
)

from nequip_pol import (
    ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
)
from model_configs import ALLEGRO_POL, NEQUIP_POL

R_MAX = 4.0
FIELD = [0.08, -0.05, 0.12]


def build(config, **overrides):
    config = copy.deepcopy(config)
    config.update(model_dtype="float64", **overrides)
    model = get_method(config.pop("_target_"))(**config)
    return model.eval()


@pytest.fixture(scope="module", params=["allegro", "nequip"])
def model(request):
    return build(ALLEGRO_POL if request.param == "allegro" else NEQUIP_POL)


def perovskite_like(seed=0):
    atoms = Atoms(
        "CO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.diag([3.2, 3.3, 3.4]),
        pbc=True,
    ).repeat((2, 1, 1))
    atoms.append("H")
    atoms.positions[-1] = [1.6, 1.6, 1.7]
    atoms.cell[1] += [0.3, 0.0, 0.0]  # skewed cell
    atoms.rattle(0.1, seed=seed)
    return atoms


def to_data(atoms, field=FIELD):
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(["H", "C", "O"])(data)
    data = NeighborListTransform(r_max=R_MAX)(data)
    if field is not None:
        data[ELECTRIC_FIELD_KEY] = torch.as_tensor([field], dtype=torch.float64)
    return data


def evaluate(model, atoms, field=FIELD):
    out = model(to_data(atoms, field))
    return {k: v.detach() for k, v in out.items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module", params=["periodic", "molecule"])
def atoms(request):
    if request.param == "periodic":
        return perovskite_like()
    mol = molecule("CH3CHO")
    mol.rattle(0.05, seed=1)
    return mol


def energy(model, atoms, field):
    return evaluate(model, atoms, field)[AtomicDataDict.TOTAL_ENERGY_KEY].item()


def test_polarization_is_minus_field_derivative(model, atoms):
    h = 1e-4
    out = evaluate(model, atoms)
    fd = np.zeros(3)
    for b in range(3):
        plus, minus = np.array(FIELD), np.array(FIELD)
        plus[b] += h
        minus[b] -= h
        fd[b] = -(energy(model, atoms, plus) - energy(model, atoms, minus)) / (2 * h)
    np.testing.assert_allclose(
        out[POLARIZATION_KEY].numpy()[0], fd, atol=1e-7, rtol=1e-6
    )


def test_polarizability_is_field_derivative_of_polarization(model, atoms):
    h = 1e-4
    out = evaluate(model, atoms)
    alpha = out[POLARIZABILITY_KEY].numpy()[0]
    fd = np.zeros((3, 3))
    for b in range(3):
        plus, minus = np.array(FIELD), np.array(FIELD)
        plus[b] += h
        minus[b] -= h
        dp = (
            evaluate(model, atoms, plus)[POLARIZATION_KEY]
            - evaluate(model, atoms, minus)[POLARIZATION_KEY]
        )
        fd[:, b] = dp.numpy()[0] / (2 * h)
    np.testing.assert_allclose(alpha, fd, atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(alpha, alpha.T, atol=1e-12)
    assert np.abs(alpha).max() > 1e-4  # the test would pass trivially on a zero tensor


def test_born_charges_finite_differences_and_maxwell_relation(model, atoms):
    h = 1e-4
    out = evaluate(model, atoms)
    born = out[BORN_CHARGE_KEY].numpy()
    # Z*_i,ab = dP_a / dr_ib
    for i in (0, len(atoms) - 1):
        for b in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, b] += h
            minus.positions[i, b] -= h
            dp = (
                evaluate(model, plus)[POLARIZATION_KEY]
                - evaluate(model, minus)[POLARIZATION_KEY]
            )
            np.testing.assert_allclose(
                born[i, :, b], dp.numpy()[0] / (2 * h), atol=1e-7, rtol=1e-6
            )
    # Maxwell relation: Z*_i,ab = dF_ib / dE_a
    for a in range(3):
        plus, minus = np.array(FIELD), np.array(FIELD)
        plus[a] += h
        minus[a] -= h
        df = (
            evaluate(model, atoms, plus)[AtomicDataDict.FORCE_KEY]
            - evaluate(model, atoms, minus)[AtomicDataDict.FORCE_KEY]
        )
        np.testing.assert_allclose(
            born[:, a, :], df.numpy() / (2 * h), atol=1e-7, rtol=1e-6
        )
    assert np.abs(born).max() > 1e-3


def test_acoustic_sum_rule(model, atoms):
    born = evaluate(model, atoms)[BORN_CHARGE_KEY].numpy()
    assert np.abs(born).max() > 1e-3
    np.testing.assert_allclose(born.sum(axis=0), 0.0, atol=1e-12)


def test_forces_and_stress_finite_differences(model):
    atoms = perovskite_like(seed=3)
    h = 1e-5
    out = evaluate(model, atoms)
    i = 2
    for b in range(3):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, b] += h
        minus.positions[i, b] -= h
        fd = -(energy(model, plus, FIELD) - energy(model, minus, FIELD)) / (2 * h)
        np.testing.assert_allclose(
            out[AtomicDataDict.FORCE_KEY][i, b].item(), fd, atol=1e-7
        )
    # stress = (1/V) dE/d(strain), the field held fixed
    stress = out[AtomicDataDict.STRESS_KEY].numpy()[0]
    volume = atoms.get_volume()
    for a, b in [(0, 0), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            deformation = np.eye(3) + sign * eps
            strained.set_cell(atoms.cell.array @ deformation, scale_atoms=False)
            strained.positions = atoms.positions @ deformation
            energies.append(energy(model, strained, FIELD))
        fd = (energies[0] - energies[1]) / (2 * h) / volume
        factor = 1.0 if a == b else 2.0  # eps_ab and eps_ba both moved
        np.testing.assert_allclose(stress[a, b] * factor, fd, atol=1e-7)


def random_rotation(seed):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def test_rotation_equivariance(model, atoms):
    rot = random_rotation(5)
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rot.T
    if atoms.pbc.any():
        rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    out = evaluate(model, atoms, FIELD)
    out_rot = evaluate(model, rotated, rot @ np.array(FIELD))
    R = torch.as_tensor(rot)
    tol = dict(atol=1e-9, rtol=1e-8)
    torch.testing.assert_close(
        out_rot[AtomicDataDict.TOTAL_ENERGY_KEY],
        out[AtomicDataDict.TOTAL_ENERGY_KEY],
        **tol,
    )
    torch.testing.assert_close(
        out_rot[AtomicDataDict.FORCE_KEY], out[AtomicDataDict.FORCE_KEY] @ R.T, **tol
    )
    torch.testing.assert_close(
        out_rot[POLARIZATION_KEY], out[POLARIZATION_KEY] @ R.T, **tol
    )
    torch.testing.assert_close(
        out_rot[BORN_CHARGE_KEY], R @ out[BORN_CHARGE_KEY] @ R.T, **tol
    )
    torch.testing.assert_close(
        out_rot[POLARIZABILITY_KEY], R @ out[POLARIZABILITY_KEY] @ R.T, **tol
    )
    if atoms.pbc.any():
        torch.testing.assert_close(
            out_rot[AtomicDataDict.STRESS_KEY],
            R @ out[AtomicDataDict.STRESS_KEY] @ R.T,
            **tol,
        )


def test_translation_invariance(model, atoms):
    shifted = atoms.copy()
    shifted.positions += np.array([0.37, -1.2, 2.5])
    out, out_shifted = evaluate(model, atoms), evaluate(model, shifted)
    for key in (
        AtomicDataDict.TOTAL_ENERGY_KEY,
        AtomicDataDict.FORCE_KEY,
        POLARIZATION_KEY,
        BORN_CHARGE_KEY,
        POLARIZABILITY_KEY,
    ):
        torch.testing.assert_close(out_shifted[key], out[key], atol=1e-10, rtol=1e-9)


def test_batch_with_different_fields_equals_frames_one_by_one(model):
    frames = [perovskite_like(seed=s) for s in range(3)]
    fields = [[0.0, 0.0, 0.0], [0.1, 0.0, -0.05], [-0.02, 0.15, 0.03]]
    batch = AtomicDataDict.batched_from_list(
        [to_data(a, f) for a, f in zip(frames, fields)]
    )
    out = {k: v.detach() for k, v in model(batch).items()}
    offset = 0
    for k, (atoms, field) in enumerate(zip(frames, fields)):
        single = evaluate(model, atoms, field)
        n = len(atoms)
        for key in (
            AtomicDataDict.TOTAL_ENERGY_KEY,
            POLARIZATION_KEY,
            POLARIZABILITY_KEY,
            AtomicDataDict.STRESS_KEY,
        ):
            torch.testing.assert_close(
                out[key][k : k + 1], single[key], atol=1e-10, rtol=1e-9
            )
        for key in (AtomicDataDict.FORCE_KEY, BORN_CHARGE_KEY):
            torch.testing.assert_close(
                out[key][offset : offset + n], single[key], atol=1e-10, rtol=1e-9
            )
        offset += n


def test_missing_field_means_zero_field(model):
    atoms = perovskite_like()
    without = evaluate(model, atoms, None)
    zero = evaluate(model, atoms, [0.0, 0.0, 0.0])
    for key in (
        AtomicDataDict.TOTAL_ENERGY_KEY,
        AtomicDataDict.FORCE_KEY,
        POLARIZATION_KEY,
        BORN_CHARGE_KEY,
    ):
        torch.testing.assert_close(without[key], zero[key])


def test_field_response_is_nonlinear(model):
    atoms = perovskite_like()
    p = [
        evaluate(model, atoms, [0.0, 0.0, s])[POLARIZATION_KEY][0, 2].item()
        for s in (-0.3, 0.0, 0.3)
    ]
    # a linear-response model would have p[0] + p[2] - 2 p[1] == 0 (second-order response of P)
    assert abs(p[0] + p[2] - 2 * p[1]) > 1e-6


@pytest.mark.parametrize("family", ["allegro", "nequip"])
def test_code_paths_agree(family):
    """Closed-form P with vmap/loop Born charges == P, Z*, alpha by (double) autograd of the energy."""
    config = ALLEGRO_POL if family == "allegro" else NEQUIP_POL
    atoms = perovskite_like(seed=4)
    reference = evaluate(build(config, born_charge_method="vmap"), atoms)
    for overrides in (
        {"born_charge_method": "loop"},
        {"polarization_source": "autograd"},
    ):
        other = evaluate(build(config, **overrides), atoms)
        for key in (
            AtomicDataDict.TOTAL_ENERGY_KEY,
            AtomicDataDict.FORCE_KEY,
            AtomicDataDict.STRESS_KEY,
            POLARIZATION_KEY,
            BORN_CHARGE_KEY,
            POLARIZABILITY_KEY,
        ):
            torch.testing.assert_close(
                other[key], reference[key], atol=1e-11, rtol=1e-10
            )


def test_response_outputs_setting():
    atoms = perovskite_like()
    model = build(ALLEGRO_POL, response_outputs=[])
    out = evaluate(model, atoms)
    assert (
        BORN_CHARGE_KEY not in out
        and POLARIZATION_KEY not in out
        and POLARIZABILITY_KEY not in out
    )
    full = evaluate(build(ALLEGRO_POL), atoms)
    torch.testing.assert_close(
        out[AtomicDataDict.FORCE_KEY], full[AtomicDataDict.FORCE_KEY]
    )
    with pytest.raises(ValueError, match="unknown `response_outputs`"):
        build(ALLEGRO_POL, response_outputs=["dipole"])


def test_polarization_offset_follows_the_cell():
    atoms = perovskite_like()
    plain = evaluate(build(ALLEGRO_POL), atoms)
    offset_model = build(ALLEGRO_POL, polarization_offset_fractional=[0.5, 0.0, 0.5])
    # deployed models without a cell input (LAMMPS) read the offset from the metadata
    assert [
        float(x)
        for x in offset_model.metadata["polarization_offset_fractional"].split()
    ] == [0.5, 0.0, 0.5]
    assert "polarization_offset_fractional" not in build(ALLEGRO_POL).metadata
    shifted = evaluate(offset_model, atoms)
    expected = 0.5 * (atoms.cell.array[0] + atoms.cell.array[2])
    np.testing.assert_allclose(
        (shifted[POLARIZATION_KEY] - plain[POLARIZATION_KEY]).numpy()[0],
        expected,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        (
            shifted[AtomicDataDict.TOTAL_ENERGY_KEY]
            - plain[AtomicDataDict.TOTAL_ENERGY_KEY]
        ).item(),
        -expected @ np.array(FIELD),
        atol=1e-10,
    )
    torch.testing.assert_close(shifted[BORN_CHARGE_KEY], plain[BORN_CHARGE_KEY])


@pytest.mark.parametrize(
    "field, message",
    [
        # nequip's own irreps check (on in tests) or ours, both name the key
        ([[0.1, 0.2]], r"must have shape \(num_frames, 3\)|last dimension 2"),
        ([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]], r"must have shape \(num_frames, 3\)"),
        ([[float("nan"), 0.0, 0.0]], "NaN"),
    ],
)
def test_bad_field_gives_clear_error(field, message):
    model = build(ALLEGRO_POL)
    data = to_data(perovskite_like(), None)
    data[ELECTRIC_FIELD_KEY] = torch.tensor(field, dtype=torch.float64)
    with pytest.raises((ValueError, RuntimeError), match=message) as error:
        model(data)
    assert ELECTRIC_FIELD_KEY in str(error.value)


def test_without_stress_the_rest_is_unchanged():
    atoms = perovskite_like()
    full = evaluate(build(NEQUIP_POL), atoms)
    no_stress = evaluate(build(NEQUIP_POL, compute_stress=False), atoms)
    assert AtomicDataDict.STRESS_KEY not in no_stress
    for key in (
        AtomicDataDict.TOTAL_ENERGY_KEY,
        AtomicDataDict.FORCE_KEY,
        POLARIZATION_KEY,
        BORN_CHARGE_KEY,
        POLARIZABILITY_KEY,
    ):
        torch.testing.assert_close(no_stress[key], full[key], atol=1e-12, rtol=1e-11)
