"""Data keys of nequip-pol and their registration with nequip.

Units follow the physics contract: eV, Angstrom, field in V/A, dipoles in e*A.
nequip already knows ``polarization`` (graph), ``born_effective_charges`` (node, "ij");
we add the field inputs and the polarizability.
"""

from nequip.data import AtomicDataDict

# the registry module itself: `nequip.data` pulls in ase and others, which `nequip-package` cannot pack
from nequip.data._key_registry import register_fields

#: homogeneous electric field per frame, (num_frames, 3), V/A, irreps "1o"; absent means zero
ELECTRIC_FIELD_KEY = "electric_field"
#: per-atom electric field, (num_atoms, 3), V/A, irreps "1o"; optional. It *adds to* the frame's
#: ``electric_field``: atom i's enthalpy sees E_frame + E_i (a uniform background plus a local
#: part). Absent means zero; a uniform per-atom field gives the per-frame result
ATOMIC_ELECTRIC_FIELD_KEY = "atomic_electric_field"
#: cell dipole P = -dE/dE, (num_frames, 3), e*A (nequip's key)
POLARIZATION_KEY = AtomicDataDict.POLARIZATION_KEY
#: Born effective charges Z*_i,ab = dP_a/dr_ib, (num_atoms, 3, 3), e (nequip's key)
BORN_CHARGE_KEY = AtomicDataDict.BORN_CHARGE_KEY
#: polarizability alpha_ab = dP_a/dE_b, (num_frames, 3, 3), e*A^2/V, symmetric
POLARIZABILITY_KEY = "polarizability"

#: per-atom dipole p_i = -dE/dE_i (e*A, (num_atoms, 3)): the derivative of the enthalpy with
#: respect to the field at atom i (its edges' dipoles, plus its share P0/N of a polarization
#: offset); sum_i p_i = P
ATOMIC_DIPOLE_KEY = "atomic_dipoles"
#: each atom's field enthalpy (included in ``atomic_energy``), (num_atoms, 1), eV
PER_ATOM_FIELD_ENERGY_KEY = "atomic_field_energy"

register_fields(
    graph_fields=[ELECTRIC_FIELD_KEY, POLARIZABILITY_KEY],
    node_fields=[
        ATOMIC_ELECTRIC_FIELD_KEY,
        ATOMIC_DIPOLE_KEY,
        PER_ATOM_FIELD_ENERGY_KEY,
    ],
    cartesian_tensor_fields={POLARIZABILITY_KEY: "ij=ji"},
)
