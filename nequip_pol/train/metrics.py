"""Loss and metrics managers for energy, forces, stress and the electric response.

Built on nequip's :class:`~nequip.train.MetricsManager`, with the polarization compared on the
nearest branch (:class:`~nequip_pol.data.NearestBranchPolarization`). Frames whose label is NaN
(absent quantities, see :class:`~nequip_pol.data.ElectricResponseKeysTransform`) do not contribute
to that term. Units: eV, eV/A, eV/A^3, e*A, e, e*A^2/V.
"""

from typing import Dict, Optional, Sequence

import torch

from nequip.data import AtomicDataDict, PerAtomModifier
from nequip.train import MetricsManager
from nequip.train.metrics import (
    MeanSquaredError,
    RootMeanSquaredError,
    MeanAbsoluteError,
)

from nequip.data.modifier import BaseModifier
from nequip.utils.global_dtype import _GLOBAL_DTYPE

from ..data.branch import NearestBranchPolarization
from .._keys import POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY
from ..nn.response import BORN_CHARGE_PROJECTION_KEY, PROJECTED_BORN_CHARGE_KEY

_E = AtomicDataDict.TOTAL_ENERGY_KEY
_F = AtomicDataDict.FORCE_KEY
_S = AtomicDataDict.STRESS_KEY
LOSS_KEYS = (_E, _F, _S, POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY)
#: labels that may be missing in some frames: NaN there is skipped
_PARTIAL_LABELS = (_S, POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY)


class BornChargesOrProjection(BaseModifier):
    """Metric field for the Born charges: the full Z* ((num_atoms, 3, 3), e), or, when the
    prediction holds projected Born charges v.Z* (a training step with
    ``born_charge_training="projected"``), the prediction and the reference projected on the same
    per-frame unit vectors v: (v.Z*_ref)_ib = sum_a v_a Z*_ref,i,ab, (num_atoms, 3), e.

    The mean squared error of the projections is an unbiased estimate of the full Z* MSE (v uniform
    on the sphere: E[v v^T] = I/3). NaN references stay NaN (``ignore_nan`` drops them).
    """

    def __init__(self) -> None:
        super().__init__(BORN_CHARGE_KEY)

    def __call__(self, data1, data2=None):
        if data2 is None:
            return data1[self.field]
        if PROJECTED_BORN_CHARGE_KEY not in data1:
            return data1[self.field], data2[self.field]
        projection = data1[BORN_CHARGE_PROJECTION_KEY]  # (num_frames, 3)
        if AtomicDataDict.BATCH_KEY in data2:
            projection = projection[data2[AtomicDataDict.BATCH_KEY]]
        else:
            projection = projection.expand(data2[self.field].shape[0], 3)
        target = torch.einsum(
            "na,nab->nb", projection.to(data2[self.field].dtype), data2[self.field]
        )
        return data1[PROJECTED_BORN_CHARGE_KEY], target


def _field(key: str, per_atom: bool, polarization_branch: str = "nearest"):
    if key == BORN_CHARGE_KEY:
        return BornChargesOrProjection()
    if key == POLARIZATION_KEY:
        return NearestBranchPolarization(per_atom=per_atom, branch=polarization_branch)
    if key == _E and per_atom:
        return PerAtomModifier(_E)
    return key


def _float_sum(metric):
    """Start the running ``sum`` of nequip's mean metrics as a float64 zero.

    nequip's metrics start it as an integer 0, which stays an integer on a DDP rank whose
    batches hold no entry of the quantity (frames lacking that label, NaN); the ranks then
    all-gather an int64 and a float64 tensor, and that rank reads the others' float bits as
    integers (a loss term of ~1e15, garbage validation metrics). Gradients are not affected.
    """
    metric.add_state(
        "sum", default=torch.zeros((), dtype=_GLOBAL_DTYPE), dist_reduce_fx="sum"
    )
    return metric


def _entry(name, key, metric, coeff, per_atom=False, polarization_branch="nearest"):
    return {
        "name": name,
        "field": _field(key, per_atom, polarization_branch),
        "metric": _float_sum(metric),
        "coeff": coeff,
        "ignore_nan": key in _PARTIAL_LABELS,
    }


def loss_term_name(key: str, per_atom: bool = False) -> str:
    """The metric name of the loss term of ``key`` (e.g. ``forces_mse``; the energy per atom:
    ``per_atom_energy_mse``)."""
    return ("per_atom_energy" if per_atom and key == _E else key) + "_mse"


