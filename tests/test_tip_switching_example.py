"""examples/batio3_tip_switching.py: the tip's field profile and its gradient, and a short run.

The example is imported from its file (it is not a package module). The run uses the exact
analytic ferroelectric (``reference:ferroelectric``) on a 3x3x1 cell for a few steps: it checks
the workflow and its outputs (figure, per-cell arrays), not the physics (docs/tip_switching.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "batio3_tip_switching.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("batio3_tip_switching", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CELL = np.diag([6 * 3.966, 5 * 3.966, 2 * 4.304])
CENTRE = 0.5 * (CELL[0] + CELL[1])


def test_field_profile_and_gradient(example):
    rng = np.random.default_rng(0)
    # points all over the cell, beyond it (unwrapped) and next to its edges
    positions = rng.uniform(-0.2, 1.2, size=(200, 3)) @ CELL
    field, gradient = example.gaussian_tip_field(positions, CELL, CENTRE, 0.3, 4.5)
    assert field.shape == (200, 3) and gradient.shape == (200, 3, 3)
    assert np.all(field[:, :2] == 0.0) and np.all(field[:, 2] <= 0.0)
    assert np.all(gradient[:, :2] == 0.0) and np.all(gradient[:, :, 2] == 0.0)

    # the analytic gradient against central differences of the field
    h = 1e-5
    numeric = np.zeros_like(gradient)
    for b in range(3):
        shift = np.zeros(3)
        shift[b] = h
        plus = example.gaussian_tip_field(positions + shift, CELL, CENTRE, 0.3, 4.5)[0]
        minus = example.gaussian_tip_field(positions - shift, CELL, CENTRE, 0.3, 4.5)[0]
        numeric[:, :, b] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(gradient, numeric, atol=1e-8)

    # a sum over many periodic images of the Gaussian (brute force): the example's nearest
    # images give the same field; on the axis it is -E_tip up to the images (1e-4 here)
    def brute_force(points):
        total = np.zeros(len(points))
        for n1 in range(-4, 5):
            for n2 in range(-4, 5):
                rho = (points - CENTRE + n1 * CELL[0] + n2 * CELL[1])[:, :2]
                total += np.exp(-(rho**2).sum(-1) / (2 * 4.5**2))
        return -0.3 * total

    np.testing.assert_allclose(field[:, 2], brute_force(positions), atol=1e-9)
    on_axis = CENTRE + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 7.0]])
    np.testing.assert_allclose(
        example.gaussian_tip_field(on_axis, CELL, CENTRE, 0.3, 4.5)[0][:, 2],
        -0.3,
        rtol=2e-4,
    )
    shifted = positions + CELL[0] - 2 * CELL[1]
    moved, moved_gradient = example.gaussian_tip_field(shifted, CELL, CENTRE, 0.3, 4.5)
    np.testing.assert_allclose(moved, field, atol=1e-12)
    np.testing.assert_allclose(moved_gradient, gradient, atol=1e-12)
    # rho: minimum image
    rho = example.in_plane_distance(
        CENTRE + np.array([[4.5, 0.0, 1.0], [0.5 * CELL[0, 0], 0.0, 0.0]]),
        CELL,
        CENTRE,
    )
    np.testing.assert_allclose(rho, [4.5, 0.5 * CELL[0, 0]])


def test_gradient_forces_match_the_calculator_finite_differences(example):
    """Forces with the example's analytic gradient equal those with the calculator's own
    central differences of the field (exact reference material)."""
    from nequip_pol.integrations.model_arguments import load_calculator

    atoms = example.tetragonal_supercell(4.0, 4.0, (3, 3, 1), ti_shift=0.1)
    atoms.rattle(0.05, seed=1)
    cell = atoms.cell.array
    centre = 0.5 * (cell[0] + cell[1]) + [0.7, -0.4, 0.0]

    def field(positions, t):
        return example.gaussian_tip_field(positions, cell, centre, 0.1, 3.0)[0]

    def gradient(positions, t):
        return example.gaussian_tip_field(positions, cell, centre, 0.1, 3.0)[1]

    forces = {}
    for how in (gradient, "finite_differences", None):
        calc = load_calculator("reference:ferroelectric")
        calc.set_atomic_field(field, gradient=how)
        atoms.calc = calc
        forces[how if isinstance(how, str) or how is None else "analytic"] = (
            atoms.get_forces().copy()
        )
    np.testing.assert_allclose(
        forces["analytic"], forces["finite_differences"], atol=1e-7
    )
    # the gradient term is there (and not negligible) for this narrow tip
    assert np.abs(forces["analytic"] - forces[None]).max() > 1e-4


def test_unit_cells_share_every_atom_once(example):
    atoms = example.tetragonal_supercell(3.966, 4.304, (3, 2, 2), ti_shift=0.2)
    weights, frac = example.unit_cells(atoms)
    assert weights.shape == (12, len(atoms))
    np.testing.assert_allclose(weights.sum(1), 5.0)
    np.testing.assert_allclose(weights.sum(0), 1.0)
    index = example.grid_indices(frac, (3, 2, 2))
    assert len({tuple(i) for i in index}) == 12


def test_short_run_on_the_reference_material(example, tmp_path, capsys):
    out = tmp_path / "tip"
    argv = [
        "--model",
        "reference:ferroelectric",
        "--out",
        str(out),
        "--repeat",
        "3",
        "3",
        "1",
        "--e-tip",
        "0.12",
        "--width",
        "3.0",
        "--temperature",
        "30",
        "--equilibrate-fs",
        "8",
        "--duration-fs",
        "16",
        "--after-fs",
        "8",
        "--sample-interval",
        "2",
        "--average-fs",
        "8",
    ]
    assert example.main(argv) == 0
    text = capsys.readouterr().out
    assert "switched cells" in text and "with the tip" in text
    assert (out / "tip_switching.png").stat().st_size > 10_000
    data = np.load(out / "cells.npz")
    # samples at t = 0 and every 2 steps of 2 fs over 32 fs; 9 cells
    assert data["u_z"].shape == data["p_z"].shape == (9, 9)
    np.testing.assert_allclose(data["time_fs"], np.arange(0.0, 33.0, 4.0))
    assert set(data["phase"]) == {"equilibrate", "tip", "after"}
    # the per-cell dipoles add up to the logged P (the logger's rows are the samples)
    from nequip_pol.integrations.md import read_polarization_log

    log = read_polarization_log(out / "polarization.csv")
    np.testing.assert_allclose(data["p_z"].sum(1), log["Pz"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log["time_fs"], data["time_fs"])
    # a second run into the same folder needs --force
    assert example.main(argv) == 2
    assert "--force" in capsys.readouterr().err
