"""Dataset checker: real files and synthetic files with deliberate defects."""

import numpy as np
import pytest

from nequip_pol.cli import main as cli_main
from nequip_pol.io.check_data import check_dataset


@pytest.fixture(scope="module")
def real_reports(shared_data):
    return {
        s: check_dataset(shared_data / "dft" / f"{s}.xyz") for s in ("BaTiO3", "SiO2")
    }


def test_real_files(real_reports):
    bto, sio2 = real_reports["BaTiO3"], real_reports["SiO2"]
    for rep in (bto, sio2):
        assert rep.ok, rep.errors
        assert not rep.missing
        for k in (
            "total_energy",
            "forces",
            "stress",
            "polarization",
            "born_effective_charges",
            "polarizability",
        ):
            assert (
                rep.keys[k] == rep.n_frames
            )  # born_charge accepted as born_effective_charges
        assert rep.asr_max < 1e-6  # the stored Born charges obey the acoustic sum rule
        assert rep.p_offset_frac.shape == (3,)
        text = str(rep)
        assert "status: OK" in text and "acoustic sum rule" in text
    assert bto.n_frames == 59 and bto.n_atoms == (135, 135)
    assert set(bto.species) == {"Ba", "Ti", "O"} and bto.species["O"] == 81 * 59
    assert sio2.n_frames == 160 and set(sio2.species) == {"Si", "O"}
    # the finite-difference polarizabilities are slightly asymmetric (BaTiO3 worst: 0.115 e*A^2/V)
    assert 0.05 < bto.alpha_asym_max < 0.2
    assert sio2.alpha_asym_max < 1e-3


def _frames(n=3, nan=False, asr_break=0.0, p_frac=None, seed=0):
    from ase import Atoms

    rng = np.random.default_rng(seed)
    cell = np.diag([4.0, 5.0, 6.0])
    out = []
    for k in range(n):
        a = Atoms("NaCl", positions=[[0, 0, 0], [2.0, 2.5, 3.0]], cell=cell, pbc=True)
        z = np.stack([np.eye(3), -np.eye(3)]) * 1.1
        z[0, 0, 1] += asr_break
        a.arrays["forces"] = rng.normal(size=(2, 3))
        a.arrays["born_charge"] = z.reshape(2, 9)
        a.info["total_energy"] = -10.0 + k
        a.info["stress"] = np.zeros(9)
        frac = np.asarray(
            p_frac if p_frac is not None else [0.1, 0.0, -0.1]
        ) + rng.normal(scale=0.01, size=3)
        a.info["polarization"] = cell.T @ (
            frac + rng.integers(-3, 4, size=3)
        )  # random branch per frame
        alpha = np.diag([1.0, 2.0, 3.0])
        alpha[0, 1] = 0.01
        a.info["polarizability"] = alpha.reshape(9)
        if nan and k == 1:
            a.arrays["forces"][1, 2] = np.nan
        out.append(a)
    return out


def _write(path, frames):
    import ase.io

    ase.io.write(path, frames, format="extxyz")
    return path


def test_synthetic_nan_is_hard_error(tmp_path):
    path = _write(tmp_path / "nan.xyz", _frames(nan=True))
    rep = check_dataset(path)
    assert not rep.ok
    assert any("forces" in e and "NaN" in e for e in rep.errors)
    assert "status: FAILED" in str(rep)
    assert cli_main(["check-data", str(path)]) == 1


def test_synthetic_broken_sum_rule_and_asymmetry(tmp_path):
    path = _write(tmp_path / "asr.xyz", _frames(asr_break=0.3))
    rep = check_dataset(path)
    assert rep.ok  # a violated sum rule is reported, not a hard error
    assert rep.asr_max == pytest.approx(0.3, abs=1e-9)
    assert rep.alpha_asym_max == pytest.approx(0.01, abs=1e-12)
    # P is folded to a common branch although every frame was written on a random branch
    assert rep.p_consistent
    np.testing.assert_allclose(rep.p_offset_frac, [0.1, 0.0, -0.1], atol=0.02)
    assert rep.p_spread_frac.max() < 0.05


def test_synthetic_half_quantum_offset(tmp_path):
    path = _write(tmp_path / "half.xyz", _frames(n=6, p_frac=[0.5, 0.0, 0.0]))
    rep = check_dataset(path)
    assert rep.p_consistent
    assert (
        abs(abs(rep.p_offset_frac[0]) - 0.5) < 0.02
    )  # straddles +-1/2 but is one cluster
    assert rep.p_spread_frac.max() < 0.05
    assert "half a quantum along a1" in str(rep)


