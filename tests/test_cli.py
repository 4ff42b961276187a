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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["graph", "graph"]


# --------------------------------------------------------------------------- the main job's verdict


def _pairs(noise: float, seed: int = 0):
    from nequip_pol.reference.demo import QUANTITIES

    rng = np.random.default_rng(seed)
    pairs = {}
    for key, _, _ in QUANTITIES:
        ref = rng.normal(size=500)
        pairs[key] = (ref, ref + noise * rng.normal(size=500))
    return pairs


def test_report_passes_accurate_and_flags_inaccurate_predictions():
    from nequip_pol.reference.demo import TARGETS, errors, report

    table, missed = report(_pairs(0.01))
    assert missed == [] and "MISSED" not in table
    for key, (rmse, std, ratio) in errors(_pairs(0.01)).items():
        assert ratio == pytest.approx(0.01, rel=0.2)
    table, missed = report(_pairs(0.5))
    assert len(missed) == len(TARGETS) and table.count("<- MISSED") == len(TARGETS)


def test_epochs_trained_reads_progress_csv(tmp_path):
    from nequip_pol.reference.demo import epochs_trained

    assert epochs_trained(tmp_path) == 0
    (tmp_path / "progress.csv").write_text("epoch,wall_s\n1,3.0\n2,6.1\n")
    assert epochs_trained(tmp_path) == 2


@pytest.mark.parametrize("passed, status", [(True, 0), (False, 3)])
def test_demo_exit_status(monkeypatch, tmp_path, passed, status):
    import nequip_pol.reference.demo as demo

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
    assert cli_main(["demo", str(tmp_path / "new"), "--epochs", "0"]) == 2
    assert not (tmp_path / "new").exists()
