"""``init_checkpoint=`` (the model modifier ``initialize_from_checkpoint``): a fine-tune starts
from the weights of a nequip checkpoint or of a packaged model, never from its polarization
offset (the config states that), and a file that does not fit names the problem."""

import copy
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import get_method
from nequip.model import ModelFromPackage
from nequip.model.modify_utils import modify

from nequip_pol import POLARIZATION_KEY
from nequip_pol.models import model_path
from test_response import ALLEGRO_POL, NEQUIP_POL, build, evaluate, perovskite_like

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAMILIES = {"allegro": ALLEGRO_POL, "nequip": NEQUIP_POL}
OFFSET_KEY = "polarization_offset_fractional"


def initialized(model, path):
    return modify(
        model,
        [{"modifier": "initialize_from_checkpoint", "checkpoint_path": str(path)}],
    )


def save_as_checkpoint(model, path):
    """The layout of a nequip training checkpoint: the model's weights under
    ``model.sole_model.``, beside the EMA copy and the rest of the training state."""
    state = {f"model.sole_model.{k}": v for k, v in model.state_dict().items()}
    state.update(
        {f"ema.{k}": torch.zeros_like(v) for k, v in model.state_dict().items()}
    )
    torch.save({"state_dict": state, "epoch": 3}, path)


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_weights_are_copied_but_not_the_offset(family, tmp_path):
    trained = build(
        FAMILIES[family], seed=1, polarization_offset_fractional=[0.5, 0, 0]
    )
    # weights no fresh build has: the copy cannot happen by chance
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_as_checkpoint(trained, tmp_path / "last.ckpt")
    fresh = build(FAMILIES[family], seed=2, polarization_offset_fractional=[0, 0, 0])
    fine_tune = initialized(fresh, tmp_path / "last.ckpt")

    atoms = perovskite_like(seed=3)
    field = [0.0, 0.0, 0.0]
    ours, theirs = evaluate(fine_tune, atoms, field), evaluate(trained, atoms, field)
    for key in ("total_energy", "forces"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-12, atol=1e-12)
    # the offset stays the config's (0), so P differs by the checkpoint's half quantum along a
    half_quantum = 0.5 * torch.as_tensor(atoms.cell.array[0], dtype=torch.float64)
    torch.testing.assert_close(
        theirs[POLARIZATION_KEY].reshape(3) - ours[POLARIZATION_KEY].reshape(3),
        half_quantum,
        rtol=1e-10,
        atol=1e-10,
    )


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    other = copy.deepcopy(ALLEGRO_POL)
    other["num_scalar_features"] = 8
    save_as_checkpoint(build(other), tmp_path / "other.ckpt")
    with pytest.raises(
        ValueError, match="does not fit the model.*architecture settings"
    ):
        initialized(build(ALLEGRO_POL), tmp_path / "other.ckpt")


def test_a_file_that_is_no_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.ckpt is neither a nequip checkpoint"):
        initialized(build(NEQUIP_POL), path)
    with pytest.raises(ValueError, match="could not load the package"):
        initialized(build(NEQUIP_POL), tmp_path / "missing.nequip.zip")


def test_shipped_package_is_a_starting_point():
    """The shipped ``batio3`` (a package, no checkpoint kept) starts a fine-tune: a model built
    from ``configs/model/allegro_pol.yaml`` takes every weight of it, the offset aside."""
    package = model_path("batio3")
    packaged = ModelFromPackage(package_path=str(package))["sole_model"]
    config = yaml.safe_load((CONFIGS / "model" / "allegro_pol.yaml").read_text())[
        "model"
    ]
    # the config's ${...} interpolations: values that are no weights do not matter here
    config.update(
        seed=5,
        model_dtype="float32",
        type_names=["Ba", "Ti", "O"],
        r_max=float(packaged.metadata["r_max"]),
        avg_num_neighbors=30.0,
        per_type_energy_shifts=0.0,
        per_type_energy_scales=1.0,
        polarization_offset_fractional=[0.0, 0.0, 0.0],
    )
    model = get_method(config.pop("_target_"))(**config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model = initialized(model, package)

    theirs = packaged.state_dict()
    changed = 0
    for key, value in model.state_dict().items():
        if key.endswith(OFFSET_KEY):
            torch.testing.assert_close(value, before[key])
            continue
        torch.testing.assert_close(value, theirs[key].to(value.dtype), rtol=0, atol=0)
        changed += not torch.equal(value, before[key])
    assert changed >= len(theirs) // 2
