"""Multi-process (DDP) training on the CPU: 2 ranks x batch b give the loss, its gradients and
the validation metrics of one process with batch 2b.

Two processes are spawned with ``torch.multiprocessing`` and joined in a gloo process group; each
wraps the model in ``torch.nn.parallel.DistributedDataParallel`` and computes the loss the way
nequip's ``NequIPLightningModule`` does under Lightning's DDP strategy: the loss metrics sync their
sums and counts across ranks on every step (``dist_sync_on_step``), the weighted sum is multiplied
by the world size, and DDP averages the gradients. The validation metrics accumulate per rank and
are reduced across ranks by ``compute()``. Analytic reference material, float64, every loss term:
per-atom E, F, stress, P on the nearest branch (references moved by lattice vectors), the full
Z*, alpha, and the projected Z* when both runs are given the same projection vectors.

A short ``nequip-train`` run with Lightning's DDP strategy (2 CPU processes) is in
``test_ddp_run.py``.
"""

import os
import socket
from unittest import mock

import pytest
import torch

from nequip.data import AtomicDataDict

from nequip_pol import BORN_CHARGE_KEY

WORLD_SIZE = 2
FRAMES_PER_RANK = 2
TYPE_NAMES = ["Ba", "Ti", "O"]
R_MAX = 5.0
#: a small Allegro-pol (the analytic demo's model, float64)
MODEL = {
    "_target_": "nequip_pol.model.AllegroPolModel",
    "seed": 7,
    "model_dtype": "float64",
    "type_names": TYPE_NAMES,
    "r_max": R_MAX,
    "l_max": 1,
    "num_layers": 1,
    "num_scalar_features": 16,
    "num_tensor_features": 4,
    "radial_chemical_embed": {
        "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
        "num_bessels": 8,
    },
    "allegro_mlp_hidden_layers_depth": 1,
    "allegro_mlp_hidden_layers_width": 16,
    "readout_mlp_hidden_layers_depth": 1,
    "readout_mlp_hidden_layers_width": 16,
    "avg_num_neighbors": 30.0,
    "per_type_energy_shifts": {"Ba": -1.0, "Ti": -2.0, "O": -0.5},
    "per_type_energy_scales": {"Ba": 1.0, "Ti": 1.0, "O": 1.0},
    "field_expansion_order": 3,
    "field_mlp_hidden_layers_width": 16,
}
#: the weights of the analytic demo's loss (nequip_pol/reference/analytic_allegro_pol.yaml)
COEFFS = {
    "total_energy": 10.0,
    "forces": 1.0,
    "stress": 10.0,
    "polarization": 1.0,
    "born_effective_charges": 1.0,
    "polarizability": 1.0,
}


# ---------------------------------------------------------------- shared by parent and ranks


def read_frames(path):
    """Frames of an extended XYZ file as nequip-train reads them (types, keys, neighbor list)."""
    import ase.io
    from nequip.data import from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip_pol.data import ElectricResponseKeysTransform

    mapper = ChemicalSpeciesToAtomTypeMapper(TYPE_NAMES, {t: t for t in TYPE_NAMES})
    keys = ElectricResponseKeysTransform()
    neighbors = NeighborListTransform(r_max=R_MAX)
    include = [
        "total_energy",
        "electric_field",
        "polarization",
        "born_effective_charges",
        "polarizability",
    ]
    return [
        neighbors(keys(mapper(from_ase(atoms, include_keys=include))))
        for atoms in ase.io.read(path, ":")
    ]


def build_model(projected: bool):
    from hydra.utils import get_method
    from nequip.model.modify_utils import modify

    config = dict(MODEL)
    model = get_method(config.pop("_target_"))(**config)
    if projected:
        model = modify(
            model, [{"modifier": "born_charge_training_mode", "mode": "projected"}]
        )
    return model.train()


def loss_manager():
    """The training loss as NequIPLightningModule sets it up (loss metrics sync on each step)."""
    from nequip_pol.train import ElectricResponseLoss

    loss = ElectricResponseLoss(coeffs=COEFFS, type_names=TYPE_NAMES)
    for metric in loss.values():
        metric.dist_sync_on_step = True
    return loss


