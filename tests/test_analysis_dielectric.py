"""Dielectric constants and phonons on the exact analytic material (no training).

The structure is a strained, rattled 5-atom cell of the analytic perovskite, relaxed at fixed cell:
low symmetry (anisotropic eps with off-diagonal elements), a true minimum (checked).
"""

import numpy as np
import pytest
from ase import units

from nequip_pol.analysis import dielectric as D
from nequip_pol.analysis import phonons as PH
from nequip_pol.reference import ReferenceMaterialCalculator, ideal_structure


@pytest.fixture(scope="module")
def system(one_torch_thread):
    calc = ReferenceMaterialCalculator()
    atoms = ideal_structure((1, 1, 1))
    strain = np.array([[1.012, 0.004, 0.0], [0.004, 0.991, 0.003], [0.0, 0.003, 1.0]])
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    atoms.rattle(0.03, seed=3)
    relaxed = D.relax_positions(atoms, calc, fmax=1e-11)
    phonons = PH.phonopy_gamma(relaxed, calc, displacement=1e-4)
    return calc, relaxed, phonons


def test_constants():
    assert D.EPS_VAC == pytest.approx(0.0055263494, rel=1e-8)
    assert D.EPS_VAC == pytest.approx(
        units._eps0 / units._e * 1e-10, rel=1e-6
    )  # ASE's CODATA
    assert PH.COULOMB_EV_A == pytest.approx(14.399645, rel=1e-6)
    # sqrt(eV / (A^2 amu)) / (2 pi) in THz from ASE's units
    assert PH.THZ_PER_SQRT_EV_A2_AMU == pytest.approx(
        np.sqrt(units._e / units._amu) * 1e10 / (2 * np.pi) / 1e12, rel=1e-6
    )
    # alpha = eps_vac V gives eps_inf = 2 I
    np.testing.assert_allclose(
        D.eps_inf_from_polarizability(D.EPS_VAC * 50.0 * np.eye(3), 50.0), 2 * np.eye(3)
    )


def test_relaxed_structure_is_a_minimum(system):
    calc, relaxed, phonons = system
    relaxed = relaxed.copy()
    relaxed.calc = calc
    assert np.abs(relaxed.get_forces()).max() < 1e-10
    phonons.check_stable()  # no imaginary optical mode
    assert phonons.frequencies_thz[~phonons.acoustic].min() > 1.0
    assert np.abs(phonons.frequencies_thz[phonons.acoustic]).max() < 1e-3


def test_phonopy_gamma_equals_independent_hessian(system):
    calc, relaxed, phonons = system
    hessian = PH.finite_difference_hessian(relaxed, calc, delta=1e-4)
    masses = relaxed.get_masses()
    w = 1 / np.sqrt(np.repeat(masses, 3))
    lam = np.linalg.eigvalsh(hessian * np.outer(w, w))
    # ASE units: omega^2 in eV/(A^2 amu) -> frequency in THz, independent of phonopy's factor
    nu_fd = (
        np.sign(lam)
        * np.sqrt(np.abs(lam) * units._e / units._amu)
        * 1e10
        / (2 * np.pi)
        / 1e12
    )
    optical = ~phonons.acoustic
    np.testing.assert_allclose(
        np.sort(phonons.frequencies_thz[optical]), np.sort(nu_fd)[3:], rtol=1e-6
    )


def test_harmonic_equals_field_response(system):
    """Both routes are exact in the harmonic limit: agreement to <= 1e-6 relative (float64)."""
    calc, relaxed, phonons = system
    harmonic = D.eps0_harmonic(phonons)
    calc.set_field(
        [0.0, 0.02, 0.0]
    )  # the routes work at their own fields and restore the user's
    field = D.eps0_field_response(
        relaxed, calc, field_step=1e-3, fmax=1e-11, hessian=phonons.force_constants
    )
    np.testing.assert_array_equal(calc.field, [0.0, 0.02, 0.0])
    calc.set_field(None)
    assert np.abs(harmonic.eps0 - harmonic.eps0.T).max() < 1e-10
    # the ionic part dominates and is anisotropic with off-diagonal elements: a demanding comparison
    ionic = harmonic.details["ionic"]
    assert np.trace(ionic) > np.trace(harmonic.eps_inf - np.eye(3))
    assert np.abs(ionic[0, 1]) > 1e-3
    rel = np.abs(field.eps0 - harmonic.eps0).max() / np.abs(harmonic.eps0).max()
    assert rel < 1e-6, (rel, harmonic.eps0, field.eps0)
    np.testing.assert_allclose(field.eps_inf, harmonic.eps_inf, rtol=1e-12)
    # the electronic part alone would miss the ionic response by far
    assert np.abs(field.eps0 - field.eps_inf).max() > 1.0


def test_lyddane_sachs_teller_and_lo_to(system):
    """prod_m omega_LO^2(q) / prod_m omega_TO^2 = q.eps0.q / q.eps_inf.q (generalised LST) from phonopy's NAC."""
    calc, relaxed, phonons = system
    harmonic = D.eps0_harmonic(phonons)
    directions = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 2, -1)]
    loto = PH.lo_to_splitting(phonons, directions)
    optical = ~phonons.acoustic
    to2 = np.sort(phonons.eigenvalues[optical])
    for k, q in enumerate(loto.directions):
        lo2 = np.sort((loto.lo_thz[k] / PH.THZ_PER_SQRT_EV_A2_AMU) ** 2)[3:]
        lst = np.prod(lo2 / to2)
        assert lst == pytest.approx(
            q @ harmonic.eps0 @ q / (q @ harmonic.eps_inf @ q), rel=1e-8
        )
        assert lo2.max() > to2.max() * 1.1  # a real splitting
    rows = loto.splitting_table(phonons)
    assert rows[0]["splitting_cm1"] > 50.0


