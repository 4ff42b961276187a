"""The per-atom field ``atomic_electric_field`` of both model families (float64, small models).

Contract (nequip_pol/nn/field_expansion.py): atom i's enthalpy sees E_frame + E_atomic,i; each
edge i->j uses the field at its centre atom i; p_i = -dE/dE_i is ``atomic_dipoles``;
P = -dE/dE_frame = sum_i p_i; alpha = dP/dE_frame; forces and Z* at fixed per-atom field values.
"""

import copy

import numpy as np
import pytest
import torch
from ase import Atoms
from hydra.utils import get_method

from nequip.data import AtomicDataDict, from_ase
from nequip.data.transforms import (
    ChemicalSpeciesToAtomTypeMapper,
    NeighborListTransform,
)

from nequip_pol import (
    ATOMIC_DIPOLE_KEY,
    ATOMIC_ELECTRIC_FIELD_KEY,
    BORN_CHARGE_KEY,
    ELECTRIC_FIELD_KEY,
    POLARIZABILITY_KEY,
    POLARIZATION_KEY,
)
from model_configs import ALLEGRO_POL, NEQUIP_POL

R_MAX = 4.0
FIELD = np.array([0.08, -0.05, 0.12])
KEYS = (
    AtomicDataDict.TOTAL_ENERGY_KEY,
    AtomicDataDict.PER_ATOM_ENERGY_KEY,
    AtomicDataDict.FORCE_KEY,
    AtomicDataDict.STRESS_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
    ATOMIC_DIPOLE_KEY,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(config, **overrides):
    config = copy.deepcopy(config)
    config.update(model_dtype="float64", **overrides)
    return get_method(config.pop("_target_"))(**config).eval()


@pytest.fixture(scope="module", params=["allegro", "nequip"])
def family(request):
    return request.param


@pytest.fixture(scope="module")
def model(family):
    return build(ALLEGRO_POL if family == "allegro" else NEQUIP_POL)


def cell(seed=0):
    atoms = Atoms(
        "CO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.diag([3.2, 3.3, 3.4]),
        pbc=True,
    ).repeat((2, 1, 1))
    atoms.append("H")
    atoms.positions[-1] = [1.6, 1.6, 1.7]
    atoms.rattle(0.1, seed=seed)
    return atoms


def profile(atoms, scale=1.0):
    """A non-uniform field: a Gaussian 'tip' centred above atom 0 plus a gradient along x."""
    r = atoms.positions - atoms.positions[0] - np.array([0.0, 0.0, 1.5])
    amplitude = np.exp(-(r**2).sum(-1) / (2 * 2.0**2))
    tip = 0.3 * amplitude[:, None] * np.array([0.1, -0.2, 1.0])
    ramp = 0.02 * atoms.positions[:, :1] * np.array([[0.0, 1.0, 0.5]])
    return scale * (tip + ramp)


def to_data(atoms, field=None, atomic_field=None):
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(["H", "C", "O"])(data)
    data = NeighborListTransform(r_max=R_MAX)(data)
    if field is not None:
        data[ELECTRIC_FIELD_KEY] = torch.as_tensor(
            np.reshape(field, (1, 3)), dtype=torch.float64
        )
    if atomic_field is not None:
        data[ATOMIC_ELECTRIC_FIELD_KEY] = torch.as_tensor(
            atomic_field, dtype=torch.float64
        )
    return data


def evaluate(model, atoms, field=None, atomic_field=None):
    out = model(to_data(atoms, field, atomic_field))
    return {k: v.detach() for k, v in out.items() if isinstance(v, torch.Tensor)}


def energy(model, atoms, field=None, atomic_field=None):
    return evaluate(model, atoms, field, atomic_field)[
        AtomicDataDict.TOTAL_ENERGY_KEY
    ].item()


@pytest.mark.parametrize("offset", [False, True])
def test_uniform_atomic_field_equals_frame_field(family, offset):
    """A uniform per-atom field (frame field absent or zero) gives the per-frame result, bit for
    bit (the edges see the same field values), with and without a polarization offset."""
    overrides = {"polarization_offset_fractional": [0.5, 0.0, 0.5]} if offset else {}
    model = build(ALLEGRO_POL if family == "allegro" else NEQUIP_POL, **overrides)
    atoms = cell()
    frame = evaluate(model, atoms, FIELD)
    uniform = np.tile(FIELD, (len(atoms), 1))
    for field in (None, np.zeros(3)):
        per_atom = evaluate(model, atoms, field, uniform)
        for key in KEYS:
            torch.testing.assert_close(per_atom[key], frame[key], atol=0.0, rtol=0.0)
    # the background adds: half uniform in the frame, half per atom (rounding only)
    split = evaluate(model, atoms, 0.5 * FIELD, 0.5 * uniform)
    for key in KEYS:
        torch.testing.assert_close(split[key], frame[key], atol=1e-12, rtol=1e-11)
    # sum_i p_i = P
    torch.testing.assert_close(
        frame[ATOMIC_DIPOLE_KEY].sum(0, keepdim=True),
        frame[POLARIZATION_KEY],
        atol=1e-12,
        rtol=1e-12,
    )


def test_atomic_dipoles_are_minus_energy_gradient_in_atomic_field(family):
    """p_i = -dE/dE_i by autograd, at a non-uniform field and with a polarization offset
    (its share P0/N per atom); P = -dE/dE_frame = sum_i p_i."""
    config = ALLEGRO_POL if family == "allegro" else NEQUIP_POL
    atoms = cell(seed=1)
    atomic = profile(atoms)
    for overrides in ({}, {"polarization_offset_fractional": [0.0, 0.5, 0.5]}):
        closed = evaluate(build(config, **overrides), atoms, FIELD, atomic)
        energy_only = build(config, do_derivatives=False, **overrides)
        data = to_data(atoms, FIELD, atomic)
        data[ATOMIC_ELECTRIC_FIELD_KEY].requires_grad_(True)
        data[ELECTRIC_FIELD_KEY].requires_grad_(True)
        inputs = [data[ATOMIC_ELECTRIC_FIELD_KEY], data[ELECTRIC_FIELD_KEY]]
        out = energy_only(data)
        grad_atomic, grad_frame = torch.autograd.grad(
            out[AtomicDataDict.TOTAL_ENERGY_KEY].sum(), inputs
        )
        torch.testing.assert_close(
            closed[ATOMIC_DIPOLE_KEY], -grad_atomic, atol=1e-12, rtol=1e-10
        )
        torch.testing.assert_close(
            closed[POLARIZATION_KEY], -grad_frame, atol=1e-12, rtol=1e-10
        )
        torch.testing.assert_close(
            closed[ATOMIC_DIPOLE_KEY].sum(0, keepdim=True),
            closed[POLARIZATION_KEY],
            atol=1e-12,
            rtol=1e-10,
        )
        assert closed[ATOMIC_DIPOLE_KEY].abs().max() > 1e-3


def test_response_under_non_uniform_field_finite_differences(model):
    """Forces (fixed per-atom field values), P = -dE/dE_frame, alpha = dP/dE_frame and
    Z* = dP/dR against central differences, at a non-uniform field."""
    atoms = cell(seed=2)
    atomic = profile(atoms)
    out = evaluate(model, atoms, FIELD, atomic)
    h = 1e-4
    fd_p, fd_alpha = np.zeros(3), np.zeros((3, 3))
    for b in range(3):
        step = np.zeros(3)
        step[b] = h
        plus = evaluate(model, atoms, FIELD + step, atomic)
        minus = evaluate(model, atoms, FIELD - step, atomic)
        fd_p[b] = -(
            plus[AtomicDataDict.TOTAL_ENERGY_KEY]
            - minus[AtomicDataDict.TOTAL_ENERGY_KEY]
        ).item() / (2 * h)
        fd_alpha[:, b] = (plus[POLARIZATION_KEY] - minus[POLARIZATION_KEY]).numpy()[
            0
        ] / (2 * h)
    np.testing.assert_allclose(out[POLARIZATION_KEY].numpy()[0], fd_p, atol=1e-7)
    np.testing.assert_allclose(out[POLARIZABILITY_KEY].numpy()[0], fd_alpha, atol=1e-7)
    for i in (0, len(atoms) - 1):
        for b in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, b] += h
            minus.positions[i, b] -= h
            # the field values stay with the atoms (not re-sampled at the new positions)
            e_plus, e_minus = (evaluate(model, a, FIELD, atomic) for a in (plus, minus))
            fd_force = -(
                e_plus[AtomicDataDict.TOTAL_ENERGY_KEY]
                - e_minus[AtomicDataDict.TOTAL_ENERGY_KEY]
            ).item() / (2 * h)
            fd_born = (e_plus[POLARIZATION_KEY] - e_minus[POLARIZATION_KEY]).numpy()[
                0
            ] / (2 * h)
            np.testing.assert_allclose(
                out[AtomicDataDict.FORCE_KEY][i, b].item(), fd_force, atol=1e-7
            )
            np.testing.assert_allclose(
                out[BORN_CHARGE_KEY][i, :, b].numpy(), fd_born, atol=1e-7
            )


