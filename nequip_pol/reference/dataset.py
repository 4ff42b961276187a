"""Labelled data sets of the analytic reference material: generate, write, read, summarise.

:func:`generate_dataset` draws random frames of the paraelectric material
(:class:`~nequip_pol.reference.paraelectric.AnalyticPolarMaterial`: strained, displaced
supercells, some in a random field) and labels them with its exact energy, forces, stress,
polarization (shifted by random quanta, like Berry-phase data), Born charges and polarizability;
:func:`write_dataset` / :func:`read_dataset` store them as extended XYZ, and
:func:`dataset_statistics` gives the scales of the labels (for loss weights and normalisation).

Units: eV, A, V/A, e*A (cell dipole), e (Born charges), e*A^2/V (polarizability).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence

import ase
import ase.io
import numpy as np
import torch
from ase.stress import voigt_6_to_full_3x3_stress

from .paraelectric import TYPE_NAMES, AnalyticPolarMaterial, ideal_structure

__all__ = [
    "generate_dataset",
    "write_dataset",
    "read_dataset",
    "dataset_statistics",
]


@contextmanager
def _one_torch_thread():
    """Run the block with one torch thread, restoring the count afterwards."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)


def generate_dataset(
    n_frames: int,
    seed: int = 0,
    supercell: Sequence[int] = (2, 2, 2),
    displacement_std: float = 0.08,
    strain_std: float = 0.01,
    max_field: float = 0.2,
    field_fraction: float = 0.5,
    branch_shift_max: int = 2,
    material: Optional[AnalyticPolarMaterial] = None,
) -> List[ase.Atoms]:
    """Random frames of the reference material with all labels, deterministic given ``seed``.

    Each frame: the ideal ``supercell`` crystal under a random symmetric strain (entries
    N(0, strain_std)), with Gaussian displacements (std ``displacement_std`` A per Cartesian
    component); a fraction ``field_fraction`` of the frames gets a field of uniformly random
    direction and magnitude U(0, max_field) V/A, the others zero field.

    Labels: ``atoms.info``: ``total_energy`` (eV), ``stress`` (3, 3, eV/A^3), ``polarization``
    (3, e*A; shifted like Berry-phase data by sum_k n_k a_k with random integers
    |n_k| <= branch_shift_max), ``polarization_exact`` (3, the unshifted value),
    ``polarizability`` (3, 3, e*A^2/V), ``electric_field`` (3, V/A);
    ``atoms.arrays``: ``forces`` (n, 3, eV/A), ``born_effective_charges`` (n, 9, e, row-major
    [a*3 + b] = dP_a/dR_ib).
    """
    material = AnalyticPolarMaterial() if material is None else material
    # the graphs are tiny: intra-op threading only adds overhead (3x slower on 2 cores)
    with _one_torch_thread():
        rng = np.random.default_rng(seed)
        ideal = ideal_structure(supercell)
        frames = []
        for _ in range(int(n_frames)):
            strain = rng.normal(0.0, strain_std, size=(3, 3))
            strain = 0.5 * (strain + strain.T)
            defo = np.eye(3) + strain
            disp = rng.normal(0.0, displacement_std, size=(len(ideal), 3))
            has_field = rng.random() < field_fraction
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            magnitude = rng.uniform(0.0, max_field)
            shifts = rng.integers(-branch_shift_max, branch_shift_max + 1, size=3)
            field = direction * magnitude if has_field else np.zeros(3)

            atoms = ase.Atoms(
                numbers=ideal.numbers,
                positions=ideal.positions @ defo + disp,
                cell=ideal.cell.array @ defo,
                pbc=True,
            )
            props = material.properties(atoms, field)
            p_exact = props["polarization"]
            atoms.info["total_energy"] = props["total_energy"]
            atoms.info["stress"] = props["stress"]
            atoms.info["polarization"] = (
                p_exact + shifts.astype(float) @ atoms.cell.array
            )
            atoms.info["polarization_exact"] = p_exact
            atoms.info["polarizability"] = props["polarizability"]
            atoms.info["electric_field"] = field
            atoms.arrays["forces"] = props["forces"]
            atoms.arrays["born_effective_charges"] = props[
                "born_effective_charges"
            ].reshape(len(atoms), 9)
            frames.append(atoms)
    return frames


