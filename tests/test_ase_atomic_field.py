"""Per-atom fields in the ASE calculator of the models and in the P(t) logger.

A small in-memory Allegro-pol model (float64, random weights) on a rattled 10-atom cell of the
analytic perovskite, evaluated eagerly with one thread, as in tests/test_md_field.py.
"""

import numpy as np
import pytest
from ase import units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet


from nequip_pol.guards import ExtrapolationError
from nequip_pol.integrations.md import (
    PolarizationLogger,
    read_polarization_log,
    thermalize,
)
from nequip_pol.reference.paraelectric import ideal_structure

TYPES = ["Ba", "Ti", "O"]
R_MAX = 4.0
FIELD = np.array([0.05, -0.02, 0.1])
PROPERTIES = (
    "energy",
    "energies",
    "forces",
    "stress",
    "polarization",
    "born_effective_charges",
    "polarizability",
    "atomic_dipoles",
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# the small float64 model and its calculator: one home, test_md_field.py
from test_md_field import make_calc, model  # noqa: E402,F401


@pytest.fixture
def atoms():
    a = ideal_structure((1, 1, 2))
    a.rattle(0.05, seed=2)
    return a


def tip(positions, t=0.0, centre=(2.0, 2.0, 6.0), width=2.0, strength=0.4):
    """A Gaussian 'tip' profile, V/A."""
    d = positions - np.asarray(centre)
    amplitude = strength * np.exp(-(d * d).sum(-1) / (2 * width**2))
    return amplitude[:, None] * np.array([0.2, -0.1, 1.0])[None, :]


def tip_gradient(positions, t=0.0, centre=(2.0, 2.0, 6.0), width=2.0, strength=0.4):
    d = positions - np.asarray(centre)
    return (
        -tip(positions, t, centre, width, strength)[:, :, None]
        * d[:, None, :]
        / width**2
    )


def test_uniform_atomic_field_equals_homogeneous_field(model, atoms):
    homogeneous = make_calc(model, field=FIELD)
    uniform = make_calc(model, atomic_field=np.tile(FIELD, (len(atoms), 1)))
    for prop in PROPERTIES:
        np.testing.assert_array_equal(
            uniform.get_property(prop, atoms), homogeneous.get_property(prop, atoms)
        )
    np.testing.assert_allclose(
        homogeneous.get_atomic_dipoles(atoms).sum(0),
        homogeneous.get_polarization(atoms),
        atol=1e-12,
    )
    assert uniform.num_evaluations == 1


@pytest.mark.parametrize("gradient", ["finite_differences", "analytic", None])
def test_forces_of_a_field_of_position(model, atoms, gradient):
    """Forces are -dE/dR with the field re-sampled at the displaced positions (the gradient
    term included), or at fixed field values with ``gradient=None``."""
    calc = make_calc(
        model,
        field=FIELD,
        atomic_field=tip,
        atomic_field_gradient=tip_gradient if gradient == "analytic" else gradient,
    )
    atoms.calc = calc
    forces = atoms.get_forces()
    fixed = calc.evaluate(atoms, FIELD, atomic_field=tip(atoms.positions))
    expected = fixed["forces"]
    if gradient is not None:
        term = np.einsum(
            "ia,iab->ib", fixed["atomic_dipoles"], tip_gradient(atoms.positions)
        )
        assert np.abs(term).max() > 1e-4  # the test would pass trivially without it
        expected = expected + term
    np.testing.assert_allclose(forces, expected, atol=1e-9)

    def energy(a):
        values = tip(a.positions) if gradient is not None else tip(atoms.positions)
        return calc.evaluate(a, FIELD, atomic_field=values)["energy"]

    h = 1e-5
    for i, b in [(0, 2), (4, 0), (9, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, b] += h
        minus.positions[i, b] -= h
        fd = -(energy(plus) - energy(minus)) / (2 * h)
        assert forces[i, b] == pytest.approx(fd, abs=1e-7)
    # p_i = -dE/dE_i
    values = tip(atoms.positions)
    for i, a in [(0, 2), (6, 0)]:
        up, down = values.copy(), values.copy()
        up[i, a] += 1e-4
        down[i, a] -= 1e-4
        fd = (
            -(
                calc.evaluate(atoms, FIELD, atomic_field=up)["energy"]
                - calc.evaluate(atoms, FIELD, atomic_field=down)["energy"]
            )
            / 2e-4
        )
        assert calc.get_atomic_dipoles(atoms)[i, a] == pytest.approx(fd, abs=1e-8)


def test_cache_follows_the_per_atom_field(model, atoms):
    calc = make_calc(model, atomic_field=lambda r, t: 0.01 * t * tip(r))
    atoms.calc = calc
    atoms.get_potential_energy()
    calc.time = 0.0
    atoms.get_forces()
    assert calc.num_evaluations == 1
    calc.time = 3.0
    atoms.get_potential_energy()
    assert calc.num_evaluations == 2
    np.testing.assert_allclose(calc.results_atomic_field, 0.03 * tip(atoms.positions))
    calc.set_atomic_field(calc.atomic_field)  # the same field: cached
    atoms.get_potential_energy()
    assert calc.num_evaluations == 2
    # the same values as an array: no gradient term any more, so new forces
    calc.set_atomic_field(calc.results_atomic_field)
    atoms.get_forces()
    assert calc.num_evaluations == 3
    calc.set_atomic_field(calc.results_atomic_field)
    atoms.get_forces()
    assert calc.num_evaluations == 3
    calc.set_atomic_field(None)
    atoms.get_potential_energy()
    assert calc.num_evaluations == 4 and calc.results_atomic_field is None


def test_bad_inputs_and_unsupported_modes(model, atoms):
    n = len(atoms)
    with pytest.raises(ValueError, match=r"shape \(number of atoms, 3\)"):
        make_calc(model, atomic_field=np.zeros(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        make_calc(model, atomic_field=np.full((n, 3), np.nan))
    atoms.calc = make_calc(model, atomic_field=np.zeros((n + 1, 3)))
    with pytest.raises(
        ValueError, match=rf"\({n}, 3\) in V/A, got shape \({n + 1}, 3\)"
    ):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="mode='full'"):
        make_calc(model, mode="linear", atomic_field=np.zeros((n, 3)))
    calc = make_calc(model, atomic_field=np.zeros((n, 3)))
    with pytest.raises(ValueError, match="mode='full'"):
        calc.set_mode("linear")
    linear = make_calc(model, mode="linear", field=FIELD)
    with pytest.raises(ValueError, match="mode='full'"):
        linear.set_atomic_field(tip)
    atoms.calc = linear
    with pytest.raises(PropertyNotImplementedError, match="mode='full'"):
        atoms.calc.get_atomic_dipoles(atoms)
    # a model without the input (a compiled model, an older package)
    inputs = [k for k in calc.input_keys if k != "atomic_electric_field"]
    with pytest.raises(ValueError, match="takes no per-atom field"):
        make_calc(model, input_keys=inputs, atomic_field=np.zeros((n, 3)))


def test_guard_checks_the_strongest_local_field(model, atoms):
    calc = make_calc(model, atomic_field=tip)
    calc.set_guard(
        "strict", ranges={"max_field": 0.2, "min_distance": {}, "species": TYPES}
    )
    atoms.calc = calc
    with pytest.raises(ExtrapolationError, match=r"\|E\| = "):
        atoms.get_potential_energy()  # the tip reaches ~0.4 V/A near its centre


def test_logger_records_atomic_dipoles_and_the_per_atom_field_work(model, tmp_path):
    """NVE under a time-dependent tip field: the CSV layout is unchanged, the .npy holds p_i of
    every row (summing to P), and etot - field_work is conserved (measured: residual 1e-4 eV
    for a field work of 0.08 eV over 100 fs)."""
    atoms = ideal_structure((1, 1, 2))
    atoms.rattle(0.03, seed=0)
    thermalize(atoms, 300, rng=np.random.default_rng(0))
    omega = 2 * np.pi / 60.0

    def field(r, t):
        return np.sin(omega * t) * tip(r, strength=0.6)

    def gradient(r, t):
        return np.sin(omega * t) * tip_gradient(r, strength=0.6)

    calc = make_calc(model, atomic_field=field, atomic_field_gradient=gradient)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    calc.attach_dynamics(dyn)
    with PolarizationLogger(
        atoms, tmp_path / "p.csv", dyn=dyn, atomic_dipoles=tmp_path / "p.npy"
    ) as log:
        dyn.attach(log, interval=1)
        dyn.run(100)
    data = read_polarization_log(tmp_path / "p.csv")
    plain = PolarizationLogger(atoms, None)
    assert list(data) == plain.columns
    dipoles = np.load(tmp_path / "p.npy")
    assert dipoles.shape == (101, len(atoms), 3)
    p = np.stack([data["Px"], data["Py"], data["Pz"]], 1)
    np.testing.assert_allclose(dipoles.sum(1), p, atol=1e-9)
    np.testing.assert_allclose(data["Ez"], 0.0)  # the homogeneous part
    residual = np.ptp(data["etot"] - data["field_work"])
    work = np.ptp(data["field_work"])
    print(f"per-atom field work {work:.3g} eV, residual {residual:.3g} eV")
    assert work > 5e-3
    assert residual < 0.02 * work
    # without the per-atom work the energy budget fails
    assert np.ptp(data["etot"]) > 10 * residual
    with pytest.raises(ValueError, match="records no atomic dipoles"):
        plain.atomic_dipole_frames
    with pytest.raises(ValueError, match=r"\.npy"):
        PolarizationLogger(atoms, None, atomic_dipoles=tmp_path / "p.csv")


def test_field_work_of_per_atom_values_set_by_hand(model, atoms):
    """Values changed between two rows: the work is -1/2 sum_i (p_i + p_i') . (E_i' - E_i)."""
    before, after = tip(atoms.positions), 1.5 * tip(atoms.positions)
    calc = make_calc(model, atomic_field=before)
    atoms.calc = calc
    log = PolarizationLogger(atoms, None, atomic_dipoles=True)
    log()
    calc.set_atomic_field(after)
    log()
    p0, p1 = log.atomic_dipole_frames
    expected = -0.5 * float(((p0 + p1) * (after - before)).sum())
    assert abs(expected) > 1e-4
    assert log.field_work == pytest.approx(expected, rel=1e-12)
