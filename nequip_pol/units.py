"""Physical constants and unit conversions used across nequip-pol (one definition each).

The project's units: energy eV, length A, time fs, field V/A, cell dipole P in e*A,
polarizability alpha in e*A^2/V, Born charges in e, frequencies in THz (cycles per ps) or
cm^-1. Constants are CODATA 2018 (exact SI values where SI defines them).

This module imports nothing at module level (it is safe to import from anywhere without cost or
cycles); the two tensor conversions import numpy when called.
"""

__all__ = [
    "ELEMENTARY_CHARGE_C",
    "EPS_VAC",
    "COULOMB_EV_A",
    "THZ_TO_CM1",
    "H_OVER_KB_K_PER_THZ",
    "KB_EV_PER_K",
    "PS_TO_FS",
    "E_ANGSTROM2_TO_UC_CM2",
    "V_PER_A_TO_MV_PER_CM",
    "dipole_density_to_uc_cm2",
    "polarizability_from_dielectric",
    "dielectric_from_polarizability",
]

#: elementary charge, C (exact)
ELEMENTARY_CHARGE_C = 1.602176634e-19
#: vacuum permittivity eps_0 / e in e/(V*A): 8.8541878128e-12 F/m / e * 1e-10 m/A = 0.005526349406;
#: a dipole response dP/dE (e*A^2/V) divided by EPS_VAC * volume (A^3) is dimensionless
EPS_VAC = 8.8541878128e-12 / ELEMENTARY_CHARGE_C * 1e-10
#: the Coulomb constant e^2 / (4 pi eps_0) in eV*A (14.3996)
COULOMB_EV_A = 1.0 / (4.0 * 3.141592653589793 * EPS_VAC)
#: 1 THz in cm^-1: 1e12 / c with c in cm/s (33.356)
THZ_TO_CM1 = 1e12 / 29979245800.0
#: h / k_B in K per THz (47.99)
H_OVER_KB_K_PER_THZ = 6.62607015e-34 * 1e12 / 1.380649e-23
#: Boltzmann constant, eV/K
KB_EV_PER_K = 1.380649e-23 / ELEMENTARY_CHARGE_C
#: ps -> fs (LAMMPS metal units write time in ps)
PS_TO_FS = 1000.0
#: polarization density: 1 e*A per A^3 = 1 e/A^2 in uC/cm^2 (1602.18; e * 1e6 uC/C / 1e-16 cm^2/A^2)
E_ANGSTROM2_TO_UC_CM2 = ELEMENTARY_CHARGE_C * 1e6 / 1e-16
#: field: 1 V/A = 1e8 V/cm = 100 MV/cm
V_PER_A_TO_MV_PER_CM = 100.0


def dipole_density_to_uc_cm2(dipole_e_angstrom, volume_angstrom3):
    """Polarization density in uC/cm^2 of a cell dipole (e*A) in a cell of ``volume`` (A^3).

    Works on floats and numpy arrays (broadcasting).
    """
    return dipole_e_angstrom / volume_angstrom3 * E_ANGSTROM2_TO_UC_CM2


def polarizability_from_dielectric(epsilon, volume_angstrom3):
    """Clamped-ion polarizability alpha = EPS_VAC * V * (eps_inf - 1) of a cell, in e*A^2/V.

    Units: EPS_VAC is eps_0 / e = 0.0055263 e/(V*A) and V is in A^3, so EPS_VAC * V is in
    e*A^2/V, the unit of alpha_ab = dP_a/dE_b with P the cell dipole (e*A) and E the field (V/A).
    (The same relation in SI: dP/dE = eps_0 V (eps - 1) C*m/(V/m) for the cell dipole P.)

    Args:
        epsilon: (3, 3) ion-clamped dielectric tensor eps_inf (dimensionless)
        volume_angstrom3: cell volume, A^3
    Returns:
        (3, 3) numpy array, e*A^2/V
    """
    import numpy as np

    epsilon = np.asarray(epsilon, dtype=float)
    return EPS_VAC * float(volume_angstrom3) * (epsilon - np.eye(3))


def dielectric_from_polarizability(alpha, volume_angstrom3):
    """The inverse of :func:`polarizability_from_dielectric`: eps_inf = 1 + alpha / (EPS_VAC * V).

    Args:
        alpha: (3, 3) polarizability dP/dE of the cell, e*A^2/V
        volume_angstrom3: cell volume, A^3
    Returns:
        (3, 3) numpy array (dimensionless)
    """
    import numpy as np

    alpha = np.asarray(alpha, dtype=float)
    return np.eye(3) + alpha / (EPS_VAC * float(volume_angstrom3))