def test_lo_frequencies_match_own_nonanalytic_term(one_torch_thread):
    """phonopy's LO frequencies equal an explicit D + NAC diagonalisation (checks the Z* index convention).

    The material's Z* are nearly symmetric, so an antisymmetric part (summing to zero over atoms)
    is added to what phonopy receives: contracting q with the wrong index would then show.
    """
    calc = ReferenceMaterialCalculator()
    atoms = ideal_structure((1, 1, 1))
    atoms.rattle(0.08, seed=7)
    phonons = PH.phonopy_gamma(atoms, calc, displacement=1e-4)
    rng = np.random.default_rng(0)
    skew = rng.normal(size=(len(atoms), 3, 3)) * 0.5
    skew = skew - skew.transpose(0, 2, 1)
    skew -= skew.mean(axis=0)
    z = phonons.born_charges + skew
    phonons.born_charges = z
    phonons.phonopy.nac_params = dict(phonons.phonopy.nac_params, born=z)
    assert np.abs(z - z.transpose(0, 2, 1)).max() > 0.5
    eps_inf = D.eps_inf_from_polarizability(phonons.polarizability, phonons.volume)
    q = np.array([0.3, -0.5, 0.8])
    q /= np.linalg.norm(q)
    qz = np.einsum("a,iab->ib", q, z).reshape(
        -1
    )  # (q . Z*_i)_b: q contracts the field index
    nac = np.outer(qz, qz) / (D.EPS_VAC * phonons.volume * (q @ eps_inf @ q))
    w = 1 / np.sqrt(np.repeat(phonons.masses, 3))
    lam = np.linalg.eigvalsh((phonons.force_constants + nac) * np.outer(w, w))
    own = np.sign(lam) * np.sqrt(np.abs(lam)) * PH.THZ_PER_SQRT_EV_A2_AMU
    loto = PH.lo_to_splitting(phonons, [q])
    np.testing.assert_allclose(np.sort(loto.lo_thz[0])[3:], np.sort(own)[3:], rtol=1e-6)
    # the other index convention gives clearly different LO frequencies (the test can fail)
    qz_t = np.einsum("a,iba->ib", q, z).reshape(-1)
    nac_t = np.outer(qz_t, qz_t) / (D.EPS_VAC * phonons.volume * (q @ eps_inf @ q))
    lam_t = np.linalg.eigvalsh((phonons.force_constants + nac_t) * np.outer(w, w))
    assert np.abs(np.sort(lam_t) - np.sort(lam)).max() > 1e-3 * lam.max()


def test_mode_table_sums_to_ionic_eps(system):
    _, _, phonons = system
    harmonic = D.eps0_harmonic(phonons)
    total = sum(row["delta_eps"] for row in phonons.mode_table())
    np.testing.assert_allclose(total, harmonic.details["ionic"], rtol=1e-10, atol=1e-12)
    # and equals Z*^T Phi^+ Z* / (eps_vac V) without modes
    n = len(phonons.masses)
    zt = phonons.born_charges.transpose(0, 2, 1).reshape(
        3 * n, 3
    )  # rows: (i, b), columns: a
    lam, vec = np.linalg.eigh(phonons.force_constants)
    keep = np.abs(lam) > 1e-6 * np.abs(lam).max()
    inv = (vec[:, keep] / lam[keep]) @ vec[:, keep].T
    np.testing.assert_allclose(
        zt.T @ inv @ zt / (D.EPS_VAC * phonons.volume),
        harmonic.details["ionic"],
        rtol=1e-6,
    )


class _NoBornCharges(ReferenceMaterialCalculator):
    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "polarization",
    ]

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name in ("born_effective_charges", "polarizability"):
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError(f"{name} not provided by this model")
        return super().get_property(name, atoms, allow_calculation)


def test_harmonic_route_without_born_charges_is_refused(one_torch_thread):
    atoms = ideal_structure((1, 1, 1))
    with pytest.raises(ValueError, match="Born charges"):
        PH.phonopy_gamma(atoms, _NoBornCharges(), displacement=1e-3)
    phonons = PH.phonopy_gamma(
        atoms, _NoBornCharges(), displacement=1e-3, born_charges=False
    )
    with pytest.raises(ValueError, match="Born charges"):
        D.eps0_harmonic(phonons)
    with pytest.raises(ValueError, match="Born charges"):
        PH.lo_to_splitting(phonons)


def test_saddle_point_is_refused(one_torch_thread):
    """Unstable structure (the analytic perovskite compressed by 8 %): harmonic eps_0 is refused, naming the mode."""
    atoms = ideal_structure((1, 1, 1))
    atoms.set_cell(atoms.cell.array * 0.92, scale_atoms=True)
    phonons = PH.phonopy_gamma(atoms, ReferenceMaterialCalculator(), displacement=1e-3)
    if phonons.frequencies_thz[~phonons.acoustic].min() > 0:
        pytest.skip("this strain does not destabilise the analytic material")
    with pytest.raises(ValueError, match="imaginary frequency"):
        D.eps0_harmonic(phonons)