def test_locality_atom_sees_field_at_itself(model):
    """Changing the field at atom k changes only the enthalpy of atom k (its edges), and the
    change is -p_k . dE_k to first order."""
    atoms = cell(seed=3)
    atomic = profile(atoms)
    base = evaluate(model, atoms, FIELD, atomic)
    k = 3
    changed = atomic.copy()
    delta = np.array([1e-3, -2e-3, 1.5e-3])
    changed[k] += delta
    new = evaluate(model, atoms, FIELD, changed)
    de = (
        new[AtomicDataDict.PER_ATOM_ENERGY_KEY]
        - base[AtomicDataDict.PER_ATOM_ENERGY_KEY]
    ).numpy()[:, 0]
    assert np.all(de[np.arange(len(atoms)) != k] == 0.0)
    p_k = 0.5 * (base[ATOMIC_DIPOLE_KEY][k] + new[ATOMIC_DIPOLE_KEY][k]).numpy()
    np.testing.assert_allclose(de[k], -p_k @ delta, atol=1e-9)


def test_batched_atomic_fields_equal_frames_one_by_one(model):
    frames = [cell(seed=s) for s in range(3)]
    atomic = [profile(a, scale) for a, scale in zip(frames, (0.0, 1.0, -0.5))]
    fields = [np.zeros(3), FIELD, -FIELD]
    batch = AtomicDataDict.batched_from_list(
        [to_data(a, f, e) for a, f, e in zip(frames, fields, atomic)]
    )
    out = {k: v.detach() for k, v in model(batch).items()}
    offset = 0
    for k, (atoms, field, per_atom) in enumerate(zip(frames, fields, atomic)):
        single = evaluate(model, atoms, field, per_atom)
        n = len(atoms)
        for key in (
            AtomicDataDict.TOTAL_ENERGY_KEY,
            POLARIZATION_KEY,
            POLARIZABILITY_KEY,
        ):
            torch.testing.assert_close(
                out[key][k : k + 1], single[key], atol=1e-10, rtol=1e-9
            )
        for key in (AtomicDataDict.FORCE_KEY, BORN_CHARGE_KEY, ATOMIC_DIPOLE_KEY):
            torch.testing.assert_close(
                out[key][offset : offset + n], single[key], atol=1e-10, rtol=1e-9
            )
        offset += n


