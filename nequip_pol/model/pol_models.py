"""Field-aware NequIP and Allegro models.

Each builder builds the stock nequip/allegro energy model with every one of its
hyperparameters and makes it field-aware with :func:`~nequip_pol.model.field_aware.make_field_aware`
(the same transformation that :func:`~nequip_pol.model.FieldAwareModel` applies to an existing
model): :class:`~nequip_pol.nn.FieldExpansionEnergy` is inserted after the per-atom energy (so
the field enthalpy joins the per-atom energies before they are summed), and the stock
force/stress head is replaced with the shared :class:`~nequip_pol.nn.ElectricResponseOutput`.
"""

from typing import Dict, Optional, Sequence, Union

from nequip.model import model_builder, NequIPGNNModel

from .field_aware import (
    FIELD_ARGS_DOC,
    make_field_aware,
    pop_field_settings,
)  # noqa: F401


def _field_aware_build(stock_builder, type_names, avg_num_neighbors, kwargs: dict):
    """``stock_builder`` (a nequip model builder) with ``kwargs`` less the field settings
    (:func:`~nequip_pol.model.field_aware.pop_field_settings`, which removes them from
    ``kwargs``), made field-aware with those settings."""
    settings = pop_field_settings(kwargs)
    stock = stock_builder(
        type_names=type_names, avg_num_neighbors=avg_num_neighbors, **kwargs
    )
    return make_field_aware(
        stock,
        type_names=type_names,
        avg_num_neighbors=avg_num_neighbors,
        settings=settings,
    )


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

    return _field_aware_build(AllegroModel, type_names, avg_num_neighbors, kwargs)


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
    return _field_aware_build(NequIPGNNModel, type_names, avg_num_neighbors, kwargs)


AllegroPolModel.__doc__ += FIELD_ARGS_DOC
NequIPPolModel.__doc__ += FIELD_ARGS_DOC
