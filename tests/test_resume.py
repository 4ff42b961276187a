"""Long runs in chunks: a training interrupted after 2 epochs and resumed (benchmarks/learning_curve.py
--resume, nequip's restart from last.ckpt) ends where an uninterrupted 4-epoch run ends.

Small: the analytic material (24 frames of 40 atoms), the small Allegro-pol of configs/model,
``configs/dft.yaml`` through the real command line (three nequip-train starts, ~45 CPU s; 5 min wall
on the fully loaded development machine).
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "learning_curve.py"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from nequip_pol.reference import generate_dataset, write_dataset

    path = tmp_path_factory.mktemp("data") / "analytic.xyz"
    write_dataset(generate_dataset(24, seed=5), path)
    return path


def run(command, check=True):
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def val_rows(out: Path):
    rows = {}
    for path in sorted((out / "log").glob("chunk_*/metrics.csv")):
        for row in csv.DictReader(open(path)):
            if row.get("val0_epoch/forces_rmse"):
                rows[int(row["epoch"])] = {
                    k: float(v) for k, v in row.items() if v not in ("", None)
                }
    return rows


def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(
    tiny_data, tmp_path
):
    base = [
        sys.executable,
        str(SCRIPT),
        "--dataset",
        "analytic",
        "--data-file",
        str(tiny_data),
        "--model",
        "allegro_pol_small",
    ]
    straight, chunked = tmp_path / "straight", tmp_path / "chunked"
    run(base + [str(straight), "--chunk-epochs", "4", "--chunks", "1"])
    run(base + [str(chunked), "--chunk-epochs", "2", "--chunks", "1"])
    # the same command again neither overwrites nor continues without being told
    refused = run(
        base + [str(chunked), "--chunk-epochs", "2", "--chunks", "2"], check=False
    )
    assert refused.returncode != 0 and "--resume" in refused.stderr
    run(base + [str(chunked), "--chunk-epochs", "2", "--chunks", "2", "--resume"])

    a = list(csv.DictReader(open(straight / "learning_curve.csv")))
    b = list(csv.DictReader(open(chunked / "learning_curve.csv")))
    assert len(a) == 1 and len(b) == 2
    assert int(a[-1]["epochs"]) == int(b[-1]["epochs"]) == 4  # same epoch count
    va, vb = val_rows(straight), val_rows(chunked)
    assert sorted(va) == sorted(vb) == [0, 1, 2, 3]
    # same split, same start: before the interruption the runs are the same computation
    for epoch in (0, 1):
        for key in ("val0_epoch/forces_rmse", "val0_epoch/born_effective_charges_rmse"):
            assert vb[epoch][key] == pytest.approx(va[epoch][key], rel=1e-4), (
                epoch,
                key,
            )
    # the resumed run continued (optimizer, schedule, EMA restored) and ends within noise of the
    # uninterrupted one (the random projections of Z* drawn after the restart differ from those
    # of the uninterrupted run, so the two are not bit-identical)
    for column in (
        "forces_rmse_meV_A",
        "Zstar_rmse_e",
        "alpha_rmse_eA2_V",
        "P_rmse_eA",
    ):
        ratio = float(b[-1][column]) / float(a[-1][column])
        assert 0.8 < ratio < 1.25, (column, ratio)
    assert float(b[-1]["forces_rmse_meV_A"]) < float(b[0]["forces_rmse_meV_A"])
    # CPU time is carried across the restart
    assert float(b[1]["cpu_hours"]) > float(b[0]["cpu_hours"]) > 0
    per_epoch = [
        float(r["cpu_hours"]) for r in csv.DictReader(open(chunked / "val_curve.csv"))
    ]
    assert len(per_epoch) == 4 and all(
        x < y for x, y in zip(per_epoch, per_epoch[1:])
    ), per_epoch