def training_step(model, params, frames, world_size, projections=None):
    """One step as NequIPLightningModule.training_step under DDP: the weighted sum times the
    world size, backward (DDP averages the gradients over ranks). ``projections``: the unit
    vectors v ((num_frames, 3)) the projected head is to use instead of drawing its own.

    Returns the loss components (floats) and the gradient of all weights as one vector."""
    batch = AtomicDataDict.batched_from_list([dict(f) for f in frames])
    target = batch.copy()
    loss = loss_manager()
    if projections is None:
        output = model(batch)
    else:
        table = projections.to(torch.float64)
        with mock.patch.object(torch, "randn", lambda *a, **k: table.clone()):
            output = model(batch)
    values = loss(output, target)
    (values["weighted_sum"] * world_size).backward()
    grads = torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in params
        ]
    )
    return {k: float(v.detach()) for k, v in values.items()}, grads.detach().clone()


def validation_metrics(model, frames, batch_size=1):
    """Validation as NequIPLightningModule: per-batch updates, then compute() (synced across
    ranks under torch.distributed)."""
    from nequip_pol.train import ElectricResponseMetrics

    model.eval()
    metrics = ElectricResponseMetrics(type_names=TYPE_NAMES)
    for i in range(0, len(frames), batch_size):
        batch = AtomicDataDict.batched_from_list(
            [dict(f) for f in frames[i : i + batch_size]]
        )
        target = batch.copy()
        with torch.enable_grad():
            output = model(batch)
        with torch.no_grad():
            metrics(output, target)
    values = {k: float(v) for k, v in metrics.compute().items()}
    model.train()
    return values


def without_born_charges(frames):
    """The frames with Z* labels removed (NaN), as for frames lacking them in a dataset."""
    out = []
    for f in frames:
        f = dict(f)
        f[BORN_CHARGE_KEY] = torch.full_like(f[BORN_CHARGE_KEY], float("nan"))
        out.append(f)
    return out


def run_all(model_full, model_proj, frames, projections, world_size, partial):
    """Everything compared: the full and projected loss steps, validation metrics and, with
    ``partial``, a step where the second half of the frames lacks Z* labels."""
    results = {}
    for name, model, proj in (
        ("full", model_full, None),
        ("projected", model_proj, projections),
    ):
        module = model.module if hasattr(model, "module") else model
        params = list(module.parameters())
        model.zero_grad(set_to_none=True)
        results[name] = training_step(model, params, frames, world_size, proj)
        model.zero_grad(set_to_none=True)
    module = model_full.module if hasattr(model_full, "module") else model_full
    results["val"] = validation_metrics(module, frames)
    if partial is not None:
        params = list(module.parameters())
        model_full.zero_grad(set_to_none=True)
        results["partial"] = training_step(model_full, params, partial, world_size)
        results["val_partial"] = validation_metrics(module, partial)
    return results


# ---------------------------------------------------------------- the ranks


