"""Per-atom fields on the analytic reference materials: exact E, F, p_i under a non-uniform field
(finite differences), the uniform limit, and the exact calculator with a field of position
(forces with the field-gradient term against finite differences of the re-sampled energy)."""

import numpy as np
import pytest
from ase import units
from ase.md.verlet import VelocityVerlet

from nequip_pol.integrations.md import thermalize
from nequip_pol.reference import (
    AnalyticFerroelectric,
    AnalyticPolarMaterial,
    ReferenceMaterialCalculator,
    ideal_structure,
)

FIELD = np.array([0.02, -0.01, 0.05])
MATERIALS = {
    "paraelectric": AnalyticPolarMaterial,
    "ferroelectric": AnalyticFerroelectric,
}


@pytest.fixture(scope="module", params=sorted(MATERIALS))
def material(request):
    return MATERIALS[request.param]()


@pytest.fixture
def atoms():
    a = ideal_structure((2, 2, 2))
    a.rattle(0.05, seed=3)
    return a


def half_cell(atoms, value=(0.0, 0.0, 0.2)):
    """The field in one half of the cell only (x below half the cell length)."""
    inside = atoms.positions[:, 0] < 0.5 * atoms.cell[0, 0]
    return inside[:, None] * np.asarray(value)[None, :]


def tip(positions, t=0.0, centre=(4.0, 4.0, 6.0), width=2.0, strength=0.3):
    """A Gaussian 'tip' profile E(r) = s exp(-|r - c|^2 / 2w^2) (0.2, -0.1, 1), V/A."""
    d = positions - np.asarray(centre)
    amplitude = strength * np.exp(-(d * d).sum(-1) / (2 * width**2))
    return amplitude[:, None] * np.array([0.2, -0.1, 1.0])[None, :]


def tip_gradient(positions, t=0.0, centre=(4.0, 4.0, 6.0), width=2.0, strength=0.3):
    """dE_a/dr_b of :func:`tip`, (N, 3, 3)."""
    d = positions - np.asarray(centre)
    field = tip(positions, t, centre, width, strength)
    return -field[:, :, None] * d[:, None, :] / width**2


