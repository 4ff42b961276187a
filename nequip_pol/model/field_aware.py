"""Make a NequIP or Allegro energy model field-aware: the one place where that happens.

A stock nequip energy model is a force/stress head (``ForceStressOutput``) around a
``SequentialGraphNetwork`` that ends with the per-atom energies and their sum. Making it
field-aware (:func:`make_field_aware`) inserts :class:`~nequip_pol.nn.FieldExpansionEnergy`
before that sum, reading the network's final invariant features, and replaces the head with the
shared :class:`~nequip_pol.nn.ElectricResponseOutput`. Nothing else of the network changes, and
every field term of the enthalpy vanishes at zero field, so a field-aware model's zero-field
energy, forces and stress are those of the network it was made from.

:func:`FieldAwareModel` does this to an *existing* model (fine-tuning): built fresh from any
nequip/allegro builder, or loaded with nequip's ``ModelFromCheckpoint`` / ``ModelFromPackage``.
With ``freeze_energy_model: true`` the original weights get ``requires_grad=False`` (so no
optimizer moves them, and the zero-field E, F, stress stay those of the original model to
round-off); otherwise everything trains, optionally with a separate learning rate for the
original weights through :func:`FieldAwareParamGroups`. ``AllegroPolModel`` and
``NequIPPolModel`` (:mod:`nequip_pol.model.pol_models`) are this same transformation applied to a
stock model built in place.
"""

import copy

import torch

from e3nn.o3._irreps import Irreps
from nequip.data import AtomicDataDict
from nequip.model import model_builder
from nequip.nn.embedding import AddRadialCutoffToData, PolynomialCutoff

from .._keys import ELECTRIC_FIELD_KEY
from ..nn import FieldExpansionEnergy, ElectricResponseOutput

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union


#: field and response settings of every field-aware builder, with their defaults (see FIELD_ARGS_DOC)
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
_HEAD_SETTINGS = (
    "response_outputs",
    "polarization_source",
    "born_charge_method",
    "do_derivatives",
    "compute_stress",
)

FIELD_ARGS_DOC = """
    Field and response arguments:
        field_expansion_order (int): highest power of the field in the enthalpy, 1, 2 or 3 (default ``3``)
        field_mlp_hidden_layers_depth (int): hidden layers of the field-coefficient MLP (default ``1``)
        field_mlp_hidden_layers_width (int): their width (default ``64``)
        dipole_scale (float): initial scale of the edge dipoles, e*A (default ``1.0``)
        polarizability_scale (float): initial scale of the edge polarizabilities, e*A^2/V (default ``1.0``)
        hyperpolarizability_scale (float): initial scale of the third-order terms, e*A^3/V^2 (default ``1.0``)
        polarization_offset_fractional (List[float]): constant cell-dipole offset in units of lattice
            vectors, 0 or 1/2 per entry (the values inversion allows), e.g. ``[0.5, 0.5, 0.5]``
            for data on a half-quantum branch; ``nequip-pol check-data`` reports which (default none)
        polarization_offset_trainable (bool): deprecated and ignored (a learned offset breaks
            inversion); accepted so that older checkpoints load (default ``False``)
        response_outputs (List[str]): which of ``polarization``, ``born_effective_charges``,
            ``polarizability`` to compute (default: all)
        polarization_source (str): ``field_expansion`` (closed-form P, first-order Z*) or ``autograd``
        born_charge_method (str): ``loop`` (default; four first-order backward passes) or ``vmap`` (one batched backward)
        compute_stress (bool): compute stress and virial (default ``True``)
        do_derivatives (bool): ``False``: energy only, no forces, stress or response (default ``True``)
"""

_INSERT_BEFORE = "total_energy_sum"
_FIELD_MODULE_NAME = "field_expansion"
_FIELD_AWARE_CLASSES = ("FieldExpansionEnergy", "ElectricResponseOutput")


def pop_field_settings(kwargs: dict) -> dict:
    """Remove the field settings from builder ``kwargs``; return them with defaults filled in."""
    return {key: kwargs.pop(key, default) for key, default in FIELD_SETTINGS.items()}


def _is_scalar(irreps) -> bool:
    return irreps is not None and all(
        ir.l == 0 and ir.p == 1 for _, ir in Irreps(irreps)
    )


