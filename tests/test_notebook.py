"""examples/tutorial.ipynb runs from top to bottom without an error (nbclient + ipykernel).

The notebook is read from the repository and executed in memory with its working folder in
``tmp_path``: nothing is written into the repository (the executed copy is discarded). The kernel
is this interpreter (a kernelspec written into ``tmp_path``, found first through
``JUPYTER_PATH``), with the Agg matplotlib backend and one thread. About 20 s on one CPU core;
each cell may take ``CELL_TIMEOUT`` seconds.
"""

import json
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="the notebook test needs nbformat: pip install -e '.[test]'"
)
nbclient = pytest.importorskip(
    "nbclient", reason="the notebook test needs nbclient: pip install -e '.[test]'"
)
pytest.importorskip(
    "ipykernel", reason="the notebook test needs ipykernel: pip install -e '.[test]'"
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "tutorial.ipynb"
KERNEL_NAME = "nequip-pol-test"
CELL_TIMEOUT = 300  # s per cell; the whole notebook takes ~20 s on one core


def _read_notebook():
    return nbformat.read(str(NOTEBOOK), as_version=4)


def _stdout(nb) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream" and out.name == "stdout"
    )


def test_notebook_is_committed_without_outputs():
    nb = _read_notebook()
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the tutorial has no code cells"
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"cells {dirty} of {NOTEBOOK.name} hold outputs: clear them before committing "
        "(jupyter nbconvert --clear-output --inplace examples/tutorial.ipynb)"
    )


def test_tutorial_notebook_runs(tmp_path, monkeypatch):
    import nequip_pol.models

    missing = {"sio2", "batio3"} - set(nequip_pol.models.available())
    if missing:
        pytest.skip(f"shipped models missing from this installation: {sorted(missing)}")

    # a kernelspec for this interpreter, found before any user or system "python3" spec
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "nequip-pol test",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    workdir = tmp_path / "work"
    workdir.mkdir()
    examples_before = sorted(p.name for p in NOTEBOOK.parent.iterdir())

    nb = _read_notebook()
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    elapsed = time.perf_counter() - start
    print(f"tutorial notebook: {elapsed:.1f} s")

    assert sorted(p.name for p in NOTEBOOK.parent.iterdir()) == examples_before, (
        "executing the notebook wrote next to it"
    )
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    text = _stdout(nb)
    # the results the narrative states: eps_inf, two routes to eps_0 that agree, a polar BaTiO3
    for line in ("eps_inf: perpendicular to c", "eps_0 (harmonic)", "LO-TO"):
        assert line in text, f"no {line!r} in the notebook's output:\n{text}"
    diff = float(re.search(r"between the routes: (\S+)", text).group(1))
    assert diff < 1e-2, text
    ps = float(re.search(r"P_s = (\S+) uC/cm\^2", text).group(1))
    off = float(re.search(r"Ti off-centring: (\S+) A", text).group(1))
    assert ps > 10.0 and off > 0.05, (
        f"the tutorial says BaTiO3 relaxes to a polar state; the model gave P_s = {ps} "
        f"uC/cm^2, Ti off-centring {off} A"
    )