def test_autograd_polarization_source_agrees(family):
    """The second code path (P = -dE/dE_frame by autograd, Z* and alpha by double backward)
    gives the same response under a non-uniform field."""
    config = ALLEGRO_POL if family == "allegro" else NEQUIP_POL
    atoms = cell(seed=4)
    atomic = profile(atoms)
    closed = evaluate(build(config), atoms, FIELD, atomic)
    auto = evaluate(build(config, polarization_source="autograd"), atoms, FIELD, atomic)
    for key in KEYS:
        torch.testing.assert_close(auto[key], closed[key], atol=1e-11, rtol=1e-10)


def test_rotation_equivariance_with_atomic_field(model):
    rng = np.random.default_rng(5)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    if np.linalg.det(rot) < 0:
        rot[:, 0] *= -1
    atoms = cell(seed=5)
    atomic = profile(atoms)
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rot.T
    rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    out = evaluate(model, atoms, FIELD, atomic)
    out_rot = evaluate(model, rotated, rot @ FIELD, atomic @ rot.T)
    R = torch.as_tensor(rot)
    tol = dict(atol=1e-9, rtol=1e-8)
    torch.testing.assert_close(
        out_rot[AtomicDataDict.TOTAL_ENERGY_KEY],
        out[AtomicDataDict.TOTAL_ENERGY_KEY],
        **tol,
    )
    for key in (AtomicDataDict.FORCE_KEY, POLARIZATION_KEY, ATOMIC_DIPOLE_KEY):
        torch.testing.assert_close(out_rot[key], out[key] @ R.T, **tol)
    for key in (BORN_CHARGE_KEY, POLARIZABILITY_KEY):
        torch.testing.assert_close(out_rot[key], R @ out[key] @ R.T, **tol)


@pytest.mark.parametrize(
    "shape_or_value, message",
    [
        ((4, 3), r"must have shape \(num_atoms, 3\)"),
        ((9, 2), r"must have shape \(num_atoms, 3\)|last dimension 2"),
        ("nan", "NaN"),
    ],
)
def test_bad_atomic_field_gives_clear_error(shape_or_value, message):
    model = build(ALLEGRO_POL)
    atoms = cell()
    data = to_data(atoms, FIELD)
    if shape_or_value == "nan":
        value = np.zeros((len(atoms), 3))
        value[2, 1] = np.nan
    else:
        value = np.zeros(shape_or_value)
    data[ATOMIC_ELECTRIC_FIELD_KEY] = torch.as_tensor(value, dtype=torch.float64)
    with pytest.raises((ValueError, RuntimeError), match=message) as error:
        model(data)
    assert ATOMIC_ELECTRIC_FIELD_KEY in str(error.value)
