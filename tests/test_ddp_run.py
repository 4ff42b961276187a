"""A short ``nequip-train`` run with Lightning's DDP strategy on 2 CPU processes (gloo), as a user
would start it on several GPUs (``++trainer.strategy=ddp ++trainer.devices=2``).

Opt-in (``-m slow``): the analytic demo config on 16 frames of the analytic material, 2 epochs on
2 ranks, then a validation run of the best checkpoint on 2 ranks (~40 s wall on 2 cores), a
single-process validation of the same model (~20 s), ``nequip-package build`` (~20 s) and an
AOTInductor compile with ``--target nequip_pol_ase`` (2-3 min). The exact equality of the loss,
gradients and metrics of 2 ranks and one process is in ``test_ddp.py`` (default suite).
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
DDP = [
    "++trainer.strategy=ddp",
    "++trainer.devices=2",
    "++trainer.accelerator=cpu",
]
FIELD = np.array([0.05, -0.03, 0.08])


def _run(command, cwd, what):
    proc = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, (
        f"{what} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def train_command(data, out, log_name, extra):
    import nequip_pol.reference
    from nequip_pol import demo

    return [
        BIN / "nequip-train",
        "-cp",
        Path(nequip_pol.reference.__file__).parent,
        "-cn",
        demo.CONFIG_NAME,
        f"data_file={data}",
        "num_train=8",
        "num_val=4",  # a multiple of the ranks: DistributedSampler repeats frames otherwise
        "num_test=4",
        "max_epochs=2",
        "data.val_dataloader.batch_size=1",
        "++trainer.logger._target_=lightning.pytorch.loggers.CSVLogger",
        f"++trainer.logger.save_dir={out}",
        f"++trainer.logger.name={log_name}",
        *extra,
    ]


def last_val_row(out: Path, log_name: str) -> dict:
    rows = [
        row
        for path in sorted((out / log_name).glob("*/metrics.csv"))
        for row in csv.DictReader(open(path))
        if row.get("val0_epoch/forces_rmse")
    ]
    assert rows, f"no validation metrics in {out / log_name}"
    return {
        k: float(v) for k, v in rows[-1].items() if k.startswith("val0_epoch/") and v
    }


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    from nequip_pol.reference import generate_dataset, write_dataset

    out = tmp_path_factory.mktemp("ddp_run")
    data = out / "analytic.xyz"
    write_dataset(generate_dataset(16, seed=4), data)
    _run(
        train_command(
            data,
            out,
            "ddp",
            [*DDP, "run=[train,val]", f"hydra.run.dir={out / 'train'}"],
        ),
        out,
        "nequip-train (DDP)",
    )
    return out, data


def test_ddp_run_trains_on_both_ranks_and_writes_a_checkpoint(ddp_run):
    out, _ = ddp_run
    run = out / "train"
    assert (run / "best.ckpt").exists() and (run / "last.ckpt").exists()
    assert (run / "train_ddp_process_1.log").exists()  # the second rank ran
    rows = list(csv.DictReader(open(next((out / "ddp").glob("*/metrics.csv")))))
    losses = [
        float(r["train_loss_epoch/weighted_sum"])
        for r in rows
        if r.get("train_loss_epoch/weighted_sum")
    ]
    assert len(losses) == 2 and all(np.isfinite(losses))
    # the checkpoint loads and gives the full response
    from nequip_pol.integrations.ase import NequIPPolCalculator
    from nequip_pol.reference.paraelectric import ideal_structure

    calc = NequIPPolCalculator.from_saved_model(
        run / "best.ckpt", chemical_species_to_atom_type_map=True
    )
    atoms = ideal_structure()
    atoms.rattle(0.05, seed=1)
    results = calc.evaluate(atoms, FIELD)
    assert all(np.isfinite(v).all() for v in results.values())
    z = results["born_effective_charges"]
    assert z.shape == (len(atoms), 3, 3)
    # acoustic sum rule (float32 model)
    assert np.abs(z.sum(axis=0)).max() < 1e-4 * len(atoms) * np.abs(z).max()


def test_ddp_validation_equals_one_process(ddp_run):
    """The validation metrics of the DDP run (best checkpoint, 2 ranks x 2 frames) equal those of
    one process evaluating the same model on the same 4 frames."""
    out, data = ddp_run
    model = (
        "+training_module.model={_target_:nequip.model.ModelFromCheckpoint,"
        f"checkpoint_path:{out / 'train' / 'best.ckpt'}}}"
    )
    _run(
        train_command(
            data,
            out,
            "single",
            [
                "run=[val]",
                "~training_module.model",
                model,
                f"hydra.run.dir={out / 'single'}",
            ],
        ),
        out,
        "nequip-train (one process, validation)",
    )
    ddp, single = last_val_row(out, "ddp"), last_val_row(out, "single")
    assert "val0_epoch/born_effective_charges_rmse" in single
    assert set(ddp) == set(single)
    for key, value in single.items():
        assert ddp[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_ddp_checkpoint_packages_and_compiles(ddp_run):
    """``nequip-package build`` and ``nequip-compile --target nequip_pol_ase`` of the DDP run's
    checkpoint give the checkpoint's E, F, stress, P, Z*, alpha."""
    out, _ = ddp_run
    from nequip_pol.integrations.ase import NequIPPolCalculator
    from nequip_pol.reference.paraelectric import ideal_structure

    ckpt = out / "train" / "best.ckpt"
    package = out / "model.nequip.zip"
    _run([BIN / "nequip-package", "build", ckpt, package], out, "nequip-package")
    compiled = out / "model.nequip.pt2"
    _run(
        [
            BIN / "nequip-compile",
            package,
            compiled,
            "--mode",
            "aotinductor",
            "--device",
            "cpu",
            "--target",
            "nequip_pol_ase",
        ],
        out,
        "nequip-compile",
    )
    atoms = ideal_structure()
    atoms.rattle(0.05, seed=2)
    keys = ("energy", "forces", "stress", "polarization", "born_effective_charges")
    keys += ("polarizability",)
    species = {"chemical_species_to_atom_type_map": True}
    results = {}
    for name, calc in (
        ("ckpt", NequIPPolCalculator.from_saved_model(ckpt, **species)),
        ("package", NequIPPolCalculator.from_saved_model(package, **species)),
        ("compiled", NequIPPolCalculator.from_compiled_model(compiled, **species)),
    ):
        out = calc.evaluate(atoms, FIELD)
        results[name] = {k: np.asarray(out[k]) for k in keys}
    for name in ("package", "compiled"):
        for key in keys:
            ref = results["ckpt"][key]
            scale = max(float(np.abs(ref).max()), 1e-6)
            # float32 model: agreement to single-precision round-off
            assert np.abs(results[name][key] - ref).max() < 1e-4 * scale, (name, key)