def write_dataset(frames: Sequence[ase.Atoms], path, force: bool = False) -> None:
    """Write ``frames`` as extended XYZ; refuses to overwrite an existing file unless ``force``."""
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists; pass force=True to overwrite")
    ase.io.write(path, list(frames), format="extxyz")


def read_dataset(path) -> List[ase.Atoms]:
    """Read an extended XYZ written by :func:`write_dataset`, with labels back in ``info``/``arrays``.

    ASE's reader moves the keys it knows (forces, stress, polarization, born_effective_charges)
    into a SinglePointCalculator and stores stress in Voigt form; this restores the layout
    documented in :func:`generate_dataset` (stress 3x3, Z* as (n, 9)).  The calculator is kept,
    so nequip's ``from_ase`` reads the frames either way.
    """
    frames = ase.io.read(os.fspath(path), index=":", format="extxyz")
    for atoms in frames:
        if atoms.calc is None:
            continue
        for key, value in atoms.calc.results.items():
            value = np.asarray(value)
            if key == "stress":
                atoms.info[key] = (
                    voigt_6_to_full_3x3_stress(value)
                    if value.shape == (6,)
                    else value.reshape(3, 3)
                )
            elif key == "energy":
                atoms.info.setdefault("total_energy", float(value))
            elif (
                value.ndim >= 1
                and value.shape[0] == len(atoms)
                and key != "polarization"
            ):
                atoms.arrays[key] = value.reshape(len(atoms), -1)
            else:
                atoms.info[key] = value
    return frames


def dataset_statistics(frames: Sequence[ase.Atoms]) -> Dict[str, float]:
    """Scales of the labels, for choosing training settings (loss weights, normalisation).

    Returns floats: ``per_atom_energy_mean`` / ``per_atom_energy_std`` (eV/atom),
    ``forces_rms`` (eV/A, over components), ``stress_std`` (eV/A^3), ``polarization_std``
    (e*A, per component of ``polarization_exact``), ``born_charge_rms`` (e, over components),
    ``born_charge_diag_mean`` (e, mean of the diagonal per species as ``born_charge_diag_mean_<X>``),
    ``polarizability_mean`` (e*A^2/V, mean of the trace / 3) and ``polarizability_std``.
    """
    e_pa = np.array([f.info["total_energy"] / len(f) for f in frames])
    forces = np.concatenate([f.arrays["forces"] for f in frames])
    zstar = np.concatenate(
        [f.arrays["born_effective_charges"].reshape(-1, 3, 3) for f in frames]
    )
    symbols = np.concatenate([f.get_chemical_symbols() for f in frames])
    pol = np.array(
        [f.info.get("polarization_exact", f.info["polarization"]) for f in frames]
    )
    alpha = np.array([f.info["polarizability"] for f in frames])
    stress = np.array([f.info["stress"] for f in frames])
    out = {
        "per_atom_energy_mean": float(e_pa.mean()),
        "per_atom_energy_std": float(e_pa.std()),
        "forces_rms": float(np.sqrt((forces**2).mean())),
        "stress_std": float(stress.std()),
        "polarization_std": float(pol.std(axis=0).mean()),
        "born_charge_rms": float(np.sqrt((zstar**2).mean())),
        "polarizability_mean": float(np.trace(alpha, axis1=1, axis2=2).mean() / 3.0),
        "polarizability_std": float(alpha.std(axis=0).mean()),
    }
    for s in TYPE_NAMES:
        sel = symbols == s
        if sel.any():
            out[f"born_charge_diag_mean_{s}"] = float(
                np.einsum("nii->n", zstar[sel]).mean() / 3.0
            )
    return out
