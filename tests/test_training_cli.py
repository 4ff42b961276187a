"""The training workflow's verbs (``nequip-pol train-long``, ``save-run``, ``frame-errors``,
``ship``): bad input is answered with one line and exit status 2 before any training, the
configs folder is found in the checkout or named as missing. The training itself:
``tests/test_resume.py``."""

from pathlib import Path

import pytest

from nequip_pol.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train-long", "--chunks", "1"], "give the output folder OUT"),
        (["train-long", "OUT"], "give --chunks, --cpu-hours or --wall-seconds"),
        (
            ["train-long", "--plot", "curve.png"],
            "--plot needs learning_curve.csv files",
        ),
        (["ship", "RUN", "--name", "quartz"], "--name must be one of"),
        (
            ["ship", "RUN", "--name", "batio3", "--earlier-cpu-hours", "-1"],
            "--earlier-cpu-hours must be a number >= 0",
        ),
        (["save-run", "RUN", "DEST"], "is not a learning-curve run"),
    ],
)
def test_verbs_refuse_bad_input(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nequip-pol {argv[0]}: error: ") and message in err, err
    assert not any(tmp_path.iterdir())  # nothing written


def test_train_long_checks_its_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    # options and overrides mixed as the script took them (parse_intermixed_args)
    argv = ["train-long", str(out), "--chunks", "1", "batch_size=2", "--resume"]
    assert main(argv + ["lr_total_epochs=4"]) == 2
    assert "nothing to resume in" in capsys.readouterr().err
    assert main(["train-long", str(ROOT / "scratch_run"), "--chunks", "1"]) == 2
    assert "inside the repository" in capsys.readouterr().err
    assert not (ROOT / "scratch_run").exists()
    bad = ["train-long", str(out), "--chunks", "1", "--config-dir", str(tmp_path)]
    assert main(bad) == 2
    assert "no dft.yaml in it" in capsys.readouterr().err
    assert not out.exists()


def test_frame_errors_refuses_an_existing_csv(tmp_path, capsys):
    existing = tmp_path / "rows.csv"
    existing.write_text("keep")
    argv = ["frame-errors", "sio2", "--dataset", "SiO2", "--csv", str(existing)]
    assert main(argv) == 2
    assert "exists: choose another name" in capsys.readouterr().err
    assert existing.read_text() == "keep"


def test_configs_and_models_folder_outside_a_checkout(monkeypatch):
    """Installed from a wheel there is no checkout: the verbs ask for --config-dir, and ship
    (which writes into the checkout) refuses."""
    from nequip_pol.train import checkout, ship

    assert checkout.config_dir() == ROOT / "configs"
    monkeypatch.setattr(checkout, "checkout_root", lambda: None)
    monkeypatch.setattr(ship, "checkout_root", lambda: None)
    with pytest.raises(checkout.TrainingToolError, match="--config-dir"):
        checkout.config_dir()
    assert checkout.config_dir(ROOT / "configs") == ROOT / "configs"
    with pytest.raises(checkout.TrainingToolError, match="checkout"):
        ship.models_dir()
    with pytest.raises(checkout.TrainingToolError, match="choose from"):
        checkout.read_dataset_config("Quartz", ROOT / "configs")
