"""Tests of the analytic reference material: every autograd property against finite
differences of the material's own energy, exact symmetries, nonlinearity, data sets."""

import numpy as np
import pytest
import torch

import ase

from nequip_pol.reference import (
    AnalyticPolarMaterial,
    generate_dataset,
    ideal_structure,
    read_dataset,
    write_dataset,
)

H = 1e-4  # central finite-difference step (A, V/A)
H_STRAIN = 1e-5  # strain step (energy third derivatives w.r.t. strain are large)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny graphs: much faster single-threaded
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def material():
    return AnalyticPolarMaterial()


def _distorted(supercell=(1, 1, 2), seed=3, disp=0.1, strain=0.02):
    rng = np.random.default_rng(seed)
    atoms = ideal_structure(supercell)
    eps = rng.normal(0, strain, (3, 3))
    defo = np.eye(3) + 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell.array @ defo, scale_atoms=True)
    atoms.positions += rng.normal(0, disp, atoms.positions.shape)
    return atoms


def _cluster(seed=5):
    """Ti O6 octahedron with a Ba cap, displaced; no periodicity."""
    rng = np.random.default_rng(seed)
    pos = [
        [0, 0, 0],
        [2, 0, 0],
        [-2, 0, 0],
        [0, 2, 0],
        [0, -2, 0],
        [0, 0, 2],
        [0, 0, -2],
        [2, 2, 2],
    ]
    pos = np.array(pos, float) + rng.normal(0, 0.1, (8, 3))
    return ase.Atoms(["Ti"] + ["O"] * 6 + ["Ba"], positions=pos, pbc=False)


FIELD = np.array([0.06, -0.11, 0.08])


def _energy(material, atoms, field, positions=None, cell=None):
    pos = atoms.positions if positions is None else positions
    cell = atoms.cell.array if cell is None else cell
    with torch.no_grad():
        return float(
            material.energy(
                torch.tensor(pos),
                torch.tensor(cell),
                atoms.pbc,
                atoms.numbers,
                torch.tensor(field),
            )
        )


def _first_derivatives(material, atoms, field, positions=None):
    """(forces (n,3), P (3,)) by first-order autograd only."""
    pos = torch.tensor(
        atoms.positions if positions is None else positions, requires_grad=True
    )
    fld = torch.tensor(np.asarray(field, float), requires_grad=True)
    e = material.energy(
        pos, torch.tensor(atoms.cell.array), atoms.pbc, atoms.numbers, fld
    )
    gp, gf = torch.autograd.grad(e, [pos, fld])
    return -gp.numpy(), -gf.numpy()


