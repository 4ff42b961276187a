"""AOTInductor compile targets for field-aware models (``nequip-compile --target NAME``).

Every target takes the field ``electric_field`` ((num_frames, 3), V/A) as an input and returns
the response outputs beside nequip's:

- ``nequip_pol_ase``: one frame with cell and edge cell shifts (nequip's ``ase`` inputs + field);
  outputs total and per-atom energy, forces, stress, virial, P, Z*, alpha.
- ``nequip_pol_batch``: several frames (nequip's ``batch`` inputs + field); same outputs.
- ``nequip_pol_pair_allegro``: the inputs of a LAMMPS Allegro pair style (positions of local and
  ghost atoms, edge index, atom types; no cell) + field; outputs per-atom energy, forces (ghosts
  included), virial, P, Z* (ghosts included: LAMMPS reverse-communicates them), alpha and the
  per-atom dipoles. The cell-dependent polarization offset is not applied there (no cell input):
  LAMMPS adds ``f @ cell`` itself (metadata key ``polarization_offset_fractional``).
- ``nequip_pol_pair_nequip``: the inputs of nequip's LAMMPS pair style (nequip's ``pair_nequip``)
  + field; same outputs as ``nequip_pol_pair_allegro``.
- ``nequip_pol_pair_allegro_no_born``, ``nequip_pol_pair_nequip_no_born``: the same without Born
  charges, for faster MD that needs only forces, P and alpha (compile with
  ``--modifiers disable_born_charges``).

Fields that vary in space: the targets ending in ``_atomic_field`` take the per-atom field
``atomic_electric_field`` ((num_atoms, 3), V/A; added to ``electric_field`` at each atom, see
:mod:`nequip_pol.nn.field_expansion`) as one more input, after ``electric_field``; their outputs
are those of the target without the suffix:

- ``nequip_pol_pair_allegro_atomic_field``, ``nequip_pol_pair_nequip_atomic_field`` and their
  ``_no_born`` variants (``_atomic_field_no_born``): the LAMMPS pair styles with atom-style field
  variables (one value per graph node, ghost atoms included);
- ``nequip_pol_ase_atomic_field``: the ASE calculator with ``set_atomic_field``; outputs also
  ``atomic_dipoles`` p_i = -dE/dE_i.

A package of these targets always needs the input: the callers pass zeros when no per-atom field
is set (which gives the result of the target without the suffix). The example data of the
compile carry a nonzero per-atom field, so the export traces the path that reads it.
"""

import torch

from nequip.data import AtomicDataDict
from nequip.scripts._compile_utils import (
    PAIR_NEQUIP_INPUTS,
    BATCH_INPUTS,
    LMP_OUTPUTS,
    ASE_OUTPUTS,
    single_frame_batch_map_settings,
    single_frame_data_settings,
    batched_data_settings,
    register_compile_targets,
)

from ._keys import (
    ELECTRIC_FIELD_KEY,
    ATOMIC_ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
    ATOMIC_DIPOLE_KEY,
)

ASE_TARGET = "nequip_pol_ase"
BATCH_TARGET = "nequip_pol_batch"
PAIR_ALLEGRO_TARGET = "nequip_pol_pair_allegro"
PAIR_NEQUIP_TARGET = "nequip_pol_pair_nequip"
#: suffix of the targets that also take the per-atom field ``atomic_electric_field``
ATOMIC_FIELD_SUFFIX = "_atomic_field"
ASE_ATOMIC_FIELD_TARGET = ASE_TARGET + ATOMIC_FIELD_SUFFIX
PAIR_ALLEGRO_ATOMIC_FIELD_TARGET = PAIR_ALLEGRO_TARGET + ATOMIC_FIELD_SUFFIX
PAIR_NEQUIP_ATOMIC_FIELD_TARGET = PAIR_NEQUIP_TARGET + ATOMIC_FIELD_SUFFIX

RESPONSE_OUTPUTS = [POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY]
POL_ASE_OUTPUTS = ASE_OUTPUTS + [AtomicDataDict.VIRIAL_KEY] + RESPONSE_OUTPUTS
POL_LMP_OUTPUTS = LMP_OUTPUTS + RESPONSE_OUTPUTS + [ATOMIC_DIPOLE_KEY]
POL_LMP_OUTPUTS_NO_BORN = [k for k in POL_LMP_OUTPUTS if k != BORN_CHARGE_KEY]
PAIR_ALLEGRO_INPUTS = [
    AtomicDataDict.POSITIONS_KEY,
    AtomicDataDict.EDGE_INDEX_KEY,
    AtomicDataDict.ATOM_TYPE_KEY,
    ELECTRIC_FIELD_KEY,
]


