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


@pytest.fixture(scope="module")
def md_log(cubic, tmp_path_factory):
    """4 ps of low-temperature NVE (Langevin with zero friction) written in the PolarizationLogger layout."""
    calc, atoms, _ = cubic
    series = D.sample_polarization_nvt(
        atoms,
        calc,
        temperature=10.0,
        steps=2000,
        timestep_fs=2.0,
        friction_per_fs=0.0,
        seed=4,
    )
    path = tmp_path_factory.mktemp("md") / "pol.csv"
    series.write_csv(path)
    return path


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


def test_ir_cli_on_md_log(md_log, tmp_path):
    from nequip_pol.cli import main

    prefix = str(tmp_path / "run")
    assert (
        main(["ir", str(md_log), "-T", "10", "--max-freq", "1000", "-o", prefix]) == 0
    )
    for name in ("ir.csv", "ir_peaks.csv", "ir.png"):
        assert (tmp_path / f"run_{name}").stat().st_size > 0
    peaks = np.loadtxt(
        tmp_path / "run_ir_peaks.csv", delimiter=",", skiprows=1, ndmin=2
    )
    assert len(peaks) >= 3
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
def test_fluctuation_eps0_agrees_with_harmonic(cubic):
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
        seed=11,
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
