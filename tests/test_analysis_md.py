"""IR spectrum and fluctuation eps_0 from MD of the exact analytic material vs its harmonic phonons."""

import numpy as np
import pytest

from nequip_pol.analysis import dielectric as D
from nequip_pol.analysis import phonons as PH
from nequip_pol.analysis import spectra as S
from nequip_pol.analysis.timeseries import read_series
from nequip_pol.reference import ReferenceMaterialCalculator, ideal_structure


@pytest.fixture(scope="module")
def cubic(one_torch_thread):
    calc = ReferenceMaterialCalculator()
    atoms = ideal_structure(
        (1, 1, 1)
    )  # the cubic 5-atom cell is a minimum (checked below)
    phonons = PH.phonopy_gamma(atoms, calc, displacement=1e-3)
    phonons.check_stable()
    return calc, atoms, phonons


def equipartition_state(atoms, phonons, temperature, rng):
    """``atoms`` displaced and moving with exactly kT of energy in every optical normal mode and
    a random phase each (harmonic approximation). Maxwell-Boltzmann velocities would give each
    mode a random energy (chi-square distributed), which NVE then keeps: for some seeds a weak
    IR-active mode ends up with too little energy to show a peak."""
    from ase import units

    kt = units.kB * temperature  # eV
    n = len(atoms)
    masses = np.repeat(phonons.masses, 3)
    q_dot = np.zeros(3 * n)
    q = np.zeros(3 * n)
    for m in np.flatnonzero(~phonons.acoustic):
        omega = np.sqrt(phonons.eigenvalues[m])  # 1 / (ASE time unit)
        phase = rng.uniform(0, 2 * np.pi)
        amplitude = np.sqrt(2 * kt) / omega  # E_m = omega^2 amplitude^2 / 2 = kT
        q += phonons.eigenvectors[:, m] * amplitude * np.cos(phase)
        q_dot -= phonons.eigenvectors[:, m] * amplitude * omega * np.sin(phase)
    state = atoms.copy()
    state.positions += (q / np.sqrt(masses)).reshape(n, 3)
    state.set_velocities((q_dot / np.sqrt(masses)).reshape(n, 3))
    return state


@pytest.fixture(scope="module")
def md_log(cubic, tmp_path_factory, seed_offset):
    """4 ps of low-temperature NVE from an equipartitioned harmonic state, written by the
    project's P(t) recorder (PolarizationLogger)."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from nequip_pol.integrations.md import PolarizationLogger

    calc, atoms, phonons = cubic
    work = equipartition_state(
        atoms, phonons, 10.0, np.random.default_rng(4 + seed_offset)
    )
    work.calc = calc
    dyn = VelocityVerlet(work, timestep=2.0 * units.fs)
    calc.attach_dynamics(dyn)
    path = tmp_path_factory.mktemp("md") / "pol.csv"
    with PolarizationLogger(work, path, dyn=dyn) as log:
        dyn.attach(log, interval=1)
        dyn.run(2000)
    return path


@pytest.mark.statistical
def test_ir_peaks_at_harmonic_ir_active_modes(cubic, md_log):
    """Every strong IR-active harmonic mode has an MD peak within the resolution, and every peak is such a mode."""
    _, _, phonons = cubic
    series = read_series(md_log)
    ir = S.ir_spectrum(series, 10.0, max_frequency_cm1=1000.0, peak_prominence=0.02)
    rows = phonons.mode_table()
    strongest = max(r["intensity"] for r in rows)
    active = [r["frequency_cm1"] for r in rows if r["intensity"] > 0.02 * strongest]
    silent = [r["frequency_cm1"] for r in rows if r["intensity"] < 1e-8 * strongest]
    assert (
        len(active) == 3 and len(silent) == 1
    )  # 3 T1u, 1 silent T2u of the cubic perovskite
    res = ir.resolution_cm1
    assert res < 10.0
    found = [p["frequency_cm1"] for p in ir.peaks]
    for nu in active:
        assert min(abs(np.array(found) - nu)) < res, (nu, found, res)
    for p in ir.peaks:
        if p["height"] > 0.05 * max(q["height"] for q in ir.peaks):
            assert min(abs(np.array(active) - p["frequency_cm1"])) < res, (p, active)
    # the silent mode (17 cm^-1 below an active one) leaves no peak
    assert all(abs(f - silent[0]) > res for f in found)


@pytest.mark.statistical
def test_ir_cli_on_md_log(md_log, tmp_path):
    from nequip_pol.cli import main

    prefix = str(tmp_path / "run")
    # the prominence of the test above: at the default 0.05 the weakest T1u mode falls below
    # the threshold for some seeds (in NVE each mode keeps the random energy it starts with)
    argv = ["ir", str(md_log), "-T", "10", "--max-freq", "1000", "--prominence", "0.02"]
    assert main(argv + ["-o", prefix]) == 0
    for name in ("ir.csv", "ir_peaks.csv", "ir.png"):
        assert (tmp_path / f"run_{name}").stat().st_size > 0
    peaks = np.loadtxt(
        tmp_path / "run_ir_peaks.csv", delimiter=",", skiprows=1, ndmin=2
    )
    assert len(peaks) >= 3
    # the same peaks as the library (a second code path); a 4 ps log is too short for the
    # CLI's default resolution, so it takes the finest the log allows, as the library does
    ir = S.ir_spectrum(
        read_series(md_log), 10.0, max_frequency_cm1=1000.0, peak_prominence=0.02
    )
    np.testing.assert_allclose(
        peaks[:, 0], [p["frequency_cm1"] for p in ir.peaks], rtol=1e-6
    )
    before = (tmp_path / "run_ir.csv").stat().st_mtime_ns
    assert main(["ir", str(md_log), "-T", "10", "-o", prefix]) == 2  # exists: refused
    assert (tmp_path / "run_ir.csv").stat().st_mtime_ns == before
    assert (
        main(
            [
                "ir",
                str(md_log),
                "-T",
                "10",
                "-o",
                prefix,
                "--force",
                "--window",
                "blackman",
            ]
        )
        == 0
    )


@pytest.mark.slow
@pytest.mark.statistical
def test_fluctuation_eps0_agrees_with_harmonic(cubic, seed_offset):
    """NVT at 20 K (harmonic regime): eps_0 from <dP dP> within 3 standard errors of the harmonic value."""
    calc, atoms, phonons = cubic
    harmonic = D.eps0_harmonic(phonons)
    series = D.sample_polarization_nvt(
        atoms,
        calc,
        temperature=20.0,
        steps=40000,
        timestep_fs=1.0,
        friction_per_fs=0.02,
        seed=11 + seed_offset,
        equilibration_steps=1000,
    )
    fluct = D.eps0_fluctuations(series, 20.0, harmonic.eps_inf, n_blocks=20)
    iso_f = np.trace(fluct.eps0) / 3
    iso_err = np.sqrt(np.sum(np.diag(fluct.error) ** 2)) / 3
    assert abs(iso_f - np.trace(harmonic.eps0) / 3) < 3 * iso_err, (
        fluct.eps0,
        fluct.error,
        harmonic.eps0,
    )
    assert iso_err < 0.05 * np.trace(harmonic.eps0) / 3