def invariant_feature_fields(irreps: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """The invariant features the field coefficients are read from: ``(edge_fields, node_fields)``.

    Allegro: its final scalar ``edge_features`` (strictly local). NequIP: the scalar
    ``node_features`` of the last layer (of both ends of an edge) and the ``edge_embedding``.
    ``irreps`` are the fields available where the field expansion is inserted.
    """
    if _is_scalar(irreps.get(AtomicDataDict.EDGE_FEATURES_KEY)):
        return [AtomicDataDict.EDGE_FEATURES_KEY], []
    if _is_scalar(irreps.get(AtomicDataDict.NODE_FEATURES_KEY)) and _is_scalar(
        irreps.get(AtomicDataDict.EDGE_EMBEDDING_KEY)
    ):
        return [AtomicDataDict.EDGE_EMBEDDING_KEY], [AtomicDataDict.NODE_FEATURES_KEY]
    available = {k: str(v) for k, v in irreps.items() if v is not None}
    raise ValueError(
        "cannot make this model field-aware: it exposes no invariant features to read the field "
        f"coefficients from (needs scalar `{AtomicDataDict.EDGE_FEATURES_KEY}` as in Allegro, or scalar "
        f"`{AtomicDataDict.NODE_FEATURES_KEY}` and `{AtomicDataDict.EDGE_EMBEDDING_KEY}` as in NequIP); "
        f"fields before `{_INSERT_BEFORE}`: {available}"
    )


def energy_network(head: torch.nn.Module):
    """The ``SequentialGraphNetwork`` of a stock energy model's force/stress head, checked."""
    if any(type(m).__name__ in _FIELD_AWARE_CLASSES for m in head.modules()):
        raise ValueError(
            "this model is already field-aware (it contains a FieldExpansionEnergy / ElectricResponseOutput); "
            "continue training it with `nequip.model.ModelFromCheckpoint` or `ModelFromPackage` directly"
        )
    network = getattr(head, "func", None)
    names = list(getattr(network, "_modules", {}).keys())
    irreps_out = getattr(network, "irreps_out", {})
    if (
        not callable(getattr(network, "insert", None))
        or _INSERT_BEFORE not in names
        or names.index(_INSERT_BEFORE) == 0
        or AtomicDataDict.PER_ATOM_ENERGY_KEY not in irreps_out
        or AtomicDataDict.TOTAL_ENERGY_KEY not in irreps_out
    ):
        raise ValueError(
            f"not a nequip energy model: expected a force/stress head (such as ForceStressOutput) around a "
            f"SequentialGraphNetwork that sums `{AtomicDataDict.PER_ATOM_ENERGY_KEY}` into "
            f"`{AtomicDataDict.TOTAL_ENERGY_KEY}` in a module named `{_INSERT_BEFORE}`; got {type(head).__name__}"
            + (
                f" around {type(network).__name__} with modules {names}"
                if network is not None
                else ""
            )
        )
    return network


def make_field_aware(
    head: torch.nn.Module,
    type_names: Sequence[str],
    avg_num_neighbors: Optional[Union[float, Dict[str, float]]],
    settings: dict,
) -> ElectricResponseOutput:
    """Turn a stock energy model (its force/stress head) into the field-aware model.

    Inserts :class:`~nequip_pol.nn.FieldExpansionEnergy` (and a radial cutoff, if the network has
    none) before ``total_energy_sum``, in place, and returns the network wrapped in the shared
    :class:`~nequip_pol.nn.ElectricResponseOutput` instead of ``head``.

    Args:
        head: the stock model's force/stress head (e.g. ``ForceStressOutput``); its ``func`` is changed in place
        type_names: the model's type names
        avg_num_neighbors: normalisation of the edge sums (as in nequip's convolutions), or ``None``
        settings: the field settings (:data:`FIELD_SETTINGS`, all keys)
    """
    network = energy_network(head)
    if AtomicDataDict.EDGE_CUTOFF_KEY not in network.irreps_out:
        cutoff = AddRadialCutoffToData(
            cutoff=PolynomialCutoff(6), irreps_in=network.irreps_out
        )
        network.insert("field_cutoff", cutoff, before=_INSERT_BEFORE)
    names = list(network._modules.keys())
    irreps_before = dict(network[names.index(_INSERT_BEFORE) - 1].irreps_out)
    edge_fields, node_fields = invariant_feature_fields(irreps_before)
    field_energy = FieldExpansionEnergy(
        type_names=type_names,
        order=settings["field_expansion_order"],
        edge_feature_fields=edge_fields,
        node_feature_fields=node_fields,
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
    network.insert(_FIELD_MODULE_NAME, field_energy, before=_INSERT_BEFORE)
    return ElectricResponseOutput(
        func=network, **{k: settings[k] for k in _HEAD_SETTINGS}
    )


# ------------------------------------------------------------------------------ fine-tuning builder
def _load_energy_model(model, defaults: Dict[str, Any]) -> torch.nn.Module:
    """Build or load ``model`` (a ``_target_`` config or a built model) as a nequip ``GraphModel``."""
    if isinstance(model, torch.nn.Module):
        # never modify the caller's model in place (it stays usable as the reference)
        return copy.deepcopy(model)
    if not isinstance(model, dict) and hasattr(model, "items"):  # omegaconf DictConfig
        model = dict(model.items())
    if not isinstance(model, dict) or "_target_" not in model:
        raise ValueError(
            "`model` must be a model config with a `_target_` (a builder such as allegro.model.AllegroModel, "
            f"or nequip.model.ModelFromCheckpoint / ModelFromPackage) or a built model; got {model!r}"
        )
    from hydra.utils import get_method

    config = dict(model)
    target = config.pop("_target_")
    is_loader = target.split(".")[-1] in ("ModelFromCheckpoint", "ModelFromPackage")
    if not is_loader:
        # a fresh builder: seed, dtype and type names come from the field-aware model's own settings
        for key, value in defaults.items():
            if value is not None:
                if key in config and config[key] != value:
                    raise ValueError(
                        f"`{key}` of the energy model ({config[key]!r}) differs from the field-aware model's ({value!r})"
                    )
                config[key] = value
    try:
        builder = get_method(target)
        return builder(**config)
    except Exception as error:
        source = config.get("checkpoint_path", config.get("package_path", ""))
        raise RuntimeError(
            f"could not build the energy model to make field-aware from `{target}`"
            + (f" ({source})" if source else "")
            + f": {type(error).__name__}: {error}"
        ) from error


def _unwrap_graph_model(loaded: torch.nn.Module):
    """(GraphModel, its inner head) of a loaded model; ModuleDicts must hold exactly one model."""
    if isinstance(loaded, torch.nn.ModuleDict):
        if len(loaded) != 1:
            raise ValueError(
                f"the energy model holds {len(loaded)} models ({list(loaded.keys())}); a single model is needed"
            )
        loaded = next(iter(loaded.values()))
    if not getattr(loaded, "is_graph_model", False):
        raise ValueError(
            f"not a nequip energy model: expected a GraphModel (from a model builder, ModelFromCheckpoint or "
            f"ModelFromPackage), got {type(loaded).__name__}"
        )
    if ELECTRIC_FIELD_KEY in loaded.irreps_in:
        raise ValueError(
            "this model is already field-aware (it takes `electric_field` as input); continue training it with "
            "`nequip.model.ModelFromCheckpoint` or `ModelFromPackage` directly"
        )
    return loaded, loaded.model


@model_builder
def _field_aware_graph_model(head, type_names, avg_num_neighbors, settings, r_max):
    # a model_builder so that nequip wraps, seeds and types the new modules as for any builder
    return make_field_aware(
        head,
        type_names=type_names,
        avg_num_neighbors=avg_num_neighbors,
        settings=settings,
    )


def FieldAwareModel(
    model: Union[Dict[str, Any], torch.nn.Module],
    seed: int,
    type_names: Optional[Sequence[str]] = None,
    model_dtype: Optional[str] = None,
    avg_num_neighbors: Optional[Union[float, Dict[str, float]]] = None,
    freeze_energy_model: bool = False,
    compile_mode: Optional[str] = None,
    **kwargs,
):
    """Make an existing NequIP or Allegro energy model field-aware (for fine-tuning).

    Usable as ``_target_`` in a nequip-train config::

        model:
          _target_: nequip_pol.model.FieldAwareModel
          seed: 1
          type_names: ${model_type_names}          # checked against the loaded model
          freeze_energy_model: true                # train only the field part
          avg_num_neighbors: ${training_data_stats:num_neighbors_mean}
          model:
            _target_: nequip.model.ModelFromCheckpoint   # or ModelFromPackage, or any builder
            checkpoint_path: /abs/path/energy_model.ckpt

    The field terms vanish at zero field, so the result's zero-field energy, forces and stress
    are those of the energy model. ``r_max``, type names, dtype and per-edge-type cutoffs are the
    energy model's (its metadata is kept).

    Args:
        model: the energy model: a config with ``_target_`` (``nequip.model.ModelFromCheckpoint``,
            ``nequip.model.ModelFromPackage``, or a builder such as ``allegro.model.AllegroModel`` /
            ``nequip.model.NequIPGNNModel``, whose ``seed``, ``model_dtype`` and ``type_names`` default
            to the ones given here), or a built ``GraphModel`` (copied, never modified)
        seed (int): seed for the initial weights of the field coefficients
        type_names (List[str]): the data's type names; must equal the energy model's (default: the energy model's)
        model_dtype (str): must equal the energy model's (default: the energy model's)
        avg_num_neighbors (float): normalisation of the field expansion's edge sums (use
            ``${training_data_stats:num_neighbors_mean}``; default: none)
        freeze_energy_model (bool): ``True``: the energy model's weights get ``requires_grad=False``
            and only the field part trains (zero-field E, F, stress stay exactly the energy
            model's); ``False`` (default): everything trains (see :func:`FieldAwareParamGroups` for a
            separate learning rate)
        compile_mode (str): nequip's ``eager`` / ``compile``
    """
    unknown = sorted(set(kwargs) - set(FIELD_SETTINGS))
    if unknown:
        raise TypeError(
            f"FieldAwareModel got unknown arguments {unknown}; the energy model's own settings belong in `model`, "
            f"field settings are {sorted(FIELD_SETTINGS)}"
        )
    settings = pop_field_settings(kwargs)
    defaults = {
        "seed": seed,
        "model_dtype": model_dtype,
        "type_names": list(type_names) if type_names else None,
    }
    graph_model, head = _unwrap_graph_model(_load_energy_model(model, defaults))

    metadata = dict(graph_model._metadata)
    loaded_types = list(graph_model.type_names)
    if type_names is not None and list(type_names) != loaded_types:
        raise ValueError(
            f"`type_names` {list(type_names)} do not match the energy model's type names {loaded_types}: the data "
            "must use the type names (and order) the energy model was trained with"
        )
    loaded_dtype = metadata.get(
        "model_dtype",
        {torch.float32: "float32", torch.float64: "float64"}[graph_model.model_dtype],
    )
    if model_dtype is not None and model_dtype != loaded_dtype:
        raise ValueError(
            f"`model_dtype` {model_dtype} differs from the energy model's {loaded_dtype}; fine-tuning keeps the "
            "energy model's dtype (leave `model_dtype` out)"
        )
    if "r_max" not in metadata:
        raise ValueError(
            "the energy model has no `r_max` in its metadata (was it built with a nequip model builder?)"
        )

    energy_network(head)  # clear errors before anything is changed
    if freeze_energy_model:
        for parameter in head.parameters():
            parameter.requires_grad_(False)
    builder_args = dict(
        head=head,
        seed=seed,
        model_dtype=loaded_dtype,
        type_names=loaded_types,
        r_max=float(metadata["r_max"]),
        avg_num_neighbors=avg_num_neighbors,
        settings=settings,
    )
    if compile_mode is not None:
        builder_args["compile_mode"] = compile_mode
    field_aware = _field_aware_graph_model(**builder_args)
    # keep the energy model's metadata (r_max, per-edge-type cutoffs, ...) exactly
    field_aware._metadata = metadata
    return field_aware


FieldAwareModel.__doc__ += FIELD_ARGS_DOC


def field_parameter_names(model: torch.nn.Module) -> List[str]:
    """Names of the parameters of the field part (every ``FieldExpansionEnergy``) of ``model``."""
    names = []
    for module_name, module in model.named_modules():
        if isinstance(module, FieldExpansionEnergy):
            names += [f"{module_name}.{name}" for name, _ in module.named_parameters()]
    return names


def FieldAwareParamGroups(
    model: torch.nn.Module,
    field: Optional[Dict[str, Any]] = None,
    energy_model: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]:
    """Optimizer parameter groups: the field part and the original energy model, each with its own settings.

    For ``training_module.optimizer.param_groups`` in a nequip-train config::

        optimizer:
          _target_: torch.optim.Adam
          lr: 0.005                        # default for both groups
          param_groups:
            _target_: nequip_pol.model.FieldAwareParamGroups
            energy_model: {lr: 0.0005}     # the original weights: 10x smaller steps
            field: {}                      # the field part: the optimizer's lr

    Frozen parameters (``requires_grad=False``, from ``freeze_energy_model``) are left out.

    Args:
        model: the model (nequip passes it)
        field: optimizer settings (e.g. ``lr``) of the field-expansion parameters
        energy_model: optimizer settings of all other parameters
    """
    field_names = set(field_parameter_names(model))
    if not field_names:
        raise ValueError(
            "FieldAwareParamGroups: the model has no field part (FieldExpansionEnergy)"
        )
    field_params, energy_params = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (field_params if name in field_names else energy_params).append(parameter)
    groups = [dict(params=field_params, **(field or {}))]
    if energy_params:
        groups.append(dict(params=energy_params, **(energy_model or {})))
    return groups
