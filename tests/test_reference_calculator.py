"""The exact calculator of the reference material against the material's own autograd values."""

import numpy as np
import pytest
from ase.md.verlet import VelocityVerlet
from ase import units

from nequip_pol.reference import (
    AnalyticPolarMaterial,
    ReferenceMaterialCalculator,
    ideal_structure,
)


@pytest.fixture
def atoms():
    a = ideal_structure((2, 2, 2))
    a.rattle(0.05, seed=3)
    return a


def test_properties_match_material(atoms):
    field = np.array([0.02, -0.01, 0.05])
    ref = AnalyticPolarMaterial().properties(atoms, field)
    calc = ReferenceMaterialCalculator(field=field)
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(ref["total_energy"], abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], atol=1e-12)
    np.testing.assert_allclose(
        calc.get_polarization(atoms), ref["polarization"], atol=1e-12
    )
    assert calc.num_evaluations == 1  # E, F, P from one evaluation without Z*
    np.testing.assert_allclose(
        calc.get_born_effective_charges(atoms),
        ref["born_effective_charges"],
        atol=1e-12,
    )
    np.testing.assert_allclose(
        calc.get_polarizability(atoms), ref["polarizability"], atol=1e-12
    )
    stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(stress, ref["stress"], atol=1e-12)


def test_forces_are_minus_gradient_at_field(atoms):
    calc = ReferenceMaterialCalculator(field=[0.0, 0.0, 0.1])
    atoms.calc = calc
    f = atoms.get_forces()
    h = 1e-5
    for i, k in [(0, 2), (5, 0), (17, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd = -(
            calc.evaluate(plus, calc.field_at())["energy"]
            - calc.evaluate(minus, calc.field_at())["energy"]
        ) / (2 * h)
        assert f[i, k] == pytest.approx(fd, abs=1e-6)


def test_time_dependent_field_follows_md_time(atoms):
    calc = ReferenceMaterialCalculator(field=lambda t: [0.0, 0.0, 0.001 * t])
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    calc.attach_dynamics(dyn)
    dyn.run(4)
    assert calc.time == pytest.approx(2.0)
    assert calc.results_field[2] == pytest.approx(0.002)


def test_bad_field_and_material():
    with pytest.raises(ValueError, match="electric field"):
        ReferenceMaterialCalculator(field=[0.0, 0.1])
    with pytest.raises(ValueError, match="NaN"):
        ReferenceMaterialCalculator(field=[0.0, np.nan, 0.0])
    with pytest.raises(TypeError, match="properties"):
        ReferenceMaterialCalculator(material=object())


def test_polarization_logger_records_exact_calculator(atoms, tmp_path):
    """The MD logger takes the exact calculator too; its P column is the material's P."""
    from nequip_pol.integrations.md import PolarizationLogger, read_polarization_log

    calc = ReferenceMaterialCalculator(field=lambda t: [0.0, 0.0, 0.01 * t])
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    calc.attach_dynamics(dyn)
    with PolarizationLogger(
        atoms, tmp_path / "pol.csv", dyn=dyn, reference="initial"
    ) as log:
        dyn.attach(log, interval=1)
        dyn.run(3)
    data = read_polarization_log(tmp_path / "pol.csv")
    np.testing.assert_allclose(data["time_fs"], [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(data["Ez"], 0.01 * data["time_fs"])
    exact = AnalyticPolarMaterial().properties(atoms, [0.0, 0.0, 0.03], response=False)[
        "polarization"
    ]
    np.testing.assert_allclose(
        [data["Px"][-1], data["Py"][-1], data["Pz"][-1]], exact, atol=1e-9
    )
    with pytest.raises(TypeError, match="field-aware"):
        from ase.calculators.emt import EMT

        atoms.calc = EMT()
        PolarizationLogger(atoms, tmp_path / "other.csv")
