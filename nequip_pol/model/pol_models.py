"""Field-aware NequIP and Allegro models.

Each builder builds the stock nequip/allegro energy model with every one of its
hyperparameters, inserts :class:`~nequip_pol.nn.FieldExpansionEnergy` after the per-atom energy
(so the field enthalpy joins the per-atom energies before they are summed), and replaces the
stock force/stress head with the shared :class:`~nequip_pol.nn.ElectricResponseOutput`.
"""

from typing import Dict, Optional, Sequence, Union

from nequip.data import AtomicDataDict
from nequip.model import model_builder, NequIPGNNModel
from nequip.nn import SequentialGraphNetwork
from nequip.nn.embedding import AddRadialCutoffToData, PolynomialCutoff

from ..nn import FieldExpansionEnergy, ElectricResponseOutput


#: field and response settings of both builders, with their defaults (documented below)
FIELD_SETTINGS = dict(
    field_expansion_order=3,
    field_mlp_hidden_layers_depth=1,
    field_mlp_hidden_layers_width=64,
    dipole_scale=1.0,
    polarizability_scale=1.0,
    hyperpolarizability_scale=1.0,
    polarization_offset_fractional=None,
    polarization_offset_trainable=False,
    response_outputs=None,
    polarization_source="field_expansion",
    born_charge_method="loop",
    do_derivatives=True,
    compute_stress=True,
)
_HEAD_SETTINGS = ("response_outputs", "polarization_source", "born_charge_method", "do_derivatives", "compute_stress")


def _pop_field_settings(kwargs: dict) -> dict:
    return {key: kwargs.pop(key, default) for key, default in FIELD_SETTINGS.items()}


def _make_field_aware(
    stock_model,
    type_names: Sequence[str],
    edge_feature_fields: Sequence[str],
    node_feature_fields: Sequence[str],
    avg_num_neighbors,
    settings: dict,
) -> ElectricResponseOutput:
    energy_model: SequentialGraphNetwork = stock_model.func
    insert_before = "total_energy_sum"
    if AtomicDataDict.EDGE_CUTOFF_KEY not in energy_model.irreps_out:
        cutoff = AddRadialCutoffToData(cutoff=PolynomialCutoff(6), irreps_in=energy_model.irreps_out)
        energy_model.insert("field_cutoff", cutoff, before=insert_before)
    irreps_before = dict(energy_model[list(energy_model._modules.keys()).index(insert_before) - 1].irreps_out)
    field_energy = FieldExpansionEnergy(
        type_names=type_names,
        order=settings["field_expansion_order"],
        edge_feature_fields=edge_feature_fields,
        node_feature_fields=node_feature_fields,
        mlp_hidden_layers_depth=settings["field_mlp_hidden_layers_depth"],
        mlp_hidden_layers_width=settings["field_mlp_hidden_layers_width"],
        dipole_scale=settings["dipole_scale"],
        polarizability_scale=settings["polarizability_scale"],
        hyperpolarizability_scale=settings["hyperpolarizability_scale"],
        avg_num_neighbors=avg_num_neighbors,
        polarization_offset_fractional=settings["polarization_offset_fractional"],
        polarization_offset_trainable=settings["polarization_offset_trainable"],
        irreps_in=irreps_before,
    )
    energy_model.insert("field_expansion", field_energy, before=insert_before)
    return ElectricResponseOutput(func=energy_model, **{k: settings[k] for k in _HEAD_SETTINGS})


_FIELD_ARGS_DOC = """
    Field and response arguments (beyond those of the stock builder):
        field_expansion_order (int): highest power of the field in the enthalpy, 1, 2 or 3 (default ``3``)
        field_mlp_hidden_layers_depth (int): hidden layers of the field-coefficient MLP (default ``1``)
        field_mlp_hidden_layers_width (int): their width (default ``64``)
        dipole_scale (float): initial scale of the edge dipoles, e*A (default ``1.0``)
        polarizability_scale (float): initial scale of the edge polarizabilities, e*A^2/V (default ``1.0``)
        hyperpolarizability_scale (float): initial scale of the third-order terms, e*A^3/V^2 (default ``1.0``)
        polarization_offset_fractional (List[float]): constant cell-dipole offset in units of lattice
            vectors, e.g. ``[0.5, 0.5, 0.5]`` for data on a half-quantum branch (default none)
        polarization_offset_trainable (bool): learn that offset from the data (default ``False``)
        response_outputs (List[str]): which of ``polarization``, ``born_effective_charges``,
            ``polarizability`` to compute (default: all)
        polarization_source (str): ``field_expansion`` (closed-form P, first-order Z*) or ``autograd``
        born_charge_method (str): ``loop`` (default; four first-order backward passes) or ``vmap`` (one batched backward)
        compute_stress (bool): compute stress and virial (default ``True``)
"""


@model_builder
def AllegroPolModel(
    type_names: Sequence[str],
    avg_num_neighbors: Optional[Union[float, Dict[str, float]]] = None,
    **kwargs,
):
    """Field-aware Allegro: ``allegro.model.AllegroModel`` + field expansion + response head.

    Takes every argument of ``AllegroModel``; the field coefficients are read out from
    Allegro's final scalar edge features, so each atom's enthalpy stays strictly local.
    """
    from allegro.model import AllegroModel

    settings = _pop_field_settings(kwargs)
    stock = AllegroModel(type_names=type_names, avg_num_neighbors=avg_num_neighbors, **kwargs)
    return _make_field_aware(
        stock,
        type_names=type_names,
        edge_feature_fields=[AtomicDataDict.EDGE_FEATURES_KEY],
        node_feature_fields=[],
        avg_num_neighbors=avg_num_neighbors,
        settings=settings,
    )


@model_builder
def NequIPPolModel(
    type_names: Sequence[str],
    avg_num_neighbors: Optional[Union[float, Dict[str, float]]] = None,
    **kwargs,
):
    """Field-aware NequIP: ``nequip.model.NequIPGNNModel`` + field expansion + response head.

    Takes every argument of ``NequIPGNNModel``; the field coefficients of edge i->j are read
    out from the final scalar node features of i and j and the edge's radial embedding.
    """
    settings = _pop_field_settings(kwargs)
    stock = NequIPGNNModel(type_names=type_names, avg_num_neighbors=avg_num_neighbors, **kwargs)
    return _make_field_aware(
        stock,
        type_names=type_names,
        edge_feature_fields=[AtomicDataDict.EDGE_EMBEDDING_KEY],
        node_feature_fields=[AtomicDataDict.NODE_FEATURES_KEY],
        avg_num_neighbors=avg_num_neighbors,
        settings=settings,
    )


AllegroPolModel.__doc__ += _FIELD_ARGS_DOC
NequIPPolModel.__doc__ += _FIELD_ARGS_DOC
