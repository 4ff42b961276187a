"""The ``nequip-pol`` command line: fast help, and the main job's verdict on its own result."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nequip_pol.cli import build_parser, main as cli_main


def test_help_imports_neither_torch_nor_nequip():
    """``nequip-pol --help`` (and each verb's help) must not pay for importing torch and nequip."""
    code = (
        "import sys; sys.argv = ['nequip-pol']\n"
        "import nequip_pol.cli as cli\n"
        "parser = cli.build_parser()\n"
        "parser.format_help()\n"
        "(verbs,) = [a for a in parser._actions if a.choices]\n"
        "for name in cli.SUBCOMMANDS: verbs.choices[name].format_help()\n"
        "heavy = sorted(m for m in ('torch', 'nequip', 'ase', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_every_verb_has_help():
    parser = build_parser()
    for name in ("parse-qe", "check-data", "demo"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([name, "--help"])
        assert exc.value.code == 0


def test_package_import_registers_keys_outside_the_command_line():
    code = (
        "import nequip_pol\n"
        "from nequip.data._key_registry import get_field_type\n"
        "print(get_field_type('electric_field'), get_field_type('polarizability'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["graph", "graph"]


# --------------------------------------------------------------------------- the main job's verdict


def _pairs(noise: float, seed: int = 0):
    from nequip_pol.demo import QUANTITIES

    rng = np.random.default_rng(seed)
    pairs = {}
    for key, _, _ in QUANTITIES:
        ref = rng.normal(size=500)
        pairs[key] = (ref, ref + noise * rng.normal(size=500))
    return pairs


def test_report_passes_accurate_and_flags_inaccurate_predictions():
    from nequip_pol.demo import TARGETS, errors, report

    table, missed = report(_pairs(0.01))
    assert missed == [] and "MISSED" not in table
    for key, (rmse, std, ratio) in errors(_pairs(0.01)).items():
        assert ratio == pytest.approx(0.01, rel=0.2)
    table, missed = report(_pairs(0.5))
    assert len(missed) == len(TARGETS) and table.count("<- MISSED") == len(TARGETS)


def test_epochs_trained_reads_progress_csv(tmp_path):
    from nequip_pol.demo import epochs_trained

    assert epochs_trained(tmp_path) == 0
    (tmp_path / "progress.csv").write_text("epoch,wall_s\n1,3.0\n2,6.1\n")
    assert epochs_trained(tmp_path) == 2


@pytest.mark.parametrize("passed, status", [(True, 0), (False, 3)])
def test_demo_exit_status(monkeypatch, tmp_path, passed, status):
    import nequip_pol.demo as demo

    seen = {}

    def fake_run_demo(out_dir, **kwargs):
        seen.update(kwargs)
        return {"passed": passed}

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert cli_main(["demo", str(tmp_path / "out")]) == status
    assert seen["epochs"] == demo.DEMO_EPOCHS


def test_demo_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert cli_main(["demo", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max-minutes", "-1"], "argument --max-minutes: must be positive"),
        (["--max-minutes", "0"], "argument --max-minutes: must be positive"),
        (["--max-minutes", "nan"], "argument --max-minutes: must be positive"),
        (["--max-minutes", "soon"], "argument --max-minutes: expected minutes"),
        (["--epochs", "0"], "argument --epochs: must be at least 1"),
        (["--epochs", "-3"], "argument --epochs: must be at least 1"),
        (["--epochs", "1.5"], "argument --epochs: expected a whole number"),
    ],
)
def test_demo_refuses_bad_numbers_before_any_work(
    argv, message, tmp_path, monkeypatch, capsys
):
    """A bad number stops ``demo`` at argument checking: error line, exit status 2, no training,
    no output folder."""
    import nequip_pol.demo as demo

    def no_work(*args, **kwargs):
        raise AssertionError("the demo started working on a bad argument")

    monkeypatch.setattr(demo, "run_demo", no_work)
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", str(tmp_path / "new"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "nequip-pol demo: error: " + message in err, err
    assert not (tmp_path / "new").exists()


def test_demo_console_script_refuses_a_negative_time_limit(tmp_path):
    """As a user types it: ``nequip-pol demo newdir --max-minutes -1`` (exit 2, one error line, no folder)."""
    script = Path(sys.executable).parent / "nequip-pol"
    proc = subprocess.run(
        [str(script), "demo", "newdir", "--max-minutes", "-1", "--epochs", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("nequip-pol demo: error: argument --max-minutes")
    )
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"max_minutes": 0.0}, {"max_minutes": -1.0}]
)
def test_run_demo_checks_its_settings_before_writing(kwargs, tmp_path):
    from nequip_pol.demo import run_demo

    with pytest.raises(ValueError, match="--epochs|--max-minutes"):
        run_demo(tmp_path / "new", **kwargs)
    assert not (tmp_path / "new").exists()


def _fake_nequip_train(calls, write_checkpoint):
    """A stand-in for the nequip-train subprocess: records its call, writes what a real run would."""

    def run(command, check, env, cwd):
        calls.append({"command": command, "env": env, "cwd": Path(cwd)})
        (
            Path(cwd) / "lightning_logs"
        ).mkdir()  # Lightning writes into the working folder
        if write_checkpoint:
            (Path(cwd) / "last.ckpt").write_text("")
            (Path(cwd) / "progress.csv").write_text("epoch,wall_s\n1,1.0\n")

    return run


def test_demo_time_limit_before_the_first_checkpoint_is_a_verdict(
    tmp_path, monkeypatch, capsys
):
    """The safety limit ending the training before any checkpoint (``--max-minutes`` tiny) gives a
    ``RESULT: MISSED`` line and exit status 3, not a traceback; nequip-train runs inside OUT/train,
    so Lightning's lightning_logs/ stays in the output folder."""
    import nequip_pol.demo as demo

    calls = []
    monkeypatch.setattr(
        demo.subprocess, "run", _fake_nequip_train(calls, write_checkpoint=False)
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "newdir"
    result = demo.run_demo(
        out, num_train=2, num_val=1, num_test=1, epochs=1, max_minutes=0.001, threads=2
    )
    assert not result["passed"] and result["epochs"] == 0
    printed = capsys.readouterr().out
    verdict = [line for line in printed.splitlines() if line.startswith("RESULT:")]
    assert len(verdict) == 1 and verdict[0].startswith(
        "RESULT: MISSED: no model to evaluate"
    ), printed
    assert "raise --max-minutes" in verdict[0]
    (call,) = calls
    assert call["cwd"] == out / "train"
    assert "++trainer.max_time=00:00:00:01" in call["command"]  # at least one second
    assert call["env"]["OMP_NUM_THREADS"] == "2"
    assert "training on 2 thread(s)" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newdir"]

    # through the command line: exit status 3
    monkeypatch.setattr(
        demo.subprocess, "run", _fake_nequip_train([], write_checkpoint=False)
    )
    monkeypatch.setattr(
        demo, "generate_dataset", lambda n, seed=0: demo_frames(2)
    )  # the frames are not used
    assert (
        cli_main(
            ["demo", str(tmp_path / "other"), "--epochs", "1", "--max-minutes", "0.001"]
        )
        == 3
    )


def demo_frames(n):
    from nequip_pol.reference import generate_dataset

    return generate_dataset(n, seed=0, supercell=(1, 1, 1))


def test_demo_threads(tmp_path, monkeypatch, capsys):
    """The demo trains on the threads of the verbs' rule (nequip_pol.threads): the count printed
    first is the OMP_NUM_THREADS of nequip-train; run_demo without a count chooses by the rule."""
    import nequip_pol.demo as demo
    from nequip_pol import threads as rule

    calls = []
    monkeypatch.setattr(
        demo.subprocess, "run", _fake_nequip_train(calls, write_checkpoint=False)
    )
    monkeypatch.setattr(demo, "generate_dataset", lambda n, seed=0: demo_frames(2))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(rule, "available_cores", lambda: 2)
    monkeypatch.setattr(rule.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    argv = ["demo", str(tmp_path / "a"), "--epochs", "1", "--max-minutes", "0.001"]
    assert cli_main(argv) == 3
    printed = capsys.readouterr().out
    # a training's batch is no system size: the free cores decide
    assert printed.splitlines()[0] == "threads: 2 (2 cores, load 0.2 -> 2 free)"
    assert calls[-1]["env"]["OMP_NUM_THREADS"] == "2"
    assert "OMP_NUM_THREADS" not in os.environ  # restored after the verb
    assert cli_main(argv[:2] + ["--threads", "1"] + argv[2:] + ["--force"]) == 3
    assert calls[-1]["env"]["OMP_NUM_THREADS"] == "1"
    # from Python, without a count: the rule (busy machine -> 1)
    monkeypatch.setattr(rule.os, "getloadavg", lambda: (1.9, 0.0, 0.0))
    capsys.readouterr()
    with pytest.raises(demo.TrainingStopped):
        demo.train(tmp_path / "b", tmp_path / "data.xyz", 1, 1, 0.001, 1)
    assert calls[-1]["env"]["OMP_NUM_THREADS"] == "1"
    assert (
        "training on 1 thread(s) (2 cores, load 1.9 -> 0 free)"
        in capsys.readouterr().out
    )


def test_bad_input_of_every_non_analysis_verb_comes_before_heavy_imports(tmp_path):
    """parse-qe, check-data and lammps build answer a usage error with one error line and exit
    status 2, as the console script, without importing torch or nequip and writing nothing."""
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "existing.xyz").write_text("keep me\n")
    cases = [
        (["check-data", "missing.xyz"], "check-data: error: missing.xyz: no such file"),
        (["check-data", "."], "check-data: error: .: is a folder"),
        (["check-data", "existing.xyz", "--key-map", "bec"], "expects FILE_KEY=KEY"),
        (["parse-qe", "missing_run", "-o", "out.xyz"], "no such run folder or XML"),
        (["parse-qe", ".", "-o", "existing.xyz"], "output file exists"),
        (["parse-qe", ".", "-o", "."], "is a folder; give the path"),
        (["lammps", "build", "a_file"], "a_file is a file; give the folder"),
    ]
    code = (
        "import sys, json; sys.argv[0] = 'nequip-pol'; from nequip_pol.cli import main\n"
        f"rc = [main(argv) for argv in {[argv for argv, _ in cases]!r}]\n"
        "print(json.dumps([rc, [m for m in ('torch', 'nequip') if m in sys.modules]]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    import json

    codes, heavy = json.loads(res.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases) and heavy == [], res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == len(cases), res.stderr
    for (argv, expected), line in zip(cases, lines):
        assert line.startswith(f"nequip-pol {argv[0]}") and expected in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "existing.xyz"]
    assert (tmp_path / "existing.xyz").read_text() == "keep me\n"
