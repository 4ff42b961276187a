"""The budget-aware learning-rate schedule (nequip_pol.train.WarmupStableDecayLR) and the variants of
the recipe study (benchmarks/recipe_study.py), checked against closed forms and the config."""

import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch

from nequip_pol.train import WarmupStableDecayLR

ROOT = Path(__file__).resolve().parent.parent


def _lrs(scheduler, optimizer, epochs):
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _adam(lr=0.01):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_warmup_cosine_matches_closed_form():
    opt = _adam()
    total, warmup, final = 12, 3, 0.01
    lrs = _lrs(
        WarmupStableDecayLR(
            opt, total_epochs=total, warmup_epochs=warmup, final_lr_factor=final
        ),
        opt,
        total + 2,
    )
    for epoch in range(warmup):
        assert lrs[epoch] == pytest.approx(0.01 * (epoch + 1) / (warmup + 1))
    for epoch in range(warmup, total):
        progress = (epoch - warmup) / (total - 1 - warmup)
        expected = 0.01 * (
            final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
        )
        assert lrs[epoch] == pytest.approx(expected)
    assert lrs[total - 1] == pytest.approx(0.01 * final)
    assert lrs[total:] == pytest.approx([0.01 * final] * 2)  # held after the plan


def test_stable_phase_and_linear_decay():
    opt = _adam()
    lrs = _lrs(
        WarmupStableDecayLR(
            opt,
            total_epochs=10,
            warmup_epochs=0,
            decay_epochs=5,
            shape="linear",
            final_lr_factor=0.0,
        ),
        opt,
        10,
    )
    assert lrs[:6] == pytest.approx(
        [0.01] * 6
    )  # plateau, then the first decay epoch at full lr
    assert lrs[5:] == pytest.approx([0.01, 0.0075, 0.005, 0.0025, 0.0])
    # decay_epochs=0: a constant learning rate
    opt = _adam()
    assert _lrs(
        WarmupStableDecayLR(opt, total_epochs=5, decay_epochs=0), opt, 5
    ) == pytest.approx([0.01] * 5)


def test_decay_fraction():
    """The decay over a fraction of the planned epochs equals the same decay given in epochs;
    decay_epochs, where given, wins; the fraction never eats into the warm-up."""

    def starts(**kwargs):
        return WarmupStableDecayLR(_adam(), **kwargs).decay_start_epoch

    assert starts(total_epochs=60, warmup_epochs=2, decay_fraction=1 / 3) == starts(
        total_epochs=60, warmup_epochs=2, decay_epochs=20
    )
    assert starts(total_epochs=100, decay_fraction=0.3333) == 67
    assert starts(total_epochs=10, decay_epochs=4, decay_fraction=0.5) == 6
    assert starts(total_epochs=3, warmup_epochs=2, decay_fraction=1.0) == 2
    assert starts(total_epochs=2, decay_fraction=0.01) == 1  # at least one epoch


