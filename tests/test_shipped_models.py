"""The models shipped in nequip_pol/models: they load by name, obey the physics contract, and
reproduce the test errors on their cards.

- Contract (no data needed): forces = -dE/dR and P = -dE/dE by finite differences of the energy,
  Z* = dP/dR by finite differences of P, alpha = dP/dE likewise and symmetric, sum_i Z*_i = 0,
  on a small distorted cell of the material (float32 models: tolerances of float32 differences).
- Card errors (needs the shared DFT data, ``NEQUIP_POL_DATA``): the RMSEs of E, F, stress, P
  (nearest branch), Z*, alpha on the model's test split, computed here with the ASE calculator and
  numpy, equal those on the card (``NAME.json``, computed by nequip-train's test metrics: another
  code path) to 1 %.

A model whose archive is not in this checkout is skipped, with the reason.
"""

import json

import numpy as np
import pytest

import nequip_pol.models as shipped
from nequip_pol.data_path import DATA_ENV_VAR, shared_data_dir


def _structure(name):
    """A small cell of the model's material, distorted off its symmetric positions (A)."""
    from ase import Atoms
    from ase.spacegroup import crystal

    if name == "sio2":  # alpha-quartz (P3_221), 9 atoms
        atoms = crystal(
            ["Si", "O"],
            basis=[(0.4697, 0.0, 0.0), (0.4135, 0.2669, 0.1191)],
            spacegroup=154,
            cellpar=[4.916, 4.916, 5.405, 90, 90, 120],
        )
    elif name == "batio3":  # tetragonal perovskite, 2x1x1 (10 atoms)
        cell = np.diag([3.99, 3.99, 4.04])
        frac = [
            (0, 0, 0),
            (0.5, 0.5, 0.52),
            (0.5, 0.5, 0.0),
            (0.5, 0.0, 0.5),
            (0.0, 0.5, 0.5),
        ]
        atoms = Atoms("BaTiO3", scaled_positions=frac, cell=cell, pbc=True).repeat(
            (2, 1, 1)
        )
    else:
        raise KeyError(name)
    rng = np.random.default_rng(0)
    atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
    return atoms


def _calculator(name):
    if name not in shipped.available():
        pytest.skip(
            f"the shipped model {name!r} is not in this checkout ({shipped.SHIPPED_MODELS[name][0]})"
        )
    return shipped.load(name)


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED_MODELS))
def test_shipped_model_contract(name):
    calc = _calculator(name)
    atoms = _structure(name)
    field = np.array([0.01, -0.02, 0.015])
    res = calc.evaluate(atoms, field=field)
    born = res["born_effective_charges"]
    alpha = res["polarizability"]
    pol = res["polarization"]
    # translation invariance -> acoustic sum rule; alpha symmetric
    assert np.abs(born.sum(axis=0)).max() < 1e-3 * np.abs(born).max()
    assert np.allclose(alpha, alpha.T, atol=1e-4 * np.abs(alpha).max())

    def energy(positions=None, f=field):
        probe = atoms.copy()
        if positions is not None:
            probe.positions = positions
        return float(calc.evaluate(probe, field=f)["energy"])

    # forces: central differences of E (float32 energies: steps of 0.01 A)
    h = 1e-2
    forces = res["forces"]
    for i, b in [(0, 0), (len(atoms) - 1, 2), (2, 1)]:
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[i, b] += h
        minus[i, b] -= h
        fd = -(energy(plus) - energy(minus)) / (2 * h)
        assert fd == pytest.approx(forces[i, b], abs=0.02 + 0.02 * abs(forces[i, b])), (
            i,
            b,
        )
    # P = -dE/dE (field steps of 0.01 V/A)
    hf = 1e-2
    for a in range(3):
        step = np.zeros(3)
        step[a] = hf
        fd = -(energy(f=field + step) - energy(f=field - step)) / (2 * hf)
        assert fd == pytest.approx(pol[a], abs=0.01 + 0.01 * np.abs(pol).max()), a
    # Z*_i,ab = dP_a/dR_ib and alpha_ab = dP_a/dE_b: differences of P itself
    for i, b in [(0, 2), (1, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, b] += 1e-3
        minus.positions[i, b] -= 1e-3
        fd = (
            calc.evaluate(plus, field=field)["polarization"]
            - calc.evaluate(minus, field=field)["polarization"]
        ) / 2e-3
        assert np.allclose(
            fd, born[i, :, b], atol=0.01 + 0.01 * np.abs(born[i]).max()
        ), (i, b)
    for b in range(3):
        step = np.zeros(3)
        step[b] = hf
        fd = (
            calc.evaluate(atoms, field=field + step)["polarization"]
            - calc.evaluate(atoms, field=field - step)["polarization"]
        ) / (2 * hf)
        assert np.allclose(fd, alpha[:, b], atol=0.01 * np.abs(alpha).max()), b


def _nearest_branch(reference, predicted, cell):
    """The reference cell dipole moved by the lattice vector e*R that brings it closest to the prediction."""
    frac = np.linalg.solve(cell.T, reference - predicted)
    return predicted + (frac - np.round(frac)) @ cell


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED_MODELS))
def test_shipped_model_card_errors(name):
    calc = _calculator(name)
    card = json.loads(
        shipped.model_path(name).with_suffix("").with_suffix(".json").read_text()
    )
    # every file of the card's dataset, in reading order (older cards name one file)
    data_files = [
        shared_data_dir() / f for f in card["data"].get("files", [card["data"]["file"]])
    ]
    for data_file in data_files:
        if not data_file.exists():
            pytest.skip(
                f"shared DFT data not found at {data_file} (set {DATA_ENV_VAR})"
            )
    import ase.io

    frames = [atoms for f in data_files for atoms in ase.io.read(f, ":")]
    assert len(frames) == card["data"]["frames"], (
        "the shared data file changed since the model was tested"
    )
    sq = {k: [] for k in ("E", "F", "stress", "P", "Z*", "alpha")}
    for index in card["split"]["test_indices"]:
        frame = frames[index]
        ref = frame.calc.results
        res = calc.evaluate(frame, field=np.zeros(3))
        n = len(frame)
        sq["E"].append(
            ((res["energy"] - frame.info.get("total_energy", ref.get("energy"))) / n)
            ** 2
        )
        sq["F"].append(
            (res["forces"] - frame.arrays.get("forces", ref.get("forces"))).ravel() ** 2
        )
        from ase.stress import voigt_6_to_full_3x3_stress

        ref_stress = np.asarray(
            frame.info["stress"] if "stress" in frame.info else ref["stress"]
        )
        ref_stress = (
            voigt_6_to_full_3x3_stress(ref_stress)
            if ref_stress.size == 6
            else ref_stress.reshape(3, 3)
        )
        pred_stress = (
            voigt_6_to_full_3x3_stress(res["stress"])
            if np.size(res["stress"]) == 6
            else res["stress"]
        )
        sq["stress"].append((pred_stress - ref_stress).ravel() ** 2)
        ref_pol = np.asarray(
            frame.info["polarization"]
            if "polarization" in frame.info
            else ref["polarization"]
        )
        pol = res["polarization"]
        sq["P"].append((pol - _nearest_branch(ref_pol, pol, frame.cell.array)) ** 2)
        sq["Z*"].append(
            (
                res["born_effective_charges"]
                - frame.arrays["born_charge"].reshape(n, 3, 3)
            ).ravel()
            ** 2
        )
        sq["alpha"].append(
            (
                res["polarizability"] - np.reshape(frame.info["polarizability"], (3, 3))
            ).ravel()
            ** 2
        )
    rmse = {
        k: float(np.sqrt(np.mean(np.concatenate([np.atleast_1d(x) for x in v]))))
        for k, v in sq.items()
    }
    for key, value in card["test_rmse"].items():
        assert rmse[key] == pytest.approx(value, rel=0.01), (key, rmse[key], value)