@pytest.mark.parametrize("kind", ["periodic", "cluster"])
def test_finite_differences(material, kind):
    atoms = _distorted() if kind == "periodic" else _cluster()
    props = material.properties(atoms, FIELD)
    n = len(atoms)

    # energy equals the energy function
    assert props["total_energy"] == pytest.approx(
        _energy(material, atoms, FIELD), abs=1e-12
    )

    # P = -dE/dE and alpha = dP/dE
    p_fd = np.zeros(3)
    alpha_fd = np.zeros((3, 3))
    dfdE = np.zeros((n, 3, 3))  # [i, a, b] = dF_ib / dE_a
    for a in range(3):
        dE = np.zeros(3)
        dE[a] = H
        p_fd[a] = -(
            _energy(material, atoms, FIELD + dE) - _energy(material, atoms, FIELD - dE)
        ) / (2 * H)
        fp, pp = _first_derivatives(material, atoms, FIELD + dE)
        fm, pm = _first_derivatives(material, atoms, FIELD - dE)
        alpha_fd[:, a] = (pp - pm) / (2 * H)
        dfdE[:, a, :] = (fp - fm) / (2 * H)
    np.testing.assert_allclose(props["polarization"], p_fd, atol=1e-7)
    np.testing.assert_allclose(props["polarizability"], alpha_fd, atol=1e-7)
    # Maxwell relation: Z*_i,ab = dP_a/dR_ib = dF_ib/dE_a
    np.testing.assert_allclose(props["born_effective_charges"], dfdE, atol=1e-7)

    # forces = -dE/dR and Z* = dP/dR (all atoms, all directions)
    f_fd = np.zeros((n, 3))
    z_fd = np.zeros((n, 3, 3))
    for i in range(n):
        for b in range(3):
            dp = np.zeros((n, 3))
            dp[i, b] = H
            f_fd[i, b] = -(
                _energy(material, atoms, FIELD, atoms.positions + dp)
                - _energy(material, atoms, FIELD, atoms.positions - dp)
            ) / (2 * H)
            _, pp = _first_derivatives(material, atoms, FIELD, atoms.positions + dp)
            _, pm = _first_derivatives(material, atoms, FIELD, atoms.positions - dp)
            z_fd[i, :, b] = (pp - pm) / (2 * H)
    np.testing.assert_allclose(props["forces"], f_fd, atol=1e-7)
    np.testing.assert_allclose(props["born_effective_charges"], z_fd, atol=1e-7)
    # the checks are not vacuous
    assert np.abs(props["forces"]).max() > 0.1
    assert np.abs(props["born_effective_charges"]).max() > 0.5
    assert np.abs(np.diag(props["polarizability"])).min() > 0.1

    if kind == "periodic":
        # stress = (1/V) dE/d(strain), symmetric strain applied to positions and cell
        vol = atoms.get_volume()
        s_fd = np.zeros((3, 3))
        for a in range(3):
            for b in range(3):
                eps = np.zeros((3, 3))
                eps[a, b] += 0.5 * H_STRAIN
                eps[b, a] += 0.5 * H_STRAIN
                ep = _energy(
                    material,
                    atoms,
                    FIELD,
                    atoms.positions @ (np.eye(3) + eps),
                    atoms.cell.array @ (np.eye(3) + eps),
                )
                em = _energy(
                    material,
                    atoms,
                    FIELD,
                    atoms.positions @ (np.eye(3) - eps),
                    atoms.cell.array @ (np.eye(3) - eps),
                )
                s_fd[a, b] = (ep - em) / (2 * H_STRAIN) / vol
        np.testing.assert_allclose(props["stress"], s_fd, atol=1e-9)
        assert np.abs(props["stress"]).max() > 1e-3
    else:
        assert "stress" not in props


def test_sum_rule_and_symmetry(material):
    for atoms in (_distorted((2, 2, 2), seed=7), _cluster()):
        props = material.properties(atoms, FIELD)
        np.testing.assert_allclose(
            props["born_effective_charges"].sum(axis=0), 0.0, atol=1e-10
        )
        np.testing.assert_allclose(
            props["polarizability"], props["polarizability"].T, atol=1e-12
        )
        # not trivially zero / isotropic: distorted structure gives anisotropic Z*
        assert np.abs(props["born_effective_charges"]).max() > 1.0


def test_ideal_crystal(material):
    """Cubic crystal: no forces, no polarization, extensive and consistent across supercells."""
    p1 = material.properties(ideal_structure((1, 1, 1)), np.zeros(3))
    p2 = material.properties(ideal_structure((2, 2, 2)), np.zeros(3))
    assert np.abs(p1["forces"]).max() < 1e-10
    assert np.abs(p1["polarization"]).max() < 1e-10
    assert p2["total_energy"] == pytest.approx(8 * p1["total_energy"], rel=1e-12)
    # the off-diagonal elements are round-off (1e-20 to 1e-18, by machine): compare them on the
    # scale of the diagonal
    scale = np.abs(p1["polarizability"]).max()
    np.testing.assert_allclose(
        p2["polarizability"], 8 * p1["polarizability"], rtol=1e-12, atol=1e-12 * scale
    )
    np.testing.assert_allclose(p2["stress"], p1["stress"], atol=1e-12)
    np.testing.assert_allclose(
        p2["born_effective_charges"][:5], p1["born_effective_charges"], atol=1e-12
    )
    # O(1-3 e) Born charges: Ba, Ti positive, O negative (larger along the Ti-O bond)
    z = np.einsum("nii->ni", p1["born_effective_charges"])
    assert 1.0 < z[0, 0] < 3.5 and 1.0 < z[1, 0] < 3.5
    assert z[2, 2] < z[2, 0] < -0.5


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("kind", ["periodic", "cluster"])
def test_rotation_equivariance(material, kind):
    atoms = _distorted((1, 2, 2), seed=11) if kind == "periodic" else _cluster()
    rot = _rotation(2)
    ratoms = atoms.copy()
    ratoms.positions = atoms.positions @ rot.T
    if kind == "periodic":
        ratoms.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    p = material.properties(atoms, FIELD)
    q = material.properties(ratoms, rot @ FIELD)
    assert q["total_energy"] == pytest.approx(p["total_energy"], abs=1e-10)
    np.testing.assert_allclose(q["forces"], p["forces"] @ rot.T, atol=1e-10)
    np.testing.assert_allclose(q["polarization"], rot @ p["polarization"], atol=1e-10)
    np.testing.assert_allclose(
        q["born_effective_charges"],
        rot @ p["born_effective_charges"] @ rot.T,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        q["polarizability"], rot @ p["polarizability"] @ rot.T, atol=1e-10
    )
    if kind == "periodic":
        np.testing.assert_allclose(q["stress"], rot @ p["stress"] @ rot.T, atol=1e-12)