def _with_field(data_settings):
    """Wrap a target's data settings so that the example data carry a (nonzero) field."""

    def settings(data):
        data = data_settings(data)
        if ELECTRIC_FIELD_KEY not in data:
            num_frames = AtomicDataDict.num_frames(data)
            pos = data[AtomicDataDict.POSITIONS_KEY]
            generator = torch.Generator().manual_seed(0)
            field = 0.01 * torch.randn(
                (num_frames, 3), generator=generator, dtype=torch.float64
            )
            data[ELECTRIC_FIELD_KEY] = field.to(device=pos.device, dtype=pos.dtype)
        return data

    return settings


def _with_atomic_field(data_settings):
    """Wrap a target's data settings so that the example data carry a (nonzero) per-atom field
    ((num_nodes, 3), V/A; ghost atoms of the Allegro pair target included: it is added after
    ``data_settings``, which creates them)."""

    def settings(data):
        data = data_settings(data)
        if ATOMIC_ELECTRIC_FIELD_KEY not in data:
            pos = data[AtomicDataDict.POSITIONS_KEY]
            generator = torch.Generator().manual_seed(1)
            field = 0.01 * torch.randn(
                (pos.size(0), 3), generator=generator, dtype=torch.float64
            )
            data[ATOMIC_ELECTRIC_FIELD_KEY] = field.to(
                device=pos.device, dtype=pos.dtype
            )
        return data

    return settings


def _pair_allegro_data_settings(data):
    from allegro._compile import allegro_data_settings

    return allegro_data_settings(data)


_PAIR_TARGETS = {
    PAIR_ALLEGRO_TARGET: {
        "input": PAIR_ALLEGRO_INPUTS,
        "batch_map_settings": single_frame_batch_map_settings,
        "data_settings": _with_field(_pair_allegro_data_settings),
    },
    PAIR_NEQUIP_TARGET: {
        "input": PAIR_NEQUIP_INPUTS + [ELECTRIC_FIELD_KEY],
        "batch_map_settings": single_frame_batch_map_settings,
        "data_settings": _with_field(single_frame_data_settings),
    },
}
for _name, _settings in _PAIR_TARGETS.items():
    # the per-atom field comes last, after the field, so that the other inputs keep their places
    _atomic = dict(
        _settings,
        input=_settings["input"] + [ATOMIC_ELECTRIC_FIELD_KEY],
        data_settings=_with_atomic_field(_settings["data_settings"]),
    )
    _atomic_name = _name + ATOMIC_FIELD_SUFFIX
    register_compile_targets(
        {
            _name: dict(_settings, output=POL_LMP_OUTPUTS),
            _name + "_no_born": dict(_settings, output=POL_LMP_OUTPUTS_NO_BORN),
            _atomic_name: dict(_atomic, output=POL_LMP_OUTPUTS),
            _atomic_name + "_no_born": dict(_atomic, output=POL_LMP_OUTPUTS_NO_BORN),
        }
    )

register_compile_targets(
    {
        ASE_TARGET: {
            "input": PAIR_NEQUIP_INPUTS + [ELECTRIC_FIELD_KEY],
            "output": POL_ASE_OUTPUTS,
            "batch_map_settings": single_frame_batch_map_settings,
            "data_settings": _with_field(single_frame_data_settings),
        },
        ASE_ATOMIC_FIELD_TARGET: {
            "input": PAIR_NEQUIP_INPUTS
            + [ELECTRIC_FIELD_KEY, ATOMIC_ELECTRIC_FIELD_KEY],
            "output": POL_ASE_OUTPUTS + [ATOMIC_DIPOLE_KEY],
            "batch_map_settings": single_frame_batch_map_settings,
            "data_settings": _with_atomic_field(
                _with_field(single_frame_data_settings)
            ),
        },
        BATCH_TARGET: {
            "input": BATCH_INPUTS + [ELECTRIC_FIELD_KEY],
            "output": POL_ASE_OUTPUTS,
            "batch_map_settings": lambda batch_map: batch_map,
            "data_settings": _with_field(batched_data_settings),
        },
    }
)
