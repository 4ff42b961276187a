"""Making existing (stock) NequIP and Allegro energy models field-aware: ``FieldAwareModel``.

A stock Allegro and a stock NequIP model (tiny, float64) are first trained here on energies and
forces of the analytic reference material, then made field-aware with the frozen option:

- zero-field energy, forces and stress equal the original model's (1e-10 relative) before and
  after training the field part on P, Z*, alpha, and the original weights do not move;
- P, Z*, alpha of the result pass the finite-difference and symmetry checks of the native models;
- ``AllegroPolModel`` / ``NequIPPolModel`` are the same transformation (their weights load into
  ``FieldAwareModel(stock)`` and give the same outputs);
- through ``nequip-train`` (``configs/fine_tune``) from a checkpoint: the same equality, the
  optimizer state holds only the field parameters, the reloaded model is still frozen;
- bad input gives errors that name the problem.

Opt-in (``-m slow``): from a package, repackaged, compiled with AOTInductor (``nequip_pol_ase``).
"""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
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
from nequip_pol.model import FieldAwareModel, FieldAwareParamGroups
from nequip_pol.model.field_aware import FIELD_SETTINGS
from nequip_pol.reference import generate_dataset, write_dataset, read_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "fine_tune"
TYPE_NAMES = ["Ba", "Ti", "O"]
R_MAX = 5.0
FIELD = [0.08, -0.05, 0.12]
E, F, S = (
    AtomicDataDict.TOTAL_ENERGY_KEY,
    AtomicDataDict.FORCE_KEY,
    AtomicDataDict.STRESS_KEY,
)

