"""The polarization quantum: comparing cell dipoles on the nearest branch.

In a periodic cell the Berry-phase cell dipole P (e*A) is defined only modulo e*R for any
lattice vector R. Two values are compared after moving the reference by the lattice vector that
brings it closest to the prediction (minimum image in fractional coordinates); frames without
periodic boundaries (no cell, or pbc all false) are compared directly.

Folding makes a loss blind to whole quanta, frame by frame, and that is also its weakness: a
model can fit one set of frames (BaTiO3's thermal snapshots, all polarized along +z) a quantum
away from the branch that another set (frames with several domains) needs, and then no folded
loss pulls it back (docs/training.md, "Polarization branches"). Labels moved once to one
consistent branch (:func:`align_to_reference`) and compared as labelled
(``NearestBranchPolarization(branch="labels")``, the config's ``polarization_branch: labels``)
leave no such choice.
"""

import torch

from nequip.data import AtomicDataDict
from nequip.data.modifier import BaseModifier

from .._keys import POLARIZATION_KEY


def _in_quanta(
    vector: torch.Tensor, cell: torch.Tensor, periodic: torch.Tensor
) -> torch.Tensor:
    """Fractional coordinates f of cell dipoles, vector = f @ cell: how many quanta e*R along
    each lattice vector, (num_frames, 3); Cartesian components where ``periodic`` is false."""
    safe_cell = torch.where(
        periodic.view(-1, 1, 1),
        cell,
        torch.eye(3, dtype=cell.dtype, device=cell.device),
    )
    return torch.linalg.solve(
        safe_cell.transpose(-1, -2), vector.unsqueeze(-1)
    ).squeeze(-1)


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
    quanta = torch.round(_in_quanta(target - reference, cell, periodic))
    quanta = torch.where(torch.isfinite(quanta), quanta, torch.zeros_like(quanta))
    shift = torch.matmul(quanta.unsqueeze(-2), cell).view(-1, 3)
    return torch.where(periodic.view(-1, 1), reference + shift, reference)


def align_to_reference(
    labels: torch.Tensor,
    reference: torch.Tensor,
    cell: torch.Tensor,
    periodic: torch.Tensor,
):
    """Move labelled cell dipoles by whole quanta to the branch nearest a reference.

    The reference is, e.g., a trained model's prediction that fits every frame within a small
    fraction of a quantum on one consistent branch; the labels keep their values modulo the
    quantum, so they stay what the DFT computed.

    Args:
        labels: labelled cell dipoles, (num_frames, 3), e*A
        reference: reference cell dipoles, (num_frames, 3), e*A
        cell: lattice vectors as rows, (num_frames, 3, 3), A
        periodic: (num_frames,) bool; non-periodic frames are left as they are
    Returns:
        ``(aligned, quanta, residual)``: the moved labels (num_frames, 3), e*A; the whole quanta
        added along each lattice vector (num_frames, 3); and reference minus aligned labels in
        fractional coordinates (num_frames, 3), between -1/2 and 1/2: how far the reference is
        from the labels it aligns, in quanta
    """
    aligned = fold_to_nearest_branch(labels, reference, cell, periodic)
    cell = cell.view(-1, 3, 3).to(labels.dtype)
    quanta = torch.round(_in_quanta(aligned - labels, cell, periodic))
    residual = _in_quanta(reference - aligned, cell, periodic)
    zero = torch.zeros_like(residual)
    periodic = periodic.view(-1, 1)
    return (
        aligned,
        torch.where(periodic, quanta, zero),
        torch.where(periodic, residual, zero),
    )


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
        branch: ``"nearest"`` (fold the label to the prediction's branch) or ``"labels"``
            (compare with the label as it is: for labels already on one consistent branch,
            :func:`align_to_reference`)
    """

    BRANCHES = ("nearest", "labels")

    def __init__(self, per_atom: bool = False, branch: str = "nearest") -> None:
        super().__init__(POLARIZATION_KEY)
        if branch not in self.BRANCHES:
            raise ValueError(
                f"polarization branch {branch!r}: choose from {list(self.BRANCHES)}"
            )
        self.per_atom = per_atom
        self.branch = branch

    def __call__(self, data1, data2=None):
        if data2 is None:
            return self._scale(data1[self.field], data1)
        pred, target = data1[self.field], data2[self.field]
        if self.branch == "labels":
            return self._scale(pred, data1), self._scale(target, data2)
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