def test_uniform_atomic_field_equals_homogeneous_field(material, atoms):
    homogeneous = material.properties(atoms, FIELD, dipoles=True)
    uniform = np.tile(FIELD, (len(atoms), 1))
    for field, atomic in ((None, uniform), (0.4 * FIELD, 0.6 * uniform)):
        per_atom = material.properties(atoms, field, atomic_field=atomic)
        for key, value in homogeneous.items():
            np.testing.assert_allclose(per_atom[key], value, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(
        homogeneous["atomic_dipoles"].sum(0), homogeneous["polarization"], atol=1e-12
    )
    # the homogeneous path without a per-atom field is unchanged (no atomic dipoles asked)
    plain = material.properties(atoms, FIELD)
    assert "atomic_dipoles" not in plain
    assert plain["total_energy"] == pytest.approx(
        homogeneous["total_energy"], abs=1e-12
    )


@pytest.mark.parametrize("profile", ["half_cell", "tip"])
def test_non_uniform_field_finite_differences(material, atoms, profile):
    """F at fixed per-atom field values, p_i = -dE/dE_i, P = -dE/dE_uniform = sum_i p_i,
    Z* = dP/dR and alpha = dP/dE_uniform, against central differences."""
    atomic = half_cell(atoms) if profile == "half_cell" else tip(atoms.positions)
    props = material.properties(atoms, FIELD, atomic_field=atomic)

    def energy(a=atoms, field=FIELD, local=atomic):
        return material.properties(a, field, response=False, atomic_field=local)[
            "total_energy"
        ]

    h = 1e-5
    for i, b in [(0, 2), (9, 0), (21, 1), (len(atoms) - 1, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, b] += h
        minus.positions[i, b] -= h
        fd = -(energy(plus) - energy(minus)) / (2 * h)
        assert props["forces"][i, b] == pytest.approx(fd, abs=1e-7)
        dp = (
            material.properties(plus, FIELD, response=False, atomic_field=atomic)[
                "polarization"
            ]
            - material.properties(minus, FIELD, response=False, atomic_field=atomic)[
                "polarization"
            ]
        ) / (2 * h)
        np.testing.assert_allclose(
            props["born_effective_charges"][i, :, b], dp, atol=1e-6
        )
    h = 1e-4
    for i in (0, 9, 21):
        for a in range(3):
            up, down = atomic.copy(), atomic.copy()
            up[i, a] += h
            down[i, a] -= h
            fd = -(energy(local=up) - energy(local=down)) / (2 * h)
            assert props["atomic_dipoles"][i, a] == pytest.approx(fd, abs=1e-8)
    for a in range(3):
        step = np.zeros(3)
        step[a] = h
        fd = -(energy(field=FIELD + step) - energy(field=FIELD - step)) / (2 * h)
        assert props["polarization"][a] == pytest.approx(fd, abs=1e-8)
        dp = (
            material.properties(
                atoms, FIELD + step, response=False, atomic_field=atomic
            )["polarization"]
            - material.properties(
                atoms, FIELD - step, response=False, atomic_field=atomic
            )["polarization"]
        ) / (2 * h)
        np.testing.assert_allclose(props["polarizability"][:, a], dp, atol=1e-8)
    np.testing.assert_allclose(
        props["atomic_dipoles"].sum(0), props["polarization"], atol=1e-12
    )
    # the field acts where it is: in the half-cell profile, atoms outside see none
    if profile == "half_cell":
        outside = ~atomic.any(axis=1)
        zero = material.properties(atoms, FIELD, dipoles=True)
        np.testing.assert_allclose(
            props["atomic_dipoles"][outside],
            zero["atomic_dipoles"][outside],
            atol=1e-12,
        )
        assert not np.allclose(
            props["atomic_dipoles"][~outside], zero["atomic_dipoles"][~outside]
        )


@pytest.mark.parametrize("gradient", ["finite_differences", "analytic"])
def test_calculator_forces_of_a_field_of_position(atoms, gradient):
    """A callable field E(r): the forces are -dE/dR_i with the field re-sampled at the displaced
    positions (the fixed-value forces plus sum_a p_ia dE_a/dr_ib)."""
    calc = ReferenceMaterialCalculator(
        field=FIELD,
        atomic_field=tip,
        atomic_field_gradient=tip_gradient if gradient == "analytic" else gradient,
    )
    atoms.calc = calc
    forces = atoms.get_forces()
    fixed = calc.evaluate(
        atoms, FIELD, response=False, atomic_field=tip(atoms.positions)
    )
    correction = forces - fixed["forces"]
    assert np.abs(correction).max() > 1e-3  # the test would pass trivially without it
    np.testing.assert_allclose(
        correction,
        np.einsum("ia,iab->ib", fixed["atomic_dipoles"], tip_gradient(atoms.positions)),
        atol=1e-8 if gradient == "finite_differences" else 1e-12,
    )

    def resampled_energy(a):
        return calc.evaluate(a, FIELD, response=False, atomic_field=tip(a.positions))[
            "energy"
        ]

    h = 1e-5
    for i, b in [(0, 2), (9, 0), (21, 1), (33, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, b] += h
        minus.positions[i, b] -= h
        fd = -(resampled_energy(plus) - resampled_energy(minus)) / (2 * h)
        assert forces[i, b] == pytest.approx(fd, abs=1e-7)
    np.testing.assert_allclose(
        calc.get_atomic_dipoles(atoms).sum(0), calc.get_polarization(atoms), atol=1e-12
    )
    assert calc.num_evaluations == 1


def test_gradient_none_gives_fixed_value_forces(atoms):
    calc = ReferenceMaterialCalculator(atomic_field=tip, atomic_field_gradient=None)
    atoms.calc = calc
    fixed = calc.evaluate(
        atoms, None, response=False, atomic_field=tip(atoms.positions)
    )
    np.testing.assert_allclose(atoms.get_forces(), fixed["forces"], atol=0)
    # a uniform array equals the homogeneous field
    uniform = ReferenceMaterialCalculator(atomic_field=np.tile(FIELD, (len(atoms), 1)))
    homogeneous = ReferenceMaterialCalculator(field=FIELD)
    for prop in ("energy", "forces", "polarization", "born_effective_charges"):
        np.testing.assert_allclose(
            uniform.get_property(prop, atoms),
            homogeneous.get_property(prop, atoms),
            atol=1e-12,
        )


def test_nve_conserves_energy_only_with_the_gradient_forces():
    """Under a static field of position (a 1 V/A tip), kinetic + E(R, E(R)) is conserved with
    the field-gradient term in the forces: its range is integrator error, O(dt^2) (measured
    1.3e-4 eV/atom at 1 fs, 3.2e-5 at 0.5 fs; 2.4e-5 at 1 fs without any field, the tip's
    forces are larger). Without the term it is not (2.3e-3 eV/atom at both steps)."""

    def etot_range(gradient, dt_fs):
        a = ideal_structure((1, 1, 2))
        a.rattle(0.03, seed=1)
        thermalize(a, 300, rng=np.random.default_rng(1))
        strong = dict(centre=(2.0, 2.0, 4.0), width=1.5, strength=1.0)
        a.calc = ReferenceMaterialCalculator(
            atomic_field=lambda r, t: tip(r, t, **strong),
            atomic_field_gradient=gradient,
        )
        dyn = VelocityVerlet(a, timestep=dt_fs * units.fs)
        etot = []
        dyn.attach(lambda: etot.append(a.get_total_energy()), interval=1)
        dyn.run(int(round(100 / dt_fs)))
        return np.ptp(etot) / len(a)

    with_term = etot_range("finite_differences", 1.0)
    half_step = etot_range("finite_differences", 0.5)
    without = etot_range(None, 1.0)
    print(
        f"NVE, tip field: {with_term:.3g} (1 fs), {half_step:.3g} (0.5 fs), {without:.3g} eV/atom"
    )
    assert with_term < 3e-4
    assert 2.5 < with_term / half_step < 6.0
    assert without > 10 * with_term


def test_cache_and_time_dependent_atomic_field(atoms):
    calc = ReferenceMaterialCalculator(atomic_field=lambda r, t: 0.01 * t * tip(r))
    atoms.calc = calc
    atoms.get_potential_energy()
    calc.time = 0.0  # unchanged: cached
    atoms.get_potential_energy()
    assert calc.num_evaluations == 1
    calc.time = 2.0  # the values change: recomputed
    e2 = atoms.get_potential_energy()
    assert calc.num_evaluations == 2
    np.testing.assert_allclose(calc.results_atomic_field, 0.02 * tip(atoms.positions))
    calc.set_atomic_field(calc.atomic_field)  # the same field: still cached
    atoms.get_potential_energy()
    assert calc.num_evaluations == 2
    calc.set_atomic_field(None)
    e0 = atoms.get_potential_energy()
    assert calc.num_evaluations == 3 and e0 != e2
    assert calc.results_atomic_field is None


def test_bad_atomic_fields(atoms):
    n = len(atoms)
    with pytest.raises(ValueError, match=r"shape \(number of atoms, 3\)"):
        ReferenceMaterialCalculator(atomic_field=np.zeros((n, 2)))
    bad = np.zeros((n, 3))
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite values \(atoms \[4\]"):
        ReferenceMaterialCalculator(atomic_field=bad)
    with pytest.raises(ValueError, match="has no gradient"):
        ReferenceMaterialCalculator(
            atomic_field=np.zeros((n, 3)), atomic_field_gradient=tip_gradient
        )
    with pytest.raises(ValueError, match="`gradient` of a per-atom field"):
        ReferenceMaterialCalculator(atomic_field=tip, atomic_field_gradient="exact")
    atoms.calc = ReferenceMaterialCalculator(atomic_field=np.zeros((n - 1, 3)))
    with pytest.raises(ValueError, match=rf"\({n}, 3\).*got shape \({n - 1}, 3\)"):
        atoms.get_potential_energy()
    atoms.calc = ReferenceMaterialCalculator(atomic_field=lambda r, t: np.zeros(3))
    with pytest.raises(ValueError, match="returned by the per-atom field function"):
        atoms.get_potential_energy()
    atoms.calc = ReferenceMaterialCalculator(
        atomic_field=tip, atomic_field_gradient=lambda r, t: np.zeros((n, 3))
    )
    with pytest.raises(ValueError, match=r"gradient .* \(N, 3, 3\)"):
        atoms.get_forces()

    class Homogeneous:
        def properties(self, atoms, field, response=True):
            return AnalyticPolarMaterial().properties(atoms, field, response)

    atoms.calc = ReferenceMaterialCalculator(
        Homogeneous(), atomic_field=np.zeros((n, 3))
    )
    with pytest.raises(ValueError, match="takes no per-atom field"):
        atoms.get_potential_energy()