def test_synthetic_bad_shape_missing_key_and_unreadable(tmp_path):
    frames = _frames()
    frames[0].info["polarizability"] = np.ones(4)
    del frames[2].info["stress"]
    rep = check_dataset(_write(tmp_path / "shape.xyz", frames))
    assert not rep.ok
    assert any("polarizability has shape (4,)" in e for e in rep.errors)
    assert rep.missing == {"stress": 1}
    bad = tmp_path / "garbage.xyz"
    bad.write_text("this is not\nan xyz file\n")
    rep = check_dataset(bad)
    assert not rep.ok and "unreadable" in rep.errors[0] and str(bad) in rep.errors[0]
    rep = check_dataset(tmp_path / "absent.xyz")
    assert not rep.ok and "no such file" in rep.errors[0]
    # a missing file gives the error alone, not a report of empty fields
    assert "n/a" not in str(rep) and "frames:" not in str(rep)


def test_key_mapping(tmp_path):
    frames = _frames()
    for a in frames:
        a.arrays["my_bec"] = a.arrays.pop("born_charge")
    path = _write(tmp_path / "mapped.xyz", frames)
    assert "born_effective_charges" not in check_dataset(path).keys
    rep = check_dataset(path, key_mapping={"my_bec": "born_effective_charges"})
    assert rep.keys["born_effective_charges"] == 3 and rep.asr_max < 1e-12
    assert (
        cli_main(
            ["check-data", str(path), "--key-map", "my_bec=born_effective_charges"]
        )
        == 0
    )


def test_labels_a_config_needs(tmp_path):
    """A dataset without forces is NOT READY for a config whose loss uses them (issue 43 item 3):
    labels grouped by presence, the status names what is missing."""
    from pathlib import Path

    from nequip_pol.io.check_data import loss_labels

    dft = Path(__file__).resolve().parent.parent / "configs" / "dft.yaml"
    needed = loss_labels(dft)
    assert set(needed) == {
        "total_energy",
        "forces",
        "stress",
        "polarization",
        "born_effective_charges",
        "polarizability",
    }
    frames = _frames()
    for atoms in frames:
        del atoms.arrays["forces"]
    del frames[1].info["stress"]
    path = _write(tmp_path / "no_forces.xyz", frames)
    rep = check_dataset(path, needed=needed)
    assert rep.ok and rep.status == "NOT READY"
    assert rep.not_ready == {"forces": len(frames), "stress": 1}
    text = str(rep)
    assert "no frames: forces" in text and "stress (2)" in text
    assert "status: NOT READY to train: the loss needs forces" in text
    # without a config the report stays a report of the data
    assert check_dataset(path).status == "OK"
    # a loss without the missing labels is ready
    ready = loss_labels(
        {"training_module": {"loss": {"coeffs": {"total_energy": 1.0, "forces": 0.0}}}}
    )
    assert ready == ("total_energy",)
    assert check_dataset(path, needed=ready).status == "OK"


def test_check_data_verb_exit_status_for_a_dataset_without_forces(tmp_path, capsys):
    """Exit 3 and NOT READY for a dataset the config cannot train on; 0 for one whose loss
    does not use the missing label; the default is the DFT recipe's loss."""
    from pathlib import Path

    from nequip_pol.io.check_data import DFT_RECIPE_LABELS, loss_labels

    dft = Path(__file__).resolve().parent.parent / "configs" / "dft.yaml"
    assert set(DFT_RECIPE_LABELS) == set(loss_labels(dft))
    frames = _frames()
    for atoms in frames:
        del atoms.arrays["forces"]
    path = _write(tmp_path / "no_forces.xyz", frames)
    assert cli_main(["check-data", str(path)]) == 3
    assert "status: NOT READY" in capsys.readouterr().out
    assert cli_main(["check-data", str(path), "--config", str(dft)]) == 3
    energy_only = tmp_path / "energy_only.yaml"
    energy_only.write_text(
        "training_module:\n  loss:\n    coeffs:\n      total_energy: 1.0\n"
    )
    assert cli_main(["check-data", str(path), "--config", str(energy_only)]) == 0
    assert "status: OK" in capsys.readouterr().out
    no_loss = tmp_path / "no_loss.yaml"
    no_loss.write_text("seed: 1\n")
    assert cli_main(["check-data", str(path), "--config", str(no_loss)]) == 2
    assert "no training_module.loss.coeffs" in capsys.readouterr().err
