"""Cheaper training steps: the projected Born-charge loss (one backward pass of v.P instead of three).

Checked against independent paths: v.Z* of a projected training step against the full Z* of the
default head contracted with the same v (both builders, batched frames, float64), unbiasedness of
the projected MSE against the full Z* MSE (Monte Carlo), eval mode unaffected, and the training-cost
benchmark on the shared data (opt-in, slow).
"""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nequip.data import AtomicDataDict
from nequip.model.modify_utils import modify

from nequip_pol import BORN_CHARGE_KEY
from nequip_pol.nn.response import BORN_CHARGE_PROJECTION_KEY, PROJECTED_BORN_CHARGE_KEY
from nequip_pol.train import BornChargesOrProjection, ElectricResponseLoss
from model_configs import ALLEGRO_POL, NEQUIP_POL
from test_response import build, perovskite_like, to_data

ROOT = Path(__file__).resolve().parent.parent


def batch_of_frames():
    frames = [
        to_data(perovskite_like(seed=s), [0.05 * s, -0.02, 0.1]) for s in range(3)
    ]
    return AtomicDataDict.batched_from_list(frames)


@pytest.mark.parametrize("config", [ALLEGRO_POL, NEQUIP_POL], ids=["allegro", "nequip"])
def test_projected_born_charges_are_v_dot_full_born_charges(config, one_torch_thread):
    full = build(config)  # default head: full Z* by three backward passes
    projected = modify(
        build(config), [{"modifier": "born_charge_training_mode", "mode": "projected"}]
    )
    projected.train()
    batch = batch_of_frames()
    torch.manual_seed(0)
    out = projected({k: v.clone() for k, v in batch.items()})
    assert BORN_CHARGE_KEY not in out
    v = out[BORN_CHARGE_PROJECTION_KEY].detach()
    assert v.shape == (3, 3)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3, dtype=v.dtype))
    reference = full({k: v.clone() for k, v in batch.items()})
    expected = torch.einsum(
        "na,nab->nb",
        v[batch[AtomicDataDict.BATCH_KEY]],
        reference[BORN_CHARGE_KEY].detach(),
    )
    torch.testing.assert_close(
        out[PROJECTED_BORN_CHARGE_KEY].detach(), expected, atol=1e-10, rtol=1e-8
    )
    # forces, P, alpha are those of the full head; the graph of v.Z* reaches the weights
    for key in (
        AtomicDataDict.FORCE_KEY,
        "polarization",
        "polarizability",
        AtomicDataDict.STRESS_KEY,
    ):
        torch.testing.assert_close(
            out[key].detach(), reference[key].detach(), atol=1e-10, rtol=1e-8
        )
    out[PROJECTED_BORN_CHARGE_KEY].square().sum().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in projected.parameters()
    )
    # eval mode: the full Z*, as before
    projected.eval()
    again = projected({k: v.clone() for k, v in batch.items()})
    assert PROJECTED_BORN_CHARGE_KEY not in again
    torch.testing.assert_close(
        again[BORN_CHARGE_KEY].detach(), reference[BORN_CHARGE_KEY].detach()
    )


def test_projected_mse_is_an_unbiased_estimate_of_the_full_mse():
    """Mean over random unit v of the projected MSE = full Z* MSE (here 20000 one-atom frames)."""
    g = torch.Generator().manual_seed(1)
    n = 20000
    pred = torch.randn((n, 3, 3), generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 0.3, 2.0]
    ).view(1, 3, 1)
    ref = torch.randn((n, 3, 3), generator=g, dtype=torch.float64)
    v = torch.randn((n, 3), generator=g, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True)
    batch = torch.arange(n)
    pred_data = {
        PROJECTED_BORN_CHARGE_KEY: torch.einsum("na,nab->nb", v, pred),
        BORN_CHARGE_PROJECTION_KEY: v,
    }
    ref_data = {BORN_CHARGE_KEY: ref, AtomicDataDict.BATCH_KEY: batch}
    a, b = BornChargesOrProjection()(pred_data, ref_data)
    projected_mse = float((a - b).square().mean())
    full_mse = float((pred - ref).square().mean())
    # the per-atom estimates have a relative spread ~1 over 20000 atoms: 1 % standard error
    assert abs(projected_mse / full_mse - 1.0) < 0.04, (projected_mse, full_mse)
    # without a projection in the prediction the field compares the full Z*
    a, b = BornChargesOrProjection()({BORN_CHARGE_KEY: pred}, ref_data)
    assert a.shape == (n, 3, 3) and torch.equal(b, ref)


def test_projected_loss_skips_missing_born_charges(one_torch_thread):
    """NaN Z* labels (frames without Born charges) stay NaN after projection and are skipped."""
    model = modify(
        build(ALLEGRO_POL),
        [{"modifier": "born_charge_training_mode", "mode": "projected"}],
    ).train()
    batch = batch_of_frames()
    n = batch[AtomicDataDict.POSITIONS_KEY].shape[0]
    target = dict(batch)
    born = torch.randn((n, 3, 3), dtype=torch.float64)
    born[batch[AtomicDataDict.BATCH_KEY] == 1] = float("nan")
    target[BORN_CHARGE_KEY] = born
    loss = ElectricResponseLoss(coeffs={BORN_CHARGE_KEY: 1.0})
    values = loss(model({k: v.clone() for k, v in batch.items()}), target)
    assert torch.isfinite(values["weighted_sum"])
    values["weighted_sum"].backward()


def test_bad_born_charge_training_mode_is_named():
    with pytest.raises(ValueError, match="born_charge_training"):
        modify(
            build(ALLEGRO_POL),
            [{"modifier": "born_charge_training_mode", "mode": "half"}],
        )
    config = copy.deepcopy(ALLEGRO_POL)
    from nequip_pol.nn.response import ElectricResponseOutput

    with pytest.raises(ValueError, match="born_charge_training"):
        ElectricResponseOutput(
            build(config).model.func, born_charge_training="sometimes"
        )


@pytest.mark.slow
def test_training_cost_benchmark_runs_on_the_shared_data(shared_data, tmp_path):
    """Opt-in: one float32 SiO2 case of the benchmark, full and projected Z* loss."""
    result = tmp_path / "cost.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "training_cost.py"),
            "--datasets",
            "SiO2",
            "--dtypes",
            "float32",
            "--levels",
            "efs",
            "alpha",
            "alpha_proj",
            "--steps",
            "2",
            "--json",
            str(result),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    rows = {r["level"]: r for r in json.loads(result.read_text())}
    assert set(rows) == {"efs", "alpha", "alpha_proj"}
    assert rows["alpha_proj"]["cpu_s"] < rows["alpha"]["cpu_s"]
