"""The tree passes ``ruff check`` and ``ruff format --check`` (configured in pyproject.toml;
ruff is in the ``test`` extra). CI runs the test suite, so this is the lint check of CI."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed: pip install -e '.[test]'")
    proc = subprocess.run(
        [ruff, *command], cwd=str(REPO), capture_output=True, text=True
    )
    assert proc.returncode == 0, (
        f"ruff {' '.join(command)} found problems (fix: ruff check --fix . / ruff format .):\n"
        + (proc.stdout + proc.stderr)[-4000:]
    )