def test_config_default_is_the_recipe():
    """configs/dft.yaml trains with the recipe its comment names: batch 1, peak lr 0.01, warm-up
    2 epochs, a plateau, cosine decay over the last third of max_epochs, Born-charge weight 4
    (chosen by the recipe study), and no final-stage loss weights."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from nequip.utils.resolvers import _register_default_resolvers

    _register_default_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("dft", overrides=["dataset=SiO2", "max_epochs=90"])
    assert (cfg.batch_size, cfg.learning_rate, cfg.decay_stage_loss_scale) == (
        1,
        0.01,
        None,
    )
    assert cfg.training_module.loss.coeffs.born_effective_charges == 4.0
    schedule = OmegaConf.to_container(
        cfg.training_module.lr_scheduler.scheduler, resolve=True
    )
    sched = WarmupStableDecayLR(
        _adam(), **{k: v for k, v in schedule.items() if k != "_target_"}
    )
    assert (sched.total_epochs, sched.warmup_epochs) == (90, 2)
    assert sched.decay_start_epoch == 60


def test_resume_follows_the_new_settings():
    """The checkpointed state is the epoch counter, not the settings: a run resumed with a longer
    plan (or a decay branched off a plateau) follows the new settings from its epoch on."""
    opt = _adam()
    sched = WarmupStableDecayLR(opt, total_epochs=10, warmup_epochs=1, decay_epochs=4)
    _lrs(sched, opt, 6)
    state = sched.state_dict()
    assert "total_epochs" not in state and state["last_epoch"] == 6
    opt2 = _adam()
    longer = WarmupStableDecayLR(opt2, total_epochs=20, warmup_epochs=1, decay_epochs=4)
    longer.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(
        0.01
    )  # epoch 6 of 20: still on the plateau
    reference = WarmupStableDecayLR(
        _adam(), total_epochs=20, warmup_epochs=1, decay_epochs=4
    )
    assert _lrs(longer, opt2, 14) == pytest.approx(
        [0.01 * reference.factor(e) for e in range(6, 20)]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(total_epochs=0),
        dict(total_epochs=5, warmup_epochs=3, decay_epochs=3),
        dict(total_epochs=5, final_lr_factor=2.0),
        dict(total_epochs=5, shape="step"),
        dict(total_epochs=5, decay_fraction=1.5),
        dict(total_epochs=5, decay_fraction=0.0),
    ],
)
def test_bad_settings_are_named(kwargs):
    with pytest.raises(
        ValueError, match="total_epochs|warmup|final_lr_factor|shape|decay_fraction"
    ):
        WarmupStableDecayLR(_adam(), **kwargs)


def test_recipe_study_variants_compose():
    """Every variant of the recipe study is a valid set of overrides of configs/dft.yaml (a
    misspelt key fails here, not after an hour of training), and its schedule resolves for any
    planned length (the probe's 100 epochs and a length that 3 does not divide included)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from nequip.utils.resolvers import _register_default_resolvers

    _register_default_resolvers()
    study = _load_recipe_study()
    assert {"constant", "cosine"} <= set(study.VARIANTS)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        for name, total in itertools.product(study.VARIANTS, (30, 100, 31)):
            overrides = study.variant_overrides(name, total)
            cfg = compose("dft", overrides=["dataset=SiO2", *overrides])
            schedule = OmegaConf.to_container(
                cfg.training_module.lr_scheduler.scheduler, resolve=True
            )
            sched = WarmupStableDecayLR(
                _adam(), **{k: v for k, v in schedule.items() if k != "_target_"}
            )
            assert sched.total_epochs == total, name
            if name == "constant":
                assert [sched.factor(e) for e in range(total)] == [1.0] * total
            if "wsd" in name:
                assert sched.decay_start_epoch == total - total // 3
            (stage,) = [
                c
                for c in cfg.trainer.callbacks
                if c._target_.endswith("DecayStageLossWeights")
            ]
            scale = OmegaConf.to_container(stage, resolve=True)["scale"]
            if name == "wsd_energy_final":
                assert scale == {"total_energy": 10.0}
            else:
                assert scale is None, name
            # the study compares against configs/dft.yaml as it was before it (weight 1); the
            # architecture axis (arch_*) runs the recipe as it is now (weight 4)
            zstar_weight = cfg.training_module.loss.coeffs.born_effective_charges
            weight4 = "zstar_x4" in name or name.startswith("arch_")
            assert zstar_weight == (4.0 if weight4 else 1.0), name


def test_replan_writes_the_schedule_into_the_checkpoint(tmp_path):
    """nequip-train rebuilds a resumed run's training module from the checkpoint, so
    `nequip-pol train-long --resume --replan` must put the new plan there (both copies nequip keeps)."""
    from nequip_pol.train.run_state import set_schedule

    scheduler = {
        "_target_": "nequip_pol.train.WarmupStableDecayLR",
        "total_epochs": 64,
        "warmup_epochs": 2,
        "decay_epochs": 26,
        "final_lr_factor": 0.002,
    }
    state = {
        "hyper_parameters": {
            "lr_scheduler": {"scheduler": dict(scheduler), "interval": "epoch"},
            "info_dict": {
                "training_module": {"lr_scheduler": {"scheduler": dict(scheduler)}}
            },
        },
        "lr_schedulers": [{"last_epoch": 25}],
    }
    path = tmp_path / "resume_from.ckpt"
    torch.save(state, path)
    set_schedule(path, ["batch_size=1", "lr_total_epochs=80", "lr_decay_epochs=null"])
    new = torch.load(path, weights_only=False)
    hyper = new["hyper_parameters"]
    for config in (
        hyper["lr_scheduler"],
        hyper["info_dict"]["training_module"]["lr_scheduler"],
    ):
        assert config["scheduler"]["total_epochs"] == 80
        assert isinstance(config["scheduler"]["total_epochs"], int)
        assert config["scheduler"]["decay_epochs"] is None
        assert config["scheduler"]["warmup_epochs"] == 2
    assert new["lr_schedulers"] == [
        {"last_epoch": 25}
    ]  # the epoch counter is untouched


def _load_recipe_study():
    spec = importlib.util.spec_from_file_location(
        "recipe_study", ROOT / "benchmarks" / "recipe_study.py"
    )
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    return study


def test_recipe_study_report_gives_each_row_its_command(tmp_path, capsys):
    """The report's table has one row per variant with its model family and the command that
    reruns it (from the study's settings), a run stopped early shows `done of planned`, and a study folder refuses a
    second budget instead of mixing two in one table."""
    import csv
    import json
    import subprocess
    import sys

    study = _load_recipe_study()
    out = tmp_path / "SiO2"
    (out / study.STUDY_SETTINGS).parent.mkdir(parents=True)
    (out / study.STUDY_SETTINGS).write_text(
        json.dumps({"dataset": "SiO2", "cpu_hours": 0.2, "points": 3})
    )
    for variant, epochs, planned in (("cosine", 9, 9), ("wide", 2, 6)):
        run = out / variant / "run"
        run.mkdir(parents=True)
        settings = {"dataset": "SiO2", "overrides": [f"lr_total_epochs={planned}"]}
        if variant == "wide":
            settings["model"] = "nequip_pol"  # the family, where the run recorded one
        (run / "learning_curve.json").write_text(json.dumps(settings))
        with open(run / "learning_curve.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["chunk", "epochs", "cpu_hours", "forces_rmse_meV_A", "command"]
            )
            writer.writerow(
                [1, epochs, 0.1, 300.0, f"python learning_curve.py {variant}"]
            )
    table = tmp_path / "table.md"
    study.report([out], table, None)
    rows = [
        line for line in table.read_text().splitlines() if line.startswith("| SiO2")
    ]
    assert len(rows) == 2
    assert rows[0].endswith(
        "| `python benchmarks/recipe_study.py OUT --dataset SiO2 --cpu-hours 0.2 "
        "--points 3 --variants cosine` |"
    )
    assert "| 2 of 6 |" in rows[1] and "--variants wide`" in rows[1]
    assert rows[1].startswith("| SiO2 | nequip_pol | wide |")
    assert "--dataset SiO2 --model nequip_pol --cpu-hours" in rows[1]
    assert "python learning_curve.py wide" in table.read_text()
    capsys.readouterr()

    second_budget = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "recipe_study.py", out, "--resume"]
        + [
            "--dataset",
            "SiO2",
            "--cpu-hours",
            "0.5",
            "--points",
            "3",
            "--variants",
            "wide",
        ],
        capture_output=True,
        text=True,
    )
    assert second_budget.returncode != 0
    assert "one budget per study folder" in second_budget.stderr


