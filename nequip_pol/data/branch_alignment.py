"""Polarization labels on one consistent branch, taken from a reference model.

A Berry-phase calculation gives each frame's cell dipole modulo the quantum e*R, on whatever
branch its phase happened to land; the nearest-branch loss (:mod:`nequip_pol.data.branch`) lets a
model choose the branch frame by frame. That freedom can trap a model: it may fit one family of
frames (BaTiO3's thermal snapshots, all polarized along +z) a whole quantum away from the branch
that another family (frames with several domains) needs, since a sum of local, inversion-odd
dipoles gives a domain frame the fraction of the polar state's P that its domains add up to.
Then no folded loss pulls it back (docs/training.md, "Polarization branches").

This module moves every label by whole quanta to the branch nearest a reference model's
prediction (a model that fits *every* frame within a small fraction of a quantum, e.g. a shipped
one) and reports how far the reference is from each label: where that residual is not small, the
reference itself is on no consistent branch, and nothing is written. The labels keep their values
modulo the quantum, i.e. they stay what the DFT computed. Training on the aligned files with
``polarization_branch: labels`` (configs/dft.yaml) compares P as labelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

__all__ = [
    "FrameAlignment",
    "polarization_label",
    "set_polarization_label",
    "align_frames",
    "align_files",
]


@dataclass
class FrameAlignment:
    """One frame's move: ``quanta`` whole quanta added along each lattice vector, and the
    reference minus the moved label in quanta (``residual``, each entry in [-1/2, 1/2])."""

    file: str
    index: int
    quanta: np.ndarray
    residual: np.ndarray


def polarization_label(atoms) -> Optional[np.ndarray]:
    """The frame's P label (3,), e*A, from its calculator results or its info; None without one."""
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    for source in (results, atoms.info):
        if "polarization" in source:
            return np.asarray(source["polarization"], dtype=float).reshape(3)
    return None


def set_polarization_label(atoms, value) -> None:
    """Replace the P label where it is stored (calculator results or info)."""
    value = np.asarray(value, dtype=float).reshape(3)
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    if "polarization" in results:
        results["polarization"] = value
    else:
        atoms.info["polarization"] = value


def align_frames(
    frames: Sequence, reference: Callable, file: str = ""
) -> List[FrameAlignment]:
    """Move the P labels of ``frames`` (in place) to the branch nearest ``reference(atoms)``.

    Args:
        frames: ``ase.Atoms`` with a ``polarization`` label (frames without one are skipped)
        reference: the reference cell dipole of a frame, (3,) e*A
        file: the frames' file, for the report
    Returns:
        one :class:`FrameAlignment` per frame with a label
    """
    import torch

    from .branch import align_to_reference

    moves = []
    for index, atoms in enumerate(frames):
        label = polarization_label(atoms)
        if label is None:
            continue
        periodic = bool(np.any(atoms.pbc)) and abs(atoms.cell.volume) > 1e-8
        aligned, quanta, residual = align_to_reference(
            torch.tensor(label).view(1, 3),
            torch.as_tensor(np.asarray(reference(atoms), dtype=float)).view(1, 3),
            torch.tensor(np.asarray(atoms.cell[:], dtype=float)).view(1, 3, 3),
            torch.tensor([periodic]),
        )
        set_polarization_label(atoms, aligned[0].numpy())
        moves.append(
            FrameAlignment(file, index, quanta[0].numpy(), residual[0].numpy())
        )
    return moves


def align_files(
    model: str,
    files: Sequence[str],
    out_dir: str,
    max_residual: float = 0.1,
    force: bool = False,
    report: Callable[[str], None] = print,
) -> List[FrameAlignment]:
    """Align the P labels of every frame of ``files`` to ``model``'s branch; write ``out_dir/NAME``.

    Args:
        model: a MODEL argument (:mod:`nequip_pol.integrations.model_arguments`): a shipped
            model's name, a package, a checkpoint or a compiled model
        files: extended-XYZ files; each is written under its own name, frames in their order,
            every other key unchanged (a dataset split file by file stays the same split)
        out_dir: an existing folder; existing outputs are refused unless ``force``
        max_residual: the largest |reference - aligned label| allowed, in quanta; above it the
            reference is on no consistent branch for that frame, and nothing is written
    Returns:
        the moves, frame by frame
    Raises:
        ValueError: the residual is exceeded, two files share a name, or a file has no P label
        FileExistsError: an output exists and ``force`` is false
    """
    import ase.io

    from ..integrations.model_arguments import load_calculator
    from ..io.qe import write_frames

    out_dir = Path(out_dir)
    outputs = [out_dir / Path(f).name for f in files]
    if len(set(outputs)) != len(outputs):
        raise ValueError("two input files have the same name; align them one at a time")
    for f, out in zip(files, outputs):
        if Path(f).resolve() == out.resolve():
            raise ValueError(
                f"{f}: the output would overwrite the input; choose another folder"
            )
    existing = [str(o) for o in outputs if o.exists()]
    if existing and not force:
        raise FileExistsError(
            f"output file(s) exist: {', '.join(existing)}; not overwriting (use --force)"
        )
    calc = load_calculator(model)

    def reference(atoms):
        atoms = atoms.copy()
        atoms.calc = calc
        return calc.get_property("polarization", atoms)

    all_frames, moves = [], []
    for f in files:
        frames = ase.io.read(f, ":")
        found = align_frames(frames, reference, file=str(f))
        if not found:
            raise ValueError(f"{f}: no frame has a polarization label")
        all_frames.append(frames)
        moves += found
        report(f"{f}: {len(frames)} frames, reference evaluated")
    worst = max(moves, key=lambda m: float(np.abs(m.residual).max()))
    if np.abs(worst.residual).max() > max_residual:
        bad = [m for m in moves if np.abs(m.residual).max() > max_residual]
        listed = ", ".join(f"{Path(m.file).name}:{m.index}" for m in bad[:8])
        raise ValueError(
            f"{model} is {np.abs(worst.residual).max():.3f} quanta from the labels of "
            f"{Path(worst.file).name} frame {worst.index} (more than --max-residual "
            f"{max_residual}; {len(bad)} frames: {listed}): it does not fit these frames on one "
            "branch, so it cannot choose one; nothing written"
        )
    for frames, out in zip(all_frames, outputs):
        write_frames(frames, out, force=force)
    return moves
