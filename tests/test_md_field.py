"""MD under a field with NequIPPolCalculator: conservation laws and the polarization log.

A small in-memory Allegro-pol model (float64, random weights: conservation does not need a
trained model) on a rattled 10-atom cell of the analytic perovskite, evaluated eagerly with one
thread (tiny graphs: intra-op threads only add overhead, ~30 ms per MD step).

Bounds, measured on this model (dt = 1 fs, 300 K, 300 fs):
- Velocity Verlet is symplectic: the energy error of a conservative system oscillates with
  amplitude O(dt^2) and does not drift. Measured: max-min of kinetic + E(R, E) = 1.3e-5 eV/atom
  at 1 fs, 5.3e-5 eV/atom at 2 fs (ratio 4.0 = dt^2). The test asserts < 5e-5 eV/atom at 1 fs,
  a ratio 2.5-6 between 2 fs and 1 fs (the error is integrator error, not an O(1)
  inconsistency between forces and energy), and a drift (mean of the last quarter minus the
  first quarter) below 1e-5 eV/atom. For scale, the field enthalpy -E.P varies by about
  1e-3 eV/atom along the same run: leaving it out of the energy, or the field out of the
  forces, breaks these bounds by more than 10x.
- Time-dependent field E(t) = E0 sin(omega t): d(kinetic + E(R, E(t)))/dt = -P.dE/dt, so the
  enthalpy change equals -integral P.dE/dt dt (trapezoid over the steps, error O(dt^2)). The
  residual is bounded by the same integrator error. Measured: residual 1.2e-4 eV for a work
  of 0.1 eV over 300 fs; asserted < 5e-4 eV. The naive clock (``calc.time = dyn.get_time()``
  in an observer) evaluates the field one step late; ``attach_dynamics`` does not.
"""

import copy

import numpy as np
import pytest
from ase import units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from hydra.utils import get_method

from nequip.data.transforms import (
    ChemicalSpeciesToAtomTypeMapper,
    NeighborListTransform,
)

from nequip_pol.integrations.ase import NequIPPolCalculator
from nequip_pol.integrations.md import (
    PolarizationLogger,
    read_polarization_log,
    thermalize,
)
from nequip_pol.reference.paraelectric import ideal_structure
from model_configs import ALLEGRO_POL

TYPES = ["Ba", "Ti", "O"]
R_MAX = 4.0


# small graphs: intra-op threads only add overhead (and are pathological on a loaded 2-core machine)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    config = copy.deepcopy(ALLEGRO_POL)
    config.update(
        type_names=TYPES,
        per_type_energy_shifts={t: 0.0 for t in TYPES},
        per_type_energy_scales={t: 1.0 for t in TYPES},
        model_dtype="float64",
    )
    return get_method(config.pop("_target_"))(**config).eval()


def make_calc(model, **kwargs):
    transforms = [
        ChemicalSpeciesToAtomTypeMapper(TYPES),
        NeighborListTransform(r_max=R_MAX),
    ]
    return NequIPPolCalculator(model, transforms=transforms, **kwargs)


def thermal_cell(seed=0):
    atoms = ideal_structure((1, 1, 2))
    atoms.rattle(0.03, seed=seed)
    thermalize(atoms, 300, rng=np.random.default_rng(seed))
    return atoms


def run_nve(model, field, dt_fs, duration_fs, tmp_path, name):
    atoms = thermal_cell()
    calc = make_calc(model, field=field)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    calc.attach_dynamics(dyn)
    path = tmp_path / f"{name}.csv"
    with PolarizationLogger(atoms, path, dyn=dyn, reference="initial") as log:
        dyn.attach(log, interval=1)
        dyn.run(int(round(duration_fs / dt_fs)))
    return read_polarization_log(path), len(atoms)


def quarter_drift(values):
    q = len(values) // 4
    return abs(values[-q:].mean() - values[:q].mean())


def test_nve_static_field_conserves_enthalpy(model, tmp_path):
    field = [0.1, -0.1, 0.3]
    log1, n = run_nve(model, field, 1.0, 300.0, tmp_path, "dt1")
    log2, _ = run_nve(model, field, 2.0, 300.0, tmp_path, "dt2")
    assert len(log1["etot"]) == 301 and np.allclose(
        log1["time_fs"], np.arange(301) * 1.0
    )
    assert np.allclose(log1["Ez"], 0.3) and np.all(log1["field_work"] == 0.0)
    range1 = np.ptp(log1["etot"]) / n
    range2 = np.ptp(log2["etot"]) / n
    drift = quarter_drift(log1["etot"]) / n
    print(
        f"NVE static field: range {range1:.3g} (1 fs), {range2:.3g} (2 fs) eV/atom, drift {drift:.3g} eV/atom"
    )
    assert range1 < 5e-5
    assert 2.5 < range2 / range1 < 6.0
    assert drift < 1e-5
    # the field term is large compared to these bounds, so they test it
    field_enthalpy = -(
        np.stack([log1["Px"], log1["Py"], log1["Pz"]], 1) @ np.array(field)
    )
    assert np.ptp(field_enthalpy) / n > 10 * range1
    # P is continuous along the trajectory, and the reference is the first frame
    p = np.stack([log1["Px"], log1["Py"], log1["Pz"]], 1)
    np.testing.assert_allclose(log1["dPz"], p[:, 2] - p[0, 2], atol=1e-12)
    assert np.abs(np.diff(p, axis=0)).max() < 0.05


