"""P labels moved to one consistent branch (align_to_reference, align-branches), and the loss that
compares them as labelled (polarization_branch: labels)."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from nequip.data import AtomicDataDict

from nequip_pol import POLARIZATION_KEY
from nequip_pol.data import NearestBranchPolarization
from nequip_pol.data.branch import align_to_reference
from nequip_pol.data.branch_alignment import align_frames, polarization_label
from nequip_pol.train import ElectricResponseLoss

SKEWED = torch.tensor(
    [[[5.0, 0.0, 0.0], [2.0, 4.0, 0.0], [1.0, -1.5, 6.0]]], dtype=torch.float64
)


def test_align_to_reference_recovers_the_reference_branch():
    """Labels on random branches come back to the branch of a reference that is near them
    (a few hundredths of a quantum), by exactly the quanta that moved them away."""
    rng = np.random.default_rng(0)
    cell = SKEWED.expand(50, 3, 3)
    true = torch.as_tensor(rng.normal(scale=6.0, size=(50, 3)))
    shift = torch.as_tensor(rng.integers(-4, 5, size=(50, 3)).astype(float))
    labels = true + torch.einsum("na,nab->nb", shift, cell)
    noise = torch.as_tensor(rng.uniform(-0.04, 0.04, size=(50, 3)))
    reference = true + torch.einsum("na,nab->nb", noise, cell)
    aligned, quanta, residual = align_to_reference(
        labels, reference, cell, torch.ones(50, dtype=torch.bool)
    )
    torch.testing.assert_close(aligned, true, atol=1e-10, rtol=0)
    torch.testing.assert_close(quanta, -shift, atol=0, rtol=0)
    torch.testing.assert_close(residual, noise, atol=1e-10, rtol=0)


def test_non_periodic_labels_stay():
    labels = torch.tensor([[9.0, 0.0, 0.0]], dtype=torch.float64)
    aligned, quanta, residual = align_to_reference(
        labels, torch.zeros(1, 3, dtype=torch.float64), SKEWED, torch.tensor([False])
    )
    torch.testing.assert_close(aligned, labels)
    assert not quanta.any() and not residual.any()


def _pair(p_pred, p_ref):
    common = {
        AtomicDataDict.CELL_KEY: SKEWED,
        AtomicDataDict.PBC_KEY: torch.full((1, 3), True),
        AtomicDataDict.NUM_NODES_KEY: torch.full((1,), 4),
        AtomicDataDict.POSITIONS_KEY: torch.zeros((4, 3), dtype=torch.float64),
    }
    return {**common, POLARIZATION_KEY: p_pred}, {**common, POLARIZATION_KEY: p_ref}


def test_loss_as_labelled_sees_the_quantum_the_nearest_loss_ignores():
    """A prediction one lattice vector c from its label: no error on the nearest branch, |c|^2
    per frame (summed over the 3 components, /3 for the mean) as labelled."""
    p = torch.tensor([[0.3, -1.2, 0.7]], dtype=torch.float64)
    pred, ref = _pair(p + SKEWED[0, 2], p)
    coeffs = {POLARIZATION_KEY: 1.0}
    nearest = ElectricResponseLoss(coeffs=coeffs)(pred, ref)["weighted_sum"]
    labels = ElectricResponseLoss(coeffs=coeffs, polarization_branch="labels")(
        pred, ref
    )["weighted_sum"]
    assert float(nearest) == pytest.approx(0.0, abs=1e-20)
    assert float(labels) == pytest.approx(float(SKEWED[0, 2] @ SKEWED[0, 2]) / 3)


def test_unknown_branch_mode_is_refused():
    with pytest.raises(ValueError, match="choose from"):
        NearestBranchPolarization(branch="closest")


def _frame(p_label, rng):
    atoms = Atoms(
        "BaTiO3",
        scaled_positions=[
            (0, 0, 0),
            (0.5, 0.5, 0.52),
            (0.5, 0.5, 0),
            (0.5, 0, 0.5),
            (0, 0.5, 0.5),
        ],
        cell=[3.97, 3.97, 4.30],
        pbc=True,
    )
    atoms.positions += rng.normal(scale=0.02, size=(5, 3))
    atoms.calc = SinglePointCalculator(
        atoms, forces=rng.normal(size=(5, 3)), polarization=np.asarray(p_label)
    )
    atoms.info["total_energy"] = -1.5
    atoms.arrays["born_charge"] = rng.normal(size=(5, 9))
    return atoms


def test_align_frames_moves_only_the_label(tmp_path):
    """Through the extended-XYZ writer and back: P moved by the whole quanta, every other key
    as it was."""
    from nequip_pol.io.qe import write_frames

    rng = np.random.default_rng(1)
    true = [np.array([0.1, -0.2, 2.0]), np.array([-0.3, 0.2, -1.8])]
    frames = [
        _frame(t + np.array([1, -2, 3]) @ np.diag([3.97, 3.97, 4.30]), rng)
        for t in true
    ]
    source = tmp_path / "in.xyz"
    write(source, frames, format="extxyz")
    frames = read(source, ":")
    moves = align_frames(frames, _by_frame(frames, true))
    assert [m.quanta.tolist() for m in moves] == [[-1, 2, -3], [-1, 2, -3]]
    write_frames(frames, tmp_path / "out.xyz")
    before, after = read(source, ":"), read(tmp_path / "out.xyz", ":")
    for b, a, t in zip(before, after, true):
        np.testing.assert_allclose(polarization_label(a), t, atol=1e-8)
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-7)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-7)
        np.testing.assert_allclose(
            a.arrays["born_charge"], b.arrays["born_charge"], atol=1e-7
        )
        assert a.info["total_energy"] == b.info["total_energy"]


def _by_frame(frames, values):
    """A reference that gives each frame its value (align_frames passes the frames themselves)."""
    lookup = {id(f): v for f, v in zip(frames, values)}
    return lambda atoms: lookup[id(atoms)]


def test_align_branches_verb_with_the_shipped_model(tmp_path, capsys):
    """Labels = the shipped batio3's own P moved by whole quanta (plus a small misfit): the verb
    moves them back and writes them; a misfit of 0.3 quanta is refused and nothing is written;
    an existing output is not overwritten."""
    from nequip_pol.cli import main as cli_main
    import nequip_pol.models as shipped

    rng = np.random.default_rng(2)
    calc = shipped.load("batio3")
    frames, model_p = [], []
    for _ in range(2):
        atoms = _frame(np.zeros(3), rng).repeat((2, 2, 1))
        atoms.calc = calc
        model_p.append(np.asarray(calc.get_property("polarization", atoms)).copy())
        frames.append(atoms)
    quantum = np.diag(frames[0].cell[:])

    def labelled(misfit):
        out = []
        for atoms, p in zip(frames, model_p):
            copy = atoms.copy()
            label = p + np.array([2, 0, -3]) * quantum + misfit * quantum
            copy.calc = SinglePointCalculator(copy, polarization=label)
            out.append(copy)
        return out

    source = tmp_path / "frames.xyz"
    write(source, labelled(0.02), format="extxyz")
    out_dir = tmp_path / "aligned"
    out_dir.mkdir()
    assert (
        cli_main(["align-branches", "batio3", str(source), "--out-dir", str(out_dir)])
        == 0
    )
    assert "2 frames, 2 moved by whole quanta" in capsys.readouterr().out
    for atoms, p in zip(read(out_dir / "frames.xyz", ":"), model_p):
        np.testing.assert_allclose(
            polarization_label(atoms), p + 0.02 * quantum, atol=1e-5
        )
    # an existing output stays as it is
    again = ["align-branches", "batio3", str(source), "--out-dir", str(out_dir)]
    assert cli_main(again) == 2
    assert "not overwriting" in capsys.readouterr().err
    # a reference that does not fit the labels cannot choose their branch
    far = tmp_path / "far.xyz"
    write(far, labelled(0.3), format="extxyz")
    assert (
        cli_main(["align-branches", "batio3", str(far), "--out-dir", str(out_dir)]) == 2
    )
    assert "nothing written" in capsys.readouterr().err
    assert not (out_dir / "far.xyz").exists()


def test_align_branches_verb_input_errors(tmp_path, capsys):
    from nequip_pol.cli import main as cli_main

    source = tmp_path / "frames.xyz"
    write(source, [_frame(np.zeros(3), np.random.default_rng(3))], format="extxyz")
    cases = [
        (
            ["no-such-model.ckpt", str(source), "--out-dir", str(tmp_path)],
            "model file not found: 'no-such-model.ckpt'",
        ),
        (
            ["batio3", str(tmp_path / "missing.xyz"), "--out-dir", str(tmp_path)],
            "extended-XYZ file not found",
        ),
        (
            ["batio3", str(source), "--out-dir", str(tmp_path / "nope")],
            "no such folder",
        ),
        (
            [
                "batio3",
                str(source),
                "--out-dir",
                str(tmp_path),
                "--max-residual",
                "0.6",
            ],
            "between",
        ),
        (["batio3", str(source), "--out-dir", str(tmp_path)], "overwrite the input"),
    ]
    for args, message in cases:
        assert cli_main(["align-branches", *args]) == 2, args
        assert message in capsys.readouterr().err, args
