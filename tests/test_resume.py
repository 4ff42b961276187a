"""Long runs in chunks: a training interrupted after 2 epochs and resumed (nequip-pol train-long
--resume, nequip's restart from last.ckpt) ends where an uninterrupted 4-epoch run ends; so does a
run killed with SIGKILL in the middle of an epoch (no clean stop: the process group dies between
two checkpoints) and resumed from its last checkpoint.

Small: the analytic material (24 frames of 40 atoms), the small Allegro-pol of configs/model,
``configs/dft.yaml`` through the real command line (the uninterrupted run is shared; five
nequip-train starts in all).
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the verb as the console script runs it
VERB = [sys.executable, "-m", "nequip_pol.cli", "train-long"]
# One learning-rate plan for every chunk of every run (as in the long runs: an explicit
# lr_total_epochs). The config's default, lr_total_epochs=${max_epochs}, would plan chunk 1 of
# the chunked run to end at epoch 2; nequip-train's restart (++ckpt_path) rebuilds the training
# module, scheduler settings included, from the checkpoint and ignores the config's, so chunk 2
# would keep the final learning rate of that 2-epoch plan.
# batch 2, lr 0.005, Born-charge weight 1 and a decay over all epochs after the warm-up: the
# settings the noise band of assert_ends_within_noise was measured with (the config's recipe,
# batch 1, lr 0.01, weight 4, late decay, gives these 4-epoch runs a wider spread: alpha 1.30 and
# 1.46 in two pairs of runs)
PLAN = [
    "lr_total_epochs=4",
    "batch_size=2",
    "lr_decay_fraction=null",
    "learning_rate=0.005",
    "training_module.loss.coeffs.born_effective_charges=1.0",
]


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
    for path in sorted(
        (out / "log").glob("chunk_???/metrics.csv")
    ):  # finished attempts
        for row in csv.DictReader(open(path)):
            if row.get("val0_epoch/forces_rmse"):
                rows[int(row["epoch"])] = {
                    k: float(v) for k, v in row.items() if v not in ("", None)
                }
    return rows


def base_command(data):
    return [
        *VERB,
        "--dataset",
        "analytic",
        "--data-file",
        str(data),
        "--model",
        "allegro_pol_small",
    ]


@pytest.fixture(scope="module")
def straight(tiny_data, tmp_path_factory):
    """An uninterrupted 4-epoch run (one chunk), shared by the tests of this module."""
    out = tmp_path_factory.mktemp("runs") / "straight"
    run(
        base_command(tiny_data)
        + [str(out), *PLAN, "--chunk-epochs", "4", "--chunks", "1"]
    )
    return out


def assert_ends_within_noise(a, b):
    """The last learning-curve rows ``a`` (uninterrupted) and ``b`` (resumed) agree within noise.

    The random projections of Z* drawn after a restart differ from those of the uninterrupted
    run, so the two are not bit-identical; 0.8-1.25 is the spread of such reruns.
    """
    assert int(a[-1]["epochs"]) == int(b[-1]["epochs"]) == 4  # same epoch count
    for column in (
        "forces_rmse_meV_A",
        "Zstar_rmse_e",
        "alpha_rmse_eA2_V",
        "P_rmse_eA",
    ):
        ratio = float(b[-1][column]) / float(a[-1][column])
        assert 0.8 < ratio < 1.25, (column, ratio)


def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(
    tiny_data, straight, tmp_path
):
    base = base_command(tiny_data)
    chunked = tmp_path / "chunked"
    run(base + [str(chunked), *PLAN, "--chunk-epochs", "1", "--chunks", "1"])
    # the same command again neither overwrites nor continues without being told
    refused = run(
        base + [str(chunked), *PLAN, "--chunk-epochs", "1", "--chunks", "2"],
        check=False,
    )
    assert refused.returncode != 0 and "--resume" in refused.stderr
    # a longer second chunk (the chunk length may change on resume: 1 + 3 epochs)
    run(
        base + [str(chunked), *PLAN, "--chunk-epochs", "3", "--chunks", "2", "--resume"]
    )
    replans = json.loads((chunked / "learning_curve.json").read_text())["replans"]
    assert replans == [{"from_chunk": 2, "chunk_epochs": 3}]

    a = list(csv.DictReader(open(straight / "learning_curve.csv")))
    b = list(csv.DictReader(open(chunked / "learning_curve.csv")))
    assert len(a) == 1 and len(b) == 2
    assert_ends_within_noise(a, b)
    va, vb = val_rows(straight), val_rows(chunked)
    assert sorted(va) == sorted(vb) == [0, 1, 2, 3]
    # same split, same start: before the interruption the runs are the same computation
    for epoch in (0,):
        for key in ("val0_epoch/forces_rmse", "val0_epoch/born_effective_charges_rmse"):
            assert vb[epoch][key] == pytest.approx(va[epoch][key], rel=1e-4), (
                epoch,
                key,
            )
    # the resumed run continued (optimizer, schedule, EMA restored): see assert_ends_within_noise
    assert float(b[-1]["forces_rmse_meV_A"]) < float(b[0]["forces_rmse_meV_A"])
    # CPU time is carried across the restart
    assert float(b[1]["cpu_hours"]) > float(b[0]["cpu_hours"]) > 0
    per_epoch = [
        float(r["cpu_hours"]) for r in csv.DictReader(open(chunked / "val_curve.csv"))
    ]
    assert len(per_epoch) == 4 and all(
        x < y for x, y in zip(per_epoch, per_epoch[1:])
    ), per_epoch


def _saved_epoch(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"])


def test_run_killed_mid_epoch_resumes_from_its_last_checkpoint(
    tiny_data, straight, tmp_path
):
    """SIGKILL to the whole run (train-long and nequip-train) in the middle of the third
    epoch, between two checkpoints; ``--resume`` continues from ``last.ckpt`` (saved atomically
    by Lightning, so the kill cannot leave it half-written) and ends like the uninterrupted run."""
    base = base_command(tiny_data)
    killed = tmp_path / "killed"
    command = base + [str(killed), *PLAN, "--chunk-epochs", "4", "--chunks", "1"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,  # its own process group: the kill reaches nequip-train too
    )
    last = killed / "run" / "last.ckpt"
    saves, seen, deadline = [], None, time.time() + 600
    try:
        # each epoch ends with a new last.ckpt (a new file: Lightning writes it atomically)
        while len(saves) < 2:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no checkpoints within 600 s"
            if last.exists():
                stat = last.stat()
                key = (stat.st_ino, stat.st_mtime_ns)
                if key != seen:
                    seen = key
                    saves.append(time.time())
            time.sleep(0.1)
        # into the next epoch: a third of an epoch after the second checkpoint
        time.sleep(max(0.3 * (saves[1] - saves[0]), 0.5))
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    epoch_at_kill = _saved_epoch(last)
    assert epoch_at_kill < 3, "the kill came after the last epoch"
    assert not (killed / "learning_curve.csv").exists()  # the chunk never finished

    run(base + [str(killed), *PLAN, "--chunk-epochs", "4", "--chunks", "1", "--resume"])
    a = list(csv.DictReader(open(straight / "learning_curve.csv")))
    b = list(csv.DictReader(open(killed / "learning_curve.csv")))
    assert len(b) == 1
    assert_ends_within_noise(a, b)
    # the resumed attempt trained only the epochs after the last checkpoint; the interrupted
    # attempt's log is kept beside it
    assert (killed / "log" / "chunk_001.interrupted1").is_dir()
    vb = val_rows(killed)
    assert sorted(vb) == list(range(epoch_at_kill + 1, 4)), sorted(vb)
    # the same split: the validation of the first epoch after the restart is that of the
    # uninterrupted run's same epoch within noise
    va = val_rows(straight)
    epoch = epoch_at_kill + 1
    ratio = vb[epoch]["val0_epoch/forces_rmse"] / va[epoch]["val0_epoch/forces_rmse"]
    assert 0.8 < ratio < 1.25, ratio


def test_last_checkpoint_is_the_last_epoch_even_when_validation_stalls(
    tiny_data, tmp_path
):
    """With the learning rate at zero the validation score never improves after the first
    epoch, so best.ckpt stays at the first epoch; last.ckpt, which restarts continue from, must
    still hold the last one (with Lightning's save_last it followed the best one, and a restart
    silently dropped every epoch since the last improvement). Epochs are counted from 0."""
    out = tmp_path / "stalled"
    run(
        base_command(tiny_data)
        + [str(out), "--chunk-epochs", "3", "--chunks", "1", "learning_rate=0.0"]
        + ["batch_size=2", "lr_total_epochs=3"]
    )
    assert _saved_epoch(out / "run" / "last.ckpt") == 2
    assert _saved_epoch(out / "run" / "best.ckpt") == 0
    # the learning curve says which epoch its test RMSEs are of (counted from 1)
    rows = list(csv.DictReader(open(out / "learning_curve.csv")))
    assert [(int(r["epochs"]), int(r["tested_epoch"])) for r in rows] == [(3, 1)]


def test_wall_budget_sizes_the_last_chunk_to_the_plan(tiny_data, straight, tmp_path):
    """``--wall-seconds``: a budget spent after the first chunk stops there; a large one runs a
    pace-measuring chunk and then one chunk up to the planned length (never past it), and the run
    ends like the uninterrupted one."""
    base = base_command(tiny_data)
    timed = tmp_path / "timed"
    run(base + [str(timed), *PLAN, "--chunk-epochs", "1", "--wall-seconds", "1"])
    rows = list(csv.DictReader(open(timed / "learning_curve.csv")))
    assert [int(r["epochs"]) for r in rows] == [1]
    run(
        base
        + [
            str(timed),
            *PLAN,
            "--chunk-epochs",
            "1",
            "--wall-seconds",
            "3600",
            "--resume",
        ]
    )
    rows = list(csv.DictReader(open(timed / "learning_curve.csv")))
    assert [int(r["epochs"]) for r in rows] == [1, 2, 4]  # PLAN: lr_total_epochs=4
    assert_ends_within_noise(
        list(csv.DictReader(open(straight / "learning_curve.csv"))), rows
    )


def test_saved_state_continues_in_another_folder_with_its_best_model(
    tiny_data, tmp_path
):
    """nequip-pol save-run (nequip_pol.train.run_state.save_state) keeps last.ckpt and best.ckpt. Copied to another folder (a
    new machine, another path), the run continues with its best record pointing at the copy: with
    the learning rate at zero validation never beats the saved best score, so the next chunk tests
    the best model from before the move (a record left pointing at the old folder would fail the
    test). A state saved without best.ckpt forgets its best score instead: the first validation
    after the resume is the best one."""
    from nequip_pol.train.checkout import TrainingToolError
    from nequip_pol.train.run_state import save_state

    out = tmp_path / "run"
    settings = ["learning_rate=0.0", "batch_size=2", "lr_total_epochs=3"]
    run(
        base_command(tiny_data)
        + [str(out), "--chunk-epochs", "2", "--chunks", "1"]
        + settings
    )
    best_before = int(
        next(csv.DictReader(open(out / "learning_curve.csv")))["tested_epoch"]
    )
    saved, saved_lean = tmp_path / "saved", tmp_path / "saved_lean"
    assert save_state(out, saved) == 1
    assert save_state(out, saved_lean, with_best=False) == 1
    assert _saved_epoch(saved / "run" / "best.ckpt") == _saved_epoch(
        out / "run" / "best.ckpt"
    )
    assert not (saved_lean / "run" / "best.ckpt").exists()
    assert (saved / "log" / "chunk_001" / "metrics.csv").is_file()
    # refusals: an existing state needs --force; what is not a saved state is never touched
    with pytest.raises(TrainingToolError, match="--force"):
        save_state(out, saved)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(TrainingToolError, match="not a saved run state"):
        save_state(out, tmp_path / "notes", force=True)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"

    score = _best_record(out / "run" / "last.ckpt")["best_model_score"]
    shutil.rmtree(out)  # the old machine is gone
    # with best.ckpt, in another folder: the record moves along (Lightning restores it only when
    # the checkpoint's dirpath is the run's, else it starts a new best-v1.ckpt beside the copy);
    # without it, in the same folder: the record is reset (else it points at the missing file)
    for state, moved_to, tested in (
        (saved, tmp_path / "elsewhere", [best_before, best_before]),
        (saved_lean, out, [best_before, 3]),
    ):
        shutil.copytree(state, moved_to)
        run(
            base_command(tiny_data)
            + [str(moved_to), "--chunk-epochs", "1", "--chunks", "2", "--resume"]
            + settings
        )
        rows = list(csv.DictReader(open(moved_to / "learning_curve.csv")))
        assert [int(r["epochs"]) for r in rows] == [2, 3]
        assert _saved_epoch(moved_to / "run" / "last.ckpt") == 2
        assert [int(r["tested_epoch"]) for r in rows] == tested, moved_to.name
        record = _best_record(moved_to / "run" / "last.ckpt")
        assert record["best_model_path"] == str(
            (moved_to / "run" / "best.ckpt").resolve()
        )
        assert not list((moved_to / "run").glob("best-v*.ckpt"))
    assert _best_record(tmp_path / "elsewhere" / "run" / "last.ckpt")[
        "best_model_score"
    ] == pytest.approx(float(score))


def _best_record(ckpt: Path) -> dict:
    """The record of the monitoring ModelCheckpoint callback in a checkpoint."""
    import torch

    callbacks = torch.load(ckpt, map_location="cpu", weights_only=False)["callbacks"]
    (record,) = [
        v
        for k, v in callbacks.items()
        if k.startswith("ModelCheckpoint") and v.get("monitor")
    ]
    return record