def test_names_resolve_and_bad_names_are_named(tmp_path):
    assert shipped.is_shipped_name("SiO2") and shipped.is_shipped_name("batio3")
    assert not shipped.is_shipped_name("model.nequip.zip")
    path = str(tmp_path / "my.nequip.zip")
    assert shipped.resolve(path) == path  # anything else is a file path, kept
    with pytest.raises(ValueError, match="no shipped model named 'quartz'.*sio2"):
        shipped.model_path("quartz")
    for name in shipped.available():
        assert shipped.resolve(name.upper()) == str(shipped.model_path(name))
        assert shipped.card_path(name).exists(), f"{name}: the model card is missing"
        assert "test RMSE" in shipped.describe(name)
    # a fine-tune's one line states what all its stages cost, as its card does (batio3: the
    # 13.0 CPU h long run and two fine-tunes, "14.2 CPU hours in all")
    assert "14.2 CPU h in all" in shipped.describe("batio3")
    assert "**14.2 CPU hours** in all" in shipped.card_path("batio3").read_text()


def _centrosymmetric_perovskite():
    """Ideal BaTiO3 (P4/mmm) in the cell of the shared data (3x3x3, a = 11.898/3, c = 12.912/3)."""
    from ase import Atoms

    a, c = 11.898253856589696 / 3, 12.912076929577747 / 3
    return Atoms(
        "BaTiO3",
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
        cell=[a, a, c],
        pbc=True,
    ).repeat(3)  # fmt: skip


def test_shipped_batio3_respects_inversion():
    """The centrosymmetric cell gets 0 or 1/2 of a polarization quantum along each lattice
    vector (2P = 0 modulo e*R), and a polar structure and its inverted image get opposite P
    modulo the quantum (issue 39: the earlier batio3 gave its centrosymmetric cell 0.151)."""
    calc = _calculator("batio3")
    atoms = _centrosymmetric_perovskite()
    cell = atoms.cell.array
    p = calc.evaluate(atoms, field=np.zeros(3))["polarization"]
    fractional = np.linalg.solve(cell.T, p)
    assert np.allclose(2 * fractional, np.round(2 * fractional), atol=1e-3), fractional
    polar = atoms.copy()
    polar.positions[polar.numbers == 22, 2] += 0.12  # Ti off-centre along c
    polar.rattle(0.03, seed=1)
    inverted = polar.copy()
    inverted.positions = -polar.positions
    total = np.linalg.solve(
        cell.T,
        calc.evaluate(polar, field=np.zeros(3))["polarization"]
        + calc.evaluate(inverted, field=np.zeros(3))["polarization"],
    )
    assert np.allclose(total, np.round(total), atol=1e-3), total