COMMON = dict(
    seed=7,
    model_dtype="float64",
    type_names=TYPE_NAMES,
    r_max=R_MAX,
    avg_num_neighbors=30.0,
    per_type_energy_shifts={"Ba": -4.0, "Ti": -6.0, "O": -1.0},
)
STOCK = {
    "allegro": dict(
        _target_="allegro.model.AllegroModel",
        **COMMON,
        l_max=1,
        num_layers=1,
        num_scalar_features=8,
        num_tensor_features=4,
        radial_chemical_embed={
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": 8,
        },
        allegro_mlp_hidden_layers_depth=1,
        allegro_mlp_hidden_layers_width=8,
        readout_mlp_hidden_layers_depth=1,
        readout_mlp_hidden_layers_width=8,
    ),
    "nequip": dict(
        _target_="nequip.model.NequIPGNNModel",
        **COMMON,
        l_max=1,
        num_layers=2,
        num_features=4,
        radial_mlp_depth=1,
        radial_mlp_width=8,
    ),
}
NATIVE = {
    "allegro": "nequip_pol.model.AllegroPolModel",
    "nequip": "nequip_pol.model.NequIPPolModel",
}
FIELD_ARGS = dict(field_mlp_hidden_layers_width=8, avg_num_neighbors=30.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(config):
    config = copy.deepcopy(config)
    return get_method(config.pop("_target_"))(**config)


def to_data(atoms, field=None):
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(TYPE_NAMES)(data)
    data = NeighborListTransform(r_max=R_MAX)(data)
    if field is not None:
        data[ELECTRIC_FIELD_KEY] = torch.as_tensor(
            np.reshape(field, (1, 3)), dtype=torch.float64
        )
    return data


def batch_of(frames, fields=None):
    fields = [None] * len(frames) if fields is None else fields
    return AtomicDataDict.batched_from_list(
        [to_data(a, f) for a, f in zip(frames, fields)]
    )


def run(model, data):
    return model({k: v.clone() for k, v in data.items()})


def detached(out):
    return {k: v.detach() for k, v in out.items() if isinstance(v, torch.Tensor)}


def assert_relative(a, b, rtol=1e-10, what=""):
    scale = b.abs().max().clamp_min(1e-300)
    err = ((a - b).abs().max() / scale).item()
    assert err < rtol, f"{what}: relative difference {err:.2e}"


# ---------------------------------------------------------------- data and the stock models
@pytest.fixture(scope="module")
def frames():
    """Analytic material, 2x1x1 perovskite cells (10 atoms): zero-field E/F frames, frames with
    all labels under random fields, and held-out frames."""
    cell = (2, 1, 1)
    return {
        "ef": generate_dataset(8, seed=21, supercell=cell, field_fraction=0.0),
        "response": generate_dataset(4, seed=22, supercell=cell, field_fraction=1.0),
        "test": generate_dataset(3, seed=23, supercell=cell, field_fraction=0.0),
    }


def train(model, batch, loss_fn, steps, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(run(model, batch))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def ef_loss(batch, frames):
    n = torch.tensor([len(a) for a in frames], dtype=torch.float64).view(-1, 1)
    energy = torch.tensor(
        [[a.info["total_energy"]] for a in frames], dtype=torch.float64
    )
    forces = torch.as_tensor(np.concatenate([a.arrays["forces"] for a in frames]))

    def loss(out):
        return ((out[E] - energy) / n).square().mean() * 100 + (
            out[F] - forces
        ).square().mean()

    return loss


def response_loss(frames):
    p = torch.as_tensor(np.array([a.info["polarization_exact"] for a in frames]))
    born = torch.as_tensor(
        np.concatenate([a.arrays["born_effective_charges"] for a in frames])
    ).view(-1, 3, 3)
    alpha = torch.as_tensor(np.array([a.info["polarizability"] for a in frames]))

    def loss(out):
        return (
            (out[POLARIZATION_KEY] - p).square().mean()
            + (out[BORN_CHARGE_KEY] - born).square().mean()
            + (out[POLARIZABILITY_KEY] - alpha).square().mean()
        )

    return loss


@pytest.fixture(scope="module", params=["allegro", "nequip"])
def fine_tuned(request, frames):
    """(stock model trained on E/F, field-aware copy before training, after training the field part)."""
    stock = build(STOCK[request.param])
    ef = frames["ef"]
    ef_losses = train(stock, batch_of(ef), ef_loss(batch_of(ef), ef), steps=15, lr=0.01)
    assert ef_losses[-1] < ef_losses[0]  # the stock model did train on E/F
    before = FieldAwareModel(
        model=stock, seed=3, freeze_energy_model=True, **FIELD_ARGS
    ).eval()
    after = copy.deepcopy(before)
    response = frames["response"]
    fields = [a.info["electric_field"] for a in response]
    losses = train(
        after, batch_of(response, fields), response_loss(response), steps=20, lr=0.02
    )
    return dict(
        family=request.param, stock=stock, before=before, after=after, losses=losses
    )


# ---------------------------------------------------------------- frozen: zero field unchanged
def test_zero_field_outputs_equal_the_original_model(fine_tuned, frames):
    batch = batch_of(frames["test"])
    reference = detached(run(fine_tuned["stock"], batch))
    for stage in ("before", "after"):
        for field in (None, [[0.0, 0.0, 0.0]] * 3):
            data = dict(batch)
            if field is not None:
                data[ELECTRIC_FIELD_KEY] = torch.tensor(field, dtype=torch.float64)
            out = detached(run(fine_tuned[stage], data))
            for key in (E, F, S):
                assert_relative(
                    out[key], reference[key], 1e-10, f"{stage} training, {key}"
                )
    # ... and the field part is not trivial: at a field the energy differs
    data = dict(batch)
    data[ELECTRIC_FIELD_KEY] = torch.tensor([FIELD] * 3, dtype=torch.float64)
    assert (
        detached(run(fine_tuned["after"], data))[E] - reference[E]
    ).abs().max() > 1e-4


def test_frozen_weights_do_not_move_and_the_field_part_trains(fine_tuned):
    stock_state = fine_tuned["stock"].state_dict()
    after = fine_tuned["after"]
    frozen = {
        name: p
        for name, p in after.named_parameters()
        if ".field_expansion." not in name
    }
    assert frozen and all(not p.requires_grad for p in frozen.values())
    for name, p in frozen.items():
        assert torch.equal(p, stock_state[name]), (
            name
        )  # same names: the stock network is kept as it is
    field = [p for name, p in after.named_parameters() if ".field_expansion." in name]
    assert field and all(p.requires_grad for p in field)
    field_before = dict(fine_tuned["before"].named_parameters())
    assert any(
        not torch.equal(p, field_before[name])
        for name, p in after.named_parameters()
        if ".field_expansion." in name
    )
    losses = fine_tuned["losses"]
    assert losses[-1] < 0.95 * losses[0]


# ---------------------------------------------------------------- physics of the result
def fd_model_checks(model, atoms, field=FIELD, h=1e-4):
    def evaluate(a=atoms, f=field):
        return detached(run(model, to_data(a, f)))

    out = evaluate()
    field = np.asarray(field, dtype=float)
    p, born, alpha = (
        out[POLARIZATION_KEY].numpy()[0],
        out[BORN_CHARGE_KEY].numpy(),
        out[POLARIZABILITY_KEY].numpy()[0],
    )
    fd_p, fd_alpha, fd_born_field = np.zeros(3), np.zeros((3, 3)), np.zeros_like(born)
    for b in range(3):
        plus, minus = field.copy(), field.copy()
        plus[b] += h
        minus[b] -= h
        op, om = evaluate(f=plus), evaluate(f=minus)
        fd_p[b] = -(op[E] - om[E]).item() / (2 * h)  # P = -dE/dE
        fd_alpha[:, b] = (op[POLARIZATION_KEY] - om[POLARIZATION_KEY]).numpy()[0] / (
            2 * h
        )  # alpha = dP/dE
        fd_born_field[:, b, :] = (op[F] - om[F]).numpy() / (
            2 * h
        )  # Z*_i,ab = dF_ib/dE_a
    np.testing.assert_allclose(p, fd_p, atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(alpha, fd_alpha, atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(born, fd_born_field, atol=1e-7, rtol=1e-6)
    for i in (0, len(atoms) - 1):  # Z*_i,ab = dP_a/dR_ib
        for b in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, b] += h
            minus.positions[i, b] -= h
            dp = (
                evaluate(a=plus)[POLARIZATION_KEY] - evaluate(a=minus)[POLARIZATION_KEY]
            )
            np.testing.assert_allclose(
                born[i, :, b], dp.numpy()[0] / (2 * h), atol=1e-7, rtol=1e-6
            )
    np.testing.assert_allclose(alpha, alpha.T, atol=1e-12)
    np.testing.assert_allclose(born.sum(axis=0), 0.0, atol=1e-11)  # acoustic sum rule
    assert (
        np.abs(born).max() > 1e-4 and np.abs(alpha).max() > 1e-4
    )  # not trivially zero


def test_response_finite_differences_and_sum_rule(fine_tuned, frames):
    fd_model_checks(fine_tuned["after"], frames["test"][0])


def test_rotation_equivariance(fine_tuned, frames):
    model, atoms = fine_tuned["after"], frames["test"][1]
    rng = np.random.default_rng(4)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    rot[:, 0] *= np.sign(np.linalg.det(rot))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rot.T
    out = detached(run(model, to_data(atoms, FIELD)))
    out_rot = detached(run(model, to_data(rotated, rot @ np.array(FIELD))))
    R = torch.as_tensor(rot)
    tol = dict(atol=1e-9, rtol=1e-8)
    torch.testing.assert_close(out_rot[E], out[E], **tol)
    torch.testing.assert_close(out_rot[F], out[F] @ R.T, **tol)
    torch.testing.assert_close(out_rot[S], R @ out[S] @ R.T, **tol)
    torch.testing.assert_close(
        out_rot[POLARIZATION_KEY], out[POLARIZATION_KEY] @ R.T, **tol
    )
    torch.testing.assert_close(
        out_rot[BORN_CHARGE_KEY], R @ out[BORN_CHARGE_KEY] @ R.T, **tol
    )
    torch.testing.assert_close(
        out_rot[POLARIZABILITY_KEY], R @ out[POLARIZABILITY_KEY] @ R.T, **tol
    )


# ---------------------------------------------------------------- one mechanism
@pytest.mark.parametrize("family", ["allegro", "nequip"])
def test_native_builder_is_the_same_transformation(family, frames):
    """AllegroPolModel / NequIPPolModel == FieldAwareModel(stock model): same parameters, same outputs."""
    stock_config = copy.deepcopy(STOCK[family])
    native = build(
        {**stock_config, "_target_": NATIVE[family], "field_mlp_hidden_layers_width": 8}
    ).eval()
    wrapped = FieldAwareModel(model=build(stock_config), seed=1, **FIELD_ARGS).eval()
    wrapped.load_state_dict(native.state_dict(), strict=True)
    assert wrapped.metadata == native.metadata
    data = to_data(frames["response"][0], FIELD)
    a, b = detached(run(native, data)), detached(run(wrapped, data))
    for key in (E, F, S, POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY):
        torch.testing.assert_close(b[key], a[key], atol=0, rtol=0)


def test_all_weights_option_and_param_groups(frames):
    stock = build(STOCK["allegro"])
    model = FieldAwareModel(
        model=stock, seed=1, freeze_energy_model=False, **FIELD_ARGS
    )
    assert all(p.requires_grad for p in model.parameters())
    modules = torch.nn.ModuleDict({"sole_model": model})  # as nequip passes it
    groups = FieldAwareParamGroups(
        modules, field={"lr": 0.01}, energy_model={"lr": 0.001}
    )
    assert [g["lr"] for g in groups] == [0.01, 0.001]
    n_field = sum(
        1 for name, _ in model.named_parameters() if ".field_expansion." in name
    )
    assert len(groups[0]["params"]) == n_field > 0
    assert len(groups[1]["params"]) == len(list(stock.parameters()))
    # frozen: only the field group is left
    frozen = FieldAwareModel(
        model=stock, seed=1, freeze_energy_model=True, **FIELD_ARGS
    )
    assert [len(g["params"]) for g in FieldAwareParamGroups(frozen)] == [n_field]
    # the caller's model is not modified
    assert all(p.requires_grad for p in stock.parameters())
    assert not any("field_expansion" in name for name, _ in stock.named_modules())


# ---------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(tmp_path):
    stock = build(STOCK["allegro"])
    with pytest.raises(
        ValueError, match=r"type_names.*do not match.*\['Ba', 'Ti', 'O'\]"
    ):
        FieldAwareModel(model=stock, seed=1, type_names=["Ba", "O", "Ti"])
    with pytest.raises(ValueError, match="model_dtype.*float32.*float64"):
        FieldAwareModel(model=stock, seed=1, model_dtype="float32")
    native = build({**STOCK["allegro"], "_target_": NATIVE["allegro"]})
    with pytest.raises(ValueError, match="already field-aware"):
        FieldAwareModel(model=native, seed=1)
    # a GraphModel around something that is not a force/stress head of an energy model
    from nequip.nn import GraphModel

    not_energy = GraphModel(copy.deepcopy(stock.model.func), model_config=dict(COMMON))
    with pytest.raises(ValueError, match="not a nequip energy model"):
        FieldAwareModel(model=not_energy, seed=1)
    with pytest.raises(ValueError, match="not a nequip energy model"):
        FieldAwareModel(model=torch.nn.Linear(2, 2), seed=1)
    # a checkpoint file that is not a nequip checkpoint
    bogus = tmp_path / "bogus.ckpt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(
        RuntimeError,
        match=f"could not build the energy model.*ModelFromCheckpoint.*{bogus.name}",
    ):
        FieldAwareModel(
            model={
                "_target_": "nequip.model.ModelFromCheckpoint",
                "checkpoint_path": str(bogus),
            },
            seed=1,
        )
    with pytest.raises(
        RuntimeError, match="could not build the energy model.*not found"
    ):
        FieldAwareModel(
            model={
                "_target_": "nequip.model.ModelFromCheckpoint",
                "checkpoint_path": str(tmp_path / "missing.ckpt"),
            },
            seed=1,
        )
    with pytest.raises(TypeError, match="unknown arguments.*num_layers"):
        FieldAwareModel(model=stock, seed=1, num_layers=2)
    # a fresh builder config takes seed, dtype and type names from the field-aware model
    fresh = FieldAwareModel(
        model={
            k: v
            for k, v in STOCK["allegro"].items()
            if k not in ("seed", "model_dtype")
        },
        seed=1,
        model_dtype="float64",
        **FIELD_ARGS,
    )
    assert fresh.type_names == TYPE_NAMES and fresh.model_dtype == torch.float64
    with pytest.raises(ValueError, match="`seed` of the energy model"):
        FieldAwareModel(model=STOCK["allegro"], seed=1)
    assert set(FIELD_SETTINGS) <= set(FieldAwareModel.__doc__.replace("`", " ").split())


# ---------------------------------------------------------------- through nequip-train
def nequip_train(config_name, run_dir, *overrides, epochs=1):
    command = [
        sys.executable,
        "-m",
        "nequip.scripts.train",
        "-cp",
        str(CONFIGS),
        "-cn",
        config_name,
        "model_dtype=float64",
        "batch_size=4",
        f"max_epochs={epochs}",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir / "last.ckpt"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, frames):
    """nequip-train: stock Allegro on E/F (energy_model.yaml), then fine_tune_frozen.yaml from its checkpoint."""
    work = tmp_path_factory.mktemp("fine_tune_cli")
    ef, response = work / "ef.xyz", work / "response.xyz"
    write_dataset(frames["ef"], ef)
    write_dataset(frames["response"], response)
    energy = nequip_train(
        "energy_model", work / "energy", f"train_files={ef}", f"val_file={ef}"
    )
    tuned = nequip_train(
        "fine_tune_frozen",
        work / "frozen",
        f"energy_checkpoint={energy}",
        f"train_files={response}",
        f"val_file={response}",
    )
    return energy, tuned, response


def test_frozen_fine_tune_through_nequip_train(checkpoints):
    from nequip.model.saved_models.load_utils import load_saved_model

    energy_ckpt, tuned_ckpt, response = checkpoints
    original, tuned = (
        load_saved_model(str(energy_ckpt)).eval(),
        load_saved_model(str(tuned_ckpt)).eval(),
    )
    frames = read_dataset(response)
    batch = batch_of(frames)
    a, b = detached(run(original, batch)), detached(run(tuned, batch))
    for key in (E, F, S):
        assert_relative(b[key], a[key], 1e-10, key)
    # the reloaded model is still frozen, with the original weights
    original_state = original.state_dict()
    for name, p in tuned.named_parameters():
        if ".field_expansion." not in name:
            assert not p.requires_grad and torch.equal(p, original_state[name]), name
    # the optimizer only ever saw the field part
    checkpoint = torch.load(tuned_ckpt, map_location="cpu", weights_only=False)
    n_field = sum(
        1 for name, _ in tuned.named_parameters() if ".field_expansion." in name
    )
    assert len(checkpoint["optimizer_states"][0]["state"]) == n_field
    # the response of the result passes the physics checks
    fields = [f.info["electric_field"] for f in frames]
    out = detached(run(tuned, batch_of(frames, fields)))
    assert (
        torch.isfinite(out[BORN_CHARGE_KEY]).all()
        and out[BORN_CHARGE_KEY].abs().max() > 0
    )
    fd_model_checks(tuned, frames[0])
    # a field-aware checkpoint cannot be made field-aware again
    with pytest.raises(ValueError, match="already field-aware"):
        FieldAwareModel(
            model={
                "_target_": "nequip.model.ModelFromCheckpoint",
                "checkpoint_path": str(tuned_ckpt),
            },
            seed=1,
        )
    # nor can the energy model be used with other type names
    with pytest.raises(ValueError, match="do not match"):
        FieldAwareModel(
            model={
                "_target_": "nequip.model.ModelFromCheckpoint",
                "checkpoint_path": str(energy_ckpt),
            },
            seed=1,
            type_names=["O", "Ti", "Ba"],
        )


@pytest.mark.slow
def test_restart_keeps_the_energy_model_frozen(checkpoints, tmp_path):
    """Opt-in: nequip-train restarted from the fine-tuned checkpoint (``ckpt_path``) trains one more
    epoch; the original weights are still frozen and unchanged, the field part moved on."""
    from nequip.model.saved_models.load_utils import load_saved_model

    energy_ckpt, tuned_ckpt, response = checkpoints
    restarted = nequip_train(
        "fine_tune_frozen",
        tmp_path / "restart",
        f"energy_checkpoint={energy_ckpt}",
        f"train_files={response}",
        f"val_file={response}",
        f"++ckpt_path={tuned_ckpt}",
        epochs=2,
    )
    epoch = {
        path: torch.load(path, map_location="cpu", weights_only=False)["epoch"]
        for path in (tuned_ckpt, restarted)
    }
    assert epoch[restarted] == epoch[tuned_ckpt] + 1
    original = load_saved_model(str(energy_ckpt)).state_dict()
    before, after = load_saved_model(str(tuned_ckpt)), load_saved_model(str(restarted))
    before_state = before.state_dict()
    moved = False
    for name, p in after.named_parameters():
        if ".field_expansion." in name:
            moved |= not torch.equal(p, before_state[name])
        else:
            assert not p.requires_grad and torch.equal(p, original[name]), name
    assert moved


@pytest.mark.slow
def test_from_package_repackaged_and_compiled(checkpoints, tmp_path):
    """Opt-in: energy model packaged -> fine-tuned from the package (ModelFromPackage) -> packaged
    again -> AOTInductor (nequip_pol_ase target); all equal to the eager fine-tuned checkpoint."""
    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.nn.compile import DictInputOutputWrapper
    from nequip.scripts._compile_utils import COMPILE_TARGET_DICT
    from nequip_pol._compile import ASE_TARGET

    energy_ckpt, _, response = checkpoints
    energy_pkg, tuned_pkg, compiled_path = (
        tmp_path / "energy.nequip.zip",
        tmp_path / "tuned.nequip.zip",
        tmp_path / "tuned.nequip.pt2",
    )
    subprocess.run(
        ["nequip-package", "build", str(energy_ckpt), str(energy_pkg)],
        check=True,
        capture_output=True,
    )
    tuned_ckpt = nequip_train(
        "fine_tune_frozen",
        tmp_path / "from_package",
        f"energy_checkpoint={energy_ckpt}",
        f"train_files={response}",
        f"val_file={response}",
        "~training_module.model.model.checkpoint_path",
        f"+training_module.model.model.package_path={energy_pkg}",
        "training_module.model.model._target_=nequip.model.ModelFromPackage",
    )
    subprocess.run(
        ["nequip-package", "build", str(tuned_ckpt), str(tuned_pkg)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "nequip-compile",
            str(tuned_pkg),
            str(compiled_path),
            "--mode",
            "aotinductor",
            "--device",
            "cpu",
            "--target",
            ASE_TARGET,
        ],
        check=True,
        capture_output=True,
    )
    original = load_saved_model(str(energy_pkg)).eval()
    eager = load_saved_model(str(tuned_ckpt)).eval()
    packaged = load_saved_model(str(tuned_pkg)).eval()
    target = COMPILE_TARGET_DICT[ASE_TARGET]
    compiled = DictInputOutputWrapper(
        torch._inductor.aoti_load_package(str(compiled_path)),
        target["input"],
        target["output"],
    )
    frames = read_dataset(response)
    for atoms, field in [(frames[0], FIELD), (frames[1], [0.0, 0.0, 0.0])]:
        data = target["data_settings"](to_data(atoms, field))
        reference = detached(run(eager, data))
        for out in (
            detached(run(packaged, data)),
            compiled({k: data[k] for k in target["input"]}),
        ):
            for key in target["output"]:
                assert_relative(out[key].detach(), reference[key], 1e-8, key)
        if field == [0.0, 0.0, 0.0]:
            zero = detached(run(original, data))
            for key in (E, F, S):
                assert_relative(reference[key], zero[key], 1e-10, key)