def oscillating(e0=0.3, period_fs=100.0):
    omega = 2 * np.pi / period_fs
    direction = np.array([0.2, -0.1, 1.0])

    def field(t):
        return e0 * np.sin(omega * t) * direction

    def field_rate(t):
        return e0 * omega * np.cos(omega * t) * direction

    return field, field_rate


def test_time_dependent_field_work(model, tmp_path):
    field, field_rate = oscillating()
    log, n = run_nve(model, field, 1.0, 300.0, tmp_path, "ac")
    t = log["time_fs"]
    np.testing.assert_allclose(
        t, log["step"] * 1.0, atol=1e-12
    )  # the field of step n is E(n dt)
    np.testing.assert_allclose(
        np.stack([log["Ex"], log["Ey"], log["Ez"]], 1),
        np.array([field(s) for s in t]),
        atol=1e-12,
    )
    p = np.stack([log["Px"], log["Py"], log["Pz"]], 1)
    power = -np.einsum("ta,ta->t", p, np.array([field_rate(s) for s in t]))  # eV/fs
    work = np.concatenate(
        [[0.0], np.cumsum(0.5 * (power[1:] + power[:-1]) * np.diff(t))]
    )
    change = log["etot"] - log["etot"][0]
    residual = np.abs(change - work).max()
    print(f"AC field: work range {np.ptp(work):.3g} eV, max |dH - W| {residual:.3g} eV")
    assert np.ptp(work) > 5e-3  # a real test: the field does work
    assert residual < 5e-4
    # the logger's own trapezoid in E-space agrees to O(dt^2)
    assert np.abs(log["field_work"] - work).max() < 3e-4
    assert np.abs(change - log["field_work"]).max() < 5e-4


def test_late_clock_lags_one_step(model):
    """Setting ``calc.time = dyn.get_time()`` in an observer is one step late: the forces of
    step n are computed at E((n - 1) dt). ``attach_dynamics`` evaluates step n at E(n dt)."""
    field, _ = oscillating()
    for late in (False, True):
        atoms = thermal_cell()
        calc = make_calc(model, field=field)
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
        if late:
            dyn.attach(
                lambda: setattr(calc, "time", dyn.get_time() / units.fs), interval=1
            )
        else:
            calc.attach_dynamics(dyn)
        seen = []
        dyn.attach(
            lambda: seen.append(calc.results_time), interval=1
        )  # after the clock
        dyn.run(5)
        assert seen == (
            [0.0, 0.0, 1.0, 2.0, 3.0, 4.0] if late else [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        )
        assert (
            calc.num_evaluations == 6 if not late else calc.num_evaluations > 6
        )  # late: re-evaluations


def test_langevin_log_with_reference_structure_and_polarizability(model, tmp_path):
    atoms = thermal_cell(seed=1)
    calc = make_calc(model, field=[0.0, 0.0, 0.2])
    atoms.calc = calc
    dyn = Langevin(
        atoms,
        timestep=1.0 * units.fs,
        temperature_K=300,
        friction=0.01 / units.fs,
        fixcm=False,
        rng=np.random.default_rng(0),
    )
    calc.attach_dynamics(dyn)
    reference = ideal_structure((1, 1, 2))
    path = tmp_path / "langevin.csv"
    with PolarizationLogger(
        atoms, path, dyn=dyn, reference=reference, polarizability=True
    ) as log:
        dyn.attach(log, interval=5)
        dyn.run(20)
    data = read_polarization_log(path)
    assert list(data["step"]) == [0, 5, 10, 15, 20]
    p_ref = calc.evaluate(reference, field=[0, 0, 0])["polarization"]
    np.testing.assert_allclose(data["dPx"], data["Px"] - p_ref[0], atol=1e-12)
    np.testing.assert_allclose(
        data["azz"][-1], calc.get_polarizability(atoms)[2, 2], rtol=1e-10
    )
    assert calc.num_evaluations == 21  # one per step, the log adds none
    np.testing.assert_allclose(data["volume"], atoms.get_volume())


def test_logger_needs_our_calculator(tmp_path):
    from ase.calculators.emt import EMT

    atoms = ideal_structure((1, 1, 1))
    atoms.calc = EMT()
    with pytest.raises(TypeError, match="NequIPPolCalculator"):
        PolarizationLogger(atoms, tmp_path / "x.csv")


def test_reused_calculator_logs_the_new_runs_start_time(model, tmp_path):
    """A calculator reused for a second run (static field: its cached results stay valid across
    the clock reset) logs the second run from t = 0, with uniform steps (issue 43 item 2)."""
    atoms = thermal_cell()
    calc = make_calc(model, field=[0.0, 0.0, 0.1])
    atoms.calc = calc
    for name in ("first", "second"):
        dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
        calc.attach_dynamics(dyn, t0=0.0)
        with PolarizationLogger(atoms, tmp_path / f"{name}.csv", dyn=dyn) as log:
            dyn.attach(log, interval=1)
            dyn.run(5)
        times = read_polarization_log(tmp_path / f"{name}.csv")["time_fs"]
        np.testing.assert_allclose(times, np.arange(6.0))
