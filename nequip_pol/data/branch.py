"""The polarization quantum: comparing cell dipoles on the nearest branch.

In a periodic cell the Berry-phase cell dipole P (e*A) is defined only modulo e*R for any
lattice vector R. Two values are compared after moving the reference by the lattice vector that
brings it closest to the prediction (minimum image in fractional coordinates); frames without
periodic boundaries (no cell, or pbc all false) are compared directly.
"""

import torch

from nequip.data import AtomicDataDict
from nequip.data.modifier import BaseModifier

from .._keys import POLARIZATION_KEY


def fold_to_nearest_branch(
    reference: torch.Tensor,
    target: torch.Tensor,
    cell: torch.Tensor,
    periodic: torch.Tensor,
) -> torch.Tensor:
    """Shift ``reference`` by the lattice vector that brings it nearest to ``target``.

    Args:
        reference: cell dipoles to move, (num_frames, 3), e*A
        target: cell dipoles to approach, (num_frames, 3), e*A
        cell: lattice vectors as rows, (num_frames, 3, 3), A
        periodic: (num_frames,) bool, frames whose dipole is defined modulo the quantum
    Returns:
        the shifted reference, (num_frames, 3); unchanged where ``periodic`` is false
    """
    cell = cell.view(-1, 3, 3).to(reference.dtype)
    difference = (target - reference).unsqueeze(-2)  # (n, 1, 3)
    # fractional coordinates of the difference: d = f @ cell
    safe_cell = torch.where(
        periodic.view(-1, 1, 1),
        cell,
        torch.eye(3, dtype=cell.dtype, device=cell.device),
    )
    fractional = torch.linalg.solve(
        safe_cell.transpose(-1, -2), difference.transpose(-1, -2)
    ).transpose(-1, -2)
    quanta = torch.round(fractional)
    quanta = torch.where(torch.isfinite(quanta), quanta, torch.zeros_like(quanta))
    shift = torch.matmul(quanta, cell).view(-1, 3)
    return torch.where(periodic.view(-1, 1), reference + shift, reference)


def _periodic_frames(data: AtomicDataDict.Type) -> torch.Tensor:
    num_frames = AtomicDataDict.num_frames(data)
    pos = data[AtomicDataDict.POSITIONS_KEY]
    if AtomicDataDict.CELL_KEY not in data:
        return torch.zeros(num_frames, dtype=torch.bool, device=pos.device)
    if AtomicDataDict.PBC_KEY in data:
        periodic = data[AtomicDataDict.PBC_KEY].view(num_frames, 3).any(-1)
    else:
        periodic = torch.ones(num_frames, dtype=torch.bool, device=pos.device)
    volume = torch.linalg.det(data[AtomicDataDict.CELL_KEY].view(-1, 3, 3)).abs()
    return periodic & (volume > 1e-8)


class NearestBranchPolarization(BaseModifier):
    """Metric field: predicted P and the reference P moved to the branch nearest the prediction.

    Use as the ``field`` of a metric in nequip's ``MetricsManager``; NaN references (frames without
    a polarization label) stay NaN, so ``ignore_nan: true`` drops them.

    Args:
        per_atom: divide both by the number of atoms (e*A per atom)
    """

    def __init__(self, per_atom: bool = False) -> None:
        super().__init__(POLARIZATION_KEY)
        self.per_atom = per_atom

    def __call__(self, data1, data2=None):
        if data2 is None:
            return self._scale(data1[self.field], data1)
        pred, target = data1[self.field], data2[self.field]
        target = fold_to_nearest_branch(
            target,
            pred.detach(),
            data2[AtomicDataDict.CELL_KEY],
            _periodic_frames(data2),
        )
        return self._scale(pred, data1), self._scale(target, data2)

    def _scale(self, value, data):
        if not self.per_atom:
            return value
        return value / data[AtomicDataDict.NUM_NODES_KEY].view(-1, 1).to(value.dtype)

    def __str__(self) -> str:
        return "per_atom_polarization" if self.per_atom else "polarization"

    @property
    def type(self) -> str:
        return "graph"