def _decay_stage_setup(scale, coeffs=None):
    from types import SimpleNamespace

    from nequip_pol.train import DecayStageLossWeights, ElectricResponseLoss

    opt = _adam()
    sched = WarmupStableDecayLR(opt, total_epochs=9, warmup_epochs=1, decay_epochs=3)
    trainer = SimpleNamespace(
        lr_scheduler_configs=[SimpleNamespace(scheduler=sched)], current_epoch=0
    )
    coeffs = coeffs or {"total_energy": 10.0, "forces": 1.0, "polarization": 1.0}
    module = SimpleNamespace(loss=ElectricResponseLoss(coeffs=coeffs))
    return DecayStageLossWeights(scale), trainer, module


def _weights(module):
    return {name: entry.coeff for name, entry in module.loss.entries.items()}


def test_decay_stage_loss_weights_scale_once_where_the_decay_starts():
    """The energy weight is multiplied by 10 relative to the others exactly at the epoch where
    WarmupStableDecayLR starts its decay (epoch 6 of 9 here), once; the weights stay normalized
    as nequip keeps them; the callback's state tells a resumed run it was done."""
    callback, trainer, module = _decay_stage_setup({"total_energy": 10.0})
    before = _weights(module)
    assert before["per_atom_energy_mse"] / before["forces_mse"] == pytest.approx(10.0)
    for epoch in range(6):
        trainer.current_epoch = epoch
        callback.on_train_epoch_start(trainer, module)
        assert _weights(module) == before, epoch
    for epoch in (6, 7, 8):
        trainer.current_epoch = epoch
        callback.on_train_epoch_start(trainer, module)
        after = _weights(module)
        assert after["per_atom_energy_mse"] / after["forces_mse"] == pytest.approx(
            100.0
        )
        assert after["polarization_mse"] / after["forces_mse"] == pytest.approx(1.0)
        assert sum(after.values()) == pytest.approx(1.0)

    # a resumed run: the loss weights come from the checkpoint, the callback's state says "done"
    resumed, trainer2, module2 = _decay_stage_setup({"total_energy": 10.0})
    module2.loss.set_coeffs(after)
    resumed.load_state_dict(callback.state_dict())
    trainer2.current_epoch = 7
    resumed.on_train_epoch_start(trainer2, module2)
    assert _weights(module2) == pytest.approx(after)

    # the metric name works as well as the coeffs key
    by_metric, trainer3, module3 = _decay_stage_setup({"per_atom_energy_mse": 10.0})
    trainer3.current_epoch = 6
    by_metric.on_train_epoch_start(trainer3, module3)
    assert _weights(module3) == pytest.approx(after)


def test_decay_stage_loss_weights_bad_input_is_named():
    from types import SimpleNamespace

    from nequip_pol.train import DecayStageLossWeights

    with pytest.raises(ValueError, match="positive"):
        DecayStageLossWeights({"forces": 0.0})
    callback, trainer, module = _decay_stage_setup({"stress": 2.0})
    trainer.current_epoch = 6
    with pytest.raises(ValueError, match="no loss term 'stress'"):
        callback.on_train_epoch_start(trainer, module)
    callback, trainer, module = _decay_stage_setup({"forces": 2.0})
    trainer.lr_scheduler_configs = [
        SimpleNamespace(scheduler=torch.optim.lr_scheduler.StepLR(_adam(), 5))
    ]
    with pytest.raises(RuntimeError, match="WarmupStableDecayLR"):
        callback.on_train_epoch_start(trainer, module)
    # no scale (the config's default): nothing to do, whatever the scheduler
    DecayStageLossWeights(None).on_train_epoch_start(trainer, module)