def ElectricResponseLoss(
    coeffs: Dict[str, float] = {
        _E: 1.0,
        _F: 1.0,
        _S: 1.0,
        POLARIZATION_KEY: 1.0,
        BORN_CHARGE_KEY: 1.0,
        POLARIZABILITY_KEY: 1.0,
    },
    per_atom_energy: bool = True,
    polarization_branch: str = "nearest",
    type_names=None,
):
    """Weighted sum of mean squared errors of energy (per atom by default), forces, stress, the
    branch-folded polarization, Born charges and polarizability.

    ``polarization_branch``: ``"nearest"`` compares P with the label moved to the prediction's
    branch; ``"labels"`` with the label as it is, for data whose labels were moved to one
    consistent branch (``nequip-pol align-branches``; docs/training.md, "Polarization
    branches"). Validation and test metrics always use the nearest branch.

    A key left out of ``coeffs`` (or given ``null``) is not trained on. Loss component names:
    ``per_atom_energy_mse`` (or ``total_energy_mse``), ``forces_mse``, ``stress_mse``,
    ``polarization_mse``, ``born_effective_charges_mse``, ``polarizability_mse``.

    With a model trained with projected Born charges (the head's ``born_charge_training="projected"``,
    or the modifier ``born_charge_training_mode``), ``born_effective_charges_mse`` of a
    training step is the MSE of v.Z* against v.Z*_ref (an unbiased estimate of the full Z* MSE);
    in validation and test the full Z* is compared.

    Example::

        loss:
          _target_: nequip_pol.train.ElectricResponseLoss
          coeffs: {total_energy: 1.0, forces: 1.0, polarization: 1.0,
                   born_effective_charges: 1.0, polarizability: 1.0}
    """
    unknown = set(coeffs) - set(LOSS_KEYS)
    if unknown:
        raise ValueError(
            f"unknown loss keys {sorted(unknown)}; choose from {list(LOSS_KEYS)}"
        )
    metrics = []
    for key in LOSS_KEYS:
        if coeffs.get(key) is None:
            continue
        per_atom = key == _E and per_atom_energy
        name = loss_term_name(key, per_atom)
        metrics.append(
            _entry(
                name,
                key,
                MeanSquaredError(),
                coeffs[key],
                per_atom,
                polarization_branch,
            )
        )
    return MetricsManager(metrics, type_names=type_names)


def ElectricResponseMetrics(
    coeffs: Optional[Dict[str, Optional[float]]] = None,
    quantities: Sequence[str] = LOSS_KEYS,
    type_names=None,
):
    """RMSE and MAE of energy (total and per atom), forces, stress, polarization (per cell and
    per atom, nearest branch), Born charges and polarizability.

    ``coeffs`` maps metric names (e.g. ``forces_rmse``, ``polarization_rmse``) to their weight in
    ``weighted_sum`` (the validation score nequip monitors); default: forces, per-atom energy,
    polarization, Born charges and polarizability RMSE with weight 1. ``quantities`` lists the
    labels the data have (e.g. leave out ``stress`` for molecules).
    """
    default_coeffs = coeffs is None
    if coeffs is None:
        coeffs = {
            "per_atom_energy_rmse": 1.0,
            "forces_rmse": 1.0,
            "polarization_rmse": 1.0,
            "born_effective_charges_rmse": 1.0,
            "polarizability_rmse": 1.0,
        }
    unknown = set(quantities) - set(LOSS_KEYS)
    if unknown:
        raise ValueError(
            f"unknown quantities {sorted(unknown)}; choose from {list(LOSS_KEYS)}"
        )
    metrics = []
    for key in [k for k in LOSS_KEYS if k in quantities]:
        for per_atom in (False, True) if key in (_E, POLARIZATION_KEY) else (False,):
            prefix = (
                ("per_atom_" + ("energy" if key == _E else key)) if per_atom else key
            )
            for suffix, metric in (
                ("rmse", RootMeanSquaredError),
                ("mae", MeanAbsoluteError),
            ):
                name = f"{prefix}_{suffix}"
                metrics.append(_entry(name, key, metric(), coeffs.get(name), per_atom))
    names = {m["name"] for m in metrics}
    if default_coeffs:
        coeffs = {k: v for k, v in coeffs.items() if k in names}
        for m in metrics:
            m["coeff"] = coeffs.get(m["name"])
    unknown = set(coeffs) - names
    if unknown:
        raise ValueError(f"unknown metric names {sorted(unknown)}")
    return MetricsManager(metrics, type_names=type_names)