def test_translation_invariance(material):
    atoms = _cluster()
    moved = atoms.copy()
    moved.positions += np.array([3.0, -1.0, 7.5])
    p, q = material.properties(atoms, FIELD), material.properties(moved, FIELD)
    for key in p:
        np.testing.assert_allclose(q[key], p[key], atol=1e-10)


def test_nonlinear_response(material):
    """Beyond-linear field response is present at |E| = 0.2 V/A, in both even and odd orders."""
    atoms = _distorted((2, 2, 2), seed=4, disp=0.08)
    field = np.array([0.1, -0.1, 0.1])
    field *= 0.2 / np.linalg.norm(field)
    p0 = material.properties(atoms, np.zeros(3))
    pp = material.properties(atoms, field)
    pm = material.properties(atoms, -field)
    linear = p0["polarizability"] @ field
    nonlinear = pp["polarization"] - p0["polarization"] - linear
    even = (
        0.5 * (pp["polarization"] + pm["polarization"]) - p0["polarization"]
    )  # O(E^2)
    odd = 0.5 * (pp["polarization"] - pm["polarization"]) - linear  # O(E^3)
    assert np.linalg.norm(linear) > 0.3
    assert np.linalg.norm(nonlinear) > 5e-3
    assert np.linalg.norm(even) > 2e-3
    assert np.linalg.norm(odd) > 2e-3
    # but it stays a correction
    assert np.linalg.norm(nonlinear) < 0.2 * np.linalg.norm(linear)
    # alpha depends on the field
    assert np.abs(pp["polarizability"] - p0["polarizability"]).max() > 1e-3


def test_cluster_dipole(material):
    """Without periodicity P(E=0) is the ordinary dipole of neutral atomic charges."""
    atoms = _cluster()
    charges = material.atomic_charges(atoms)
    assert abs(charges.sum()) < 1e-12
    assert charges[0] > 0.5 and charges[1] < -0.2
    p = material.properties(atoms, np.zeros(3))["polarization"]
    np.testing.assert_allclose(p, charges @ atoms.positions, atol=1e-12)
    assert np.linalg.norm(p) > 0.05


def test_dataset(material, tmp_path):
    frames = generate_dataset(6, seed=1, supercell=(1, 1, 2), field_fraction=0.5)
    again = generate_dataset(6, seed=1, supercell=(1, 1, 2), field_fraction=0.5)
    other = generate_dataset(6, seed=2, supercell=(1, 1, 2), field_fraction=0.5)
    assert len(frames) == 6 and len(frames[0]) == 10
    for a, b in zip(frames, again):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.info["polarization"], b.info["polarization"])
    assert not np.allclose(frames[0].positions, other[0].positions)

    n_field, shifted = 0, 0
    for atoms in frames:
        info, arrays = atoms.info, atoms.arrays
        assert info["stress"].shape == (3, 3) and info["polarizability"].shape == (3, 3)
        assert info["polarization"].shape == (3,) and info["electric_field"].shape == (
            3,
        )
        assert arrays["forces"].shape == (len(atoms), 3)
        assert arrays["born_effective_charges"].shape == (len(atoms), 9)
        assert np.linalg.norm(info["electric_field"]) <= 0.2 + 1e-12
        n_field += np.linalg.norm(info["electric_field"]) > 0
        # stored P = exact P + integer combination of lattice vectors
        n = (info["polarization"] - info["polarization_exact"]) @ np.linalg.inv(
            atoms.cell.array
        )
        np.testing.assert_allclose(n, np.round(n), atol=1e-9)
        assert np.abs(np.round(n)).max() <= 2
        shifted += np.abs(np.round(n)).max() > 0
        # labels are the material's properties
        props = material.properties(atoms, info["electric_field"])
        np.testing.assert_allclose(arrays["forces"], props["forces"], atol=1e-12)
        np.testing.assert_allclose(
            info["polarization_exact"], props["polarization"], atol=1e-12
        )
        np.testing.assert_allclose(
            arrays["born_effective_charges"].reshape(-1, 3, 3),
            props["born_effective_charges"],
            atol=1e-12,
        )
    assert 0 < n_field < 6 and shifted > 0

    path = tmp_path / "ref.extxyz"
    write_dataset(frames, path)
    with pytest.raises(FileExistsError):
        write_dataset(frames, path)
    write_dataset(frames, path, force=True)
    back = read_dataset(path)
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-6)
        np.testing.assert_allclose(b.cell.array, a.cell.array, atol=1e-6)
        assert b.get_chemical_symbols() == a.get_chemical_symbols()
        for key, value in a.info.items():
            assert key in b.info, key
            assert np.shape(b.info[key]) == np.shape(value), key
            np.testing.assert_allclose(b.info[key], value, rtol=1e-6, atol=1e-9)
        for key in ("forces", "born_effective_charges"):
            assert b.arrays[key].shape == a.arrays[key].shape, key
            # extxyz writes per-atom columns with 8 decimals
            np.testing.assert_allclose(b.arrays[key], a.arrays[key], rtol=0, atol=1e-8)