def _rank_main(rank, world_size, port, data_path, out_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1"
    )
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        from nequip.utils.global_state import set_global_state

        set_global_state()
        frames = read_frames(data_path)
        mine = slice(rank * FRAMES_PER_RANK, (rank + 1) * FRAMES_PER_RANK)
        projections = torch.load(os.path.join(out_dir, "projections.pt"))[mine]
        # the second rank's frames lack Z*: its Z* loss has no entries at all
        partial = frames[mine] if rank == 0 else without_born_charges(frames[mine])
        ddp = torch.nn.parallel.DistributedDataParallel
        results = run_all(
            ddp(build_model(False)),
            ddp(build_model(True)),
            frames[mine],
            projections,
            world_size,
            partial,
        )
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def ddp_and_single(tmp_path_factory):
    """Results of the 2-rank run (per rank) and of one process on all frames."""
    from nequip.utils.global_state import set_global_state
    from nequip_pol.reference import generate_dataset, write_dataset

    folder = tmp_path_factory.mktemp("ddp")
    data_path = str(folder / "analytic.xyz")
    write_dataset(generate_dataset(WORLD_SIZE * FRAMES_PER_RANK, seed=21), data_path)
    generator = torch.Generator().manual_seed(5)
    projections = torch.randn(
        (WORLD_SIZE * FRAMES_PER_RANK, 3), generator=generator, dtype=torch.float64
    )
    projections /= projections.norm(dim=-1, keepdim=True)
    torch.save(projections, folder / "projections.pt")

    torch.multiprocessing.spawn(
        _rank_main,
        args=(WORLD_SIZE, _free_port(), data_path, str(folder)),
        nprocs=WORLD_SIZE,
        join=True,
    )
    ranks = [torch.load(folder / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        set_global_state()
        frames = read_frames(data_path)
        half = WORLD_SIZE * FRAMES_PER_RANK // 2
        partial = frames[:half] + without_born_charges(frames[half:])
        single = run_all(
            build_model(False), build_model(True), frames, projections, 1, partial
        )
    finally:
        torch.set_num_threads(threads)
    return ranks, single, frames


def assert_same_step(ddp_step, single_step):
    (ddp_values, ddp_grads), (values, grads) = ddp_step, single_step
    assert set(ddp_values) == set(values)
    for key, value in values.items():
        assert ddp_values[key] == pytest.approx(value, rel=1e-10, abs=1e-14), key
    scale = float(grads.abs().max())
    assert scale > 0
    torch.testing.assert_close(ddp_grads, grads, rtol=1e-9, atol=1e-11 * scale)


def test_ddp_loss_and_gradients_equal_one_process(ddp_and_single):
    """2 ranks x 2 frames: every loss term and the averaged gradients equal those of one
    process with the 4 frames (float64 round-off); both ranks hold the same values."""
    ranks, single, frames = ddp_and_single
    # the data exercise the nearest branch: every reference P sits whole quanta (e x lattice
    # vectors of ~8 A) away from the exact P (|P| < 2 e*A)
    assert all(float(f["polarization"].abs().max()) > 4.0 for f in frames)
    expected = {
        "per_atom_energy_mse",
        "forces_mse",
        "stress_mse",
        "polarization_mse",
        "born_effective_charges_mse",
        "polarizability_mse",
        "weighted_sum",
    }
    for name in ("full", "projected"):
        assert set(single[name][0]) == expected
        for rank in ranks:
            assert_same_step(rank[name], single[name])


def test_ddp_validation_metrics_are_reduced_across_ranks(ddp_and_single):
    """Validation RMSEs and MAEs of 2 ranks (2 frames each) equal those of one process on the 4
    frames: sums and counts are reduced across ranks, not per-rank values averaged."""
    ranks, single, _ = ddp_and_single
    assert "born_effective_charges_rmse" in single["val"]
    assert "per_atom_polarization_rmse" in single["val"]
    for rank in ranks:
        assert set(rank["val"]) == set(single["val"])
        for key, value in single["val"].items():
            assert rank["val"][key] == pytest.approx(value, rel=1e-10, abs=1e-14), key


def test_ddp_gradients_with_a_rank_lacking_born_charges(ddp_and_single):
    """Partial labels: one rank's frames all lack Z* (NaN, skipped there). The averaged gradients
    equal those of one process with all frames."""
    ranks, single, _ = ddp_and_single
    for rank in ranks:
        torch.testing.assert_close(
            rank["partial"][1],
            single["partial"][1],
            rtol=1e-9,
            atol=1e-11 * float(single["partial"][1].abs().max()),
        )


def test_ddp_loss_values_with_a_rank_lacking_born_charges(ddp_and_single):
    """Partial labels: the logged loss terms of both ranks equal those of one process (the Z*
    term is the mean over the frames that have Z*)."""
    ranks, single, _ = ddp_and_single
    for rank in ranks:
        assert_same_step(rank["partial"], single["partial"])


def test_ddp_validation_with_a_rank_lacking_born_charges(ddp_and_single):
    """Partial labels in validation: a rank whose frames all lack Z* still reports the metrics
    of one process on all frames."""
    ranks, single, _ = ddp_and_single
    for rank in ranks:
        for key, value in single["val_partial"].items():
            assert rank["val_partial"][key] == pytest.approx(
                value, rel=1e-10, abs=1e-14
            ), key


def test_each_rank_draws_its_own_projections_reproducibly(ddp_and_single):
    """In a normal projected-Z* run each rank draws its own projections for its frames, the same
    ones again for the same seed, epoch and rank (reproducible, also across a restart)."""
    from pathlib import Path
    from types import SimpleNamespace

    import nequip_pol.reference
    from nequip_pol.train import PerRankSeed

    _, _, frames = ddp_and_single
    model = build_model(True)
    batch = AtomicDataDict.batched_from_list([dict(frames[0])])

    def draw(rank, epoch, seed=123):
        trainer = SimpleNamespace(global_rank=rank, current_epoch=epoch)
        PerRankSeed(seed=seed).on_train_epoch_start(trainer, None)
        return model({k: v.clone() for k, v in batch.items()})[
            "born_charge_projection"
        ].detach()

    first = draw(0, 0)
    torch.testing.assert_close(draw(0, 0), first, rtol=0, atol=0)
    for other in (draw(1, 0), draw(0, 1), draw(0, 0, seed=124)):
        assert not torch.allclose(other, first)
    root = Path(__file__).resolve().parent.parent
    configs = (
        root / "configs" / "dft.yaml",
        Path(nequip_pol.reference.__file__).parent / "analytic_allegro_pol.yaml",
    )
    for config in configs:
        assert "nequip_pol.train.PerRankSeed" in config.read_text(), config
