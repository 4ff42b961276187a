"""Data transforms for electric-response training data."""

import torch

from nequip.data import AtomicDataDict

from .._keys import (
    ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
)

from typing import Sequence


class ElectricResponseKeysTransform(torch.nn.Module):
    """Complete a frame's electric keys so that frames with and without them batch together.

    - no ``electric_field``: zero field (the frame was computed without a field);
    - a label in ``labels`` that the frame lacks gets NaN of the right shape, which the losses
      and metrics skip (``ignore_nan``); Born charges given as 9 numbers per atom become 3x3.

    Raises a ``ValueError`` naming the key for a field or label of the wrong shape.

    Args:
        labels: the response labels to complete (default: P, Z*, alpha)
    """

    def __init__(
        self,
        labels: Sequence[str] = (POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY),
    ):
        super().__init__()
        self.labels = list(labels)

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        pos = data[AtomicDataDict.POSITIONS_KEY]
        num_atoms = pos.shape[0]
        shapes = {
            ELECTRIC_FIELD_KEY: (1, 3),
            POLARIZATION_KEY: (1, 3),
            BORN_CHARGE_KEY: (num_atoms, 3, 3),
            POLARIZABILITY_KEY: (1, 3, 3),
        }
        if ELECTRIC_FIELD_KEY not in data:
            data[ELECTRIC_FIELD_KEY] = torch.zeros((1, 3), dtype=pos.dtype)
        for key in self.labels:
            if key not in data:
                data[key] = torch.full(shapes[key], float("nan"), dtype=pos.dtype)
        for key, shape in shapes.items():
            if key not in data:
                continue
            value = data[key]
            if value.numel() != torch.Size(shape).numel():
                raise ValueError(
                    f"`{key}` has {value.numel()} numbers ({tuple(value.shape)}), expected shape {shape}"
                )
            data[key] = value.reshape(shape).to(pos.dtype)
        if not bool(torch.isfinite(data[ELECTRIC_FIELD_KEY]).all()):
            raise ValueError(
                f"`{ELECTRIC_FIELD_KEY}` is NaN or infinite in a frame: {data[ELECTRIC_FIELD_KEY].tolist()}"
            )
        return data