def test_periodic_images(material):
    """Small cells (edge 4 A < 2 r_cut) need several images: a distorted 1x1x1 cell must give
    exactly 1/8 of its 2x2x2 repeat; moving one atom by a lattice vector changes nothing."""
    small = _distorted((1, 1, 1), seed=13, disp=0.15, strain=0.03)
    small.positions += np.array([3.7, 3.9, -0.2])  # atoms near both faces of the cell
    big = small.repeat((2, 2, 2))
    p1, p8 = material.properties(small, FIELD), material.properties(big, FIELD)
    assert p8["total_energy"] == pytest.approx(8 * p1["total_energy"], rel=1e-12)
    np.testing.assert_allclose(p8["polarization"], 8 * p1["polarization"], atol=1e-10)
    np.testing.assert_allclose(
        p8["polarizability"], 8 * p1["polarizability"], atol=1e-10
    )
    np.testing.assert_allclose(p8["forces"], np.tile(p1["forces"], (8, 1)), atol=1e-10)
    np.testing.assert_allclose(p8["stress"], p1["stress"], atol=1e-12)
    np.testing.assert_allclose(
        p8["born_effective_charges"],
        np.tile(p1["born_effective_charges"], (8, 1, 1)),
        atol=1e-10,
    )

    moved = small.copy()
    moved.positions[2] += small.cell.array[0] - 2 * small.cell.array[2]
    q = material.properties(moved, FIELD)
    assert q["total_energy"] == pytest.approx(p1["total_energy"], abs=1e-10)
    np.testing.assert_allclose(q["forces"], p1["forces"], atol=1e-10)
    np.testing.assert_allclose(
        q["born_effective_charges"], p1["born_effective_charges"], atol=1e-10
    )


def test_neighbor_list_brute_force():
    """All periodic images within the cutoff, for small oblique cells and unwrapped positions."""
    from nequip_pol.reference.paraelectric import CUTOFF, _neighbor_pairs

    rng = np.random.default_rng(0)
    for trial in range(4):
        cell = 3.5 * np.eye(3) + rng.normal(0, 0.6, (3, 3))
        pos = rng.uniform(-0.5, 1.5, (6, 3)) @ cell
        pbc = (
            np.array([True, True, True]) if trial < 3 else np.array([True, False, True])
        )
        i, j, S = _neighbor_pairs(pos, cell, pbc, CUTOFF)
        got = set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
        assert len(got) == len(i)  # no duplicates
        r = np.arange(-6, 7)
        shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) * pbc
        shifts = np.unique(shifts, axis=0)
        want = set()
        for a in range(6):
            for b in range(6):
                d = np.linalg.norm(pos[b] - pos[a] + shifts @ cell, axis=1)
                for s in shifts[
                    (d < CUTOFF) & ((a != b) | np.any(shifts != 0, axis=1))
                ]:
                    want.add((a, b, tuple(s.tolist())))
        assert got == want
        assert any(max(abs(np.array(s))) >= 2 for _, _, s in want)
