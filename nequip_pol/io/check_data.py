"""Sanity checks of an extended-XYZ dataset with polarization, Born charges and polarizability.

``check_dataset(path)`` returns a :class:`DataReport` (``print(report)`` gives a readable summary,
``report.ok`` is False when there are hard errors: unreadable file, non-finite values, wrong shapes).

Checks: frame count and species, which keys are present (``born_charge`` is accepted as an alias of
``born_effective_charges`` and ``energy`` of ``total_energy``), the acoustic sum rule of the Born
charges (max over frames of max_ab |sum_i Z*_i,ab|), the asymmetry of the polarizability
(max |alpha - alpha^T|), and the branch consistency of P: each frame's cell dipole is expressed in
fractional coordinates of its own lattice (P = sum_k f_k R_k, quantum e*R_k), folded to [-1/2, 1/2),
the common centre of all frames is found on the circle (so a wrap at +-1/2 does not matter), and the
spread around it and the centre itself (the constant offset, e.g. half quanta) are reported.
Where frames carry P and Born charges, the polarization offset that inversion allows (0 or 1/2
quantum per lattice vector, the model's ``polarization_offset_fractional``) is estimated
(:mod:`nequip_pol.data.offset`), with a warning when the frames are polarized to one side only
or do not decide it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import NequipPolIOError

__all__ = [
    "DataReport",
    "DataCheckError",
    "check_dataset",
    "loss_labels",
    "DFT_RECIPE_LABELS",
    "DEFAULT_KEY_ALIASES",
    "P_SPREAD_WARN",
]

#: file key -> canonical key, applied before any user mapping
DEFAULT_KEY_ALIASES = {
    "born_charge": "born_effective_charges",
    "energy": "total_energy",
}

#: canonical keys and their allowed shapes ("N" = number of atoms)
_SHAPES = {
    "total_energy": [()],
    "forces": [("N", 3)],
    "stress": [(6,), (9,), (3, 3)],
    "polarization": [(3,)],
    "born_effective_charges": [("N", 9), ("N", 3, 3)],
    "polarizability": [(9,), (3, 3)],
    "electric_field": [(3,)],
}
_EXPECTED = [
    "total_energy",
    "forces",
    "stress",
    "polarization",
    "born_effective_charges",
    "polarizability",
]

#: the labels the loss of configs/dft.yaml uses: check-data's default readiness check
DFT_RECIPE_LABELS = tuple(_EXPECTED)

#: spread of folded P (fractional units) above which the frames are reported as inconsistent
P_SPREAD_WARN = 0.25


class DataCheckError(NequipPolIOError):
    """The dataset has hard errors (raised only on request; ``check_dataset`` returns a report)."""


@dataclass
class DataReport:
    path: str
    n_frames: int = 0
    n_atoms: tuple = (0, 0)  # min, max
    species: dict = field(default_factory=dict)  # symbol -> total count over frames
    keys: dict = field(
        default_factory=dict
    )  # canonical key -> number of frames having it
    missing: dict = field(
        default_factory=dict
    )  # expected key -> number of frames lacking it
    asr_max: float | None = None  # max_frames max_ab |sum_i Z_i,ab|, e
    asr_frame: int | None = None
    alpha_asym_max: float | None = None  # max_frames max |alpha - alpha^T|, e*A^2/V
    alpha_asym_frame: int | None = None
    p_offset_frac: np.ndarray | None = None  # common centre of folded fractional P
    p_spread_frac: np.ndarray | None = None  # max |f - centre| per lattice direction
    p_rms_frac: np.ndarray | None = None  # rms |f - centre| per lattice direction
    p_concentration: np.ndarray | None = (
        None  # mean resultant length of exp(2 pi i f): 1 tight, 0 uniform
    )
    p_consistent: bool | None = None
    inversion_offset: object | None = None  # nequip_pol.data.offset.OffsetEstimate
    needed: tuple = ()  # labels the training config's loss uses (check_dataset's `needed`)

    @property
    def not_ready(self) -> dict:
        """Needed labels absent in some or all frames: {label: frames lacking it}."""
        return {
            k: self.n_frames - self.keys.get(k, 0)
            for k in self.needed
            if self.keys.get(k, 0) < self.n_frames
        }

    @property
    def status(self) -> str:
        """``OK``, ``NOT READY`` (a label the loss needs is missing) or ``FAILED`` (hard errors)."""
        if not self.ok:
            return "FAILED"
        return "NOT READY" if self.not_ready else "OK"

    ranges: dict | None = (
        None  # nequip_pol.guards.data_ranges: field (V/A), closest pairs (A)
    )
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        def fmt(v):
            return "n/a" if v is None else f"{v:.3e}"

        lines = [f"== {self.path}"]
        if (
            not self.n_frames
        ):  # unreadable, missing or empty: the errors are the whole report
            lines.extend(f"ERROR: {e}" for e in self.errors)
            lines.append("status: " + ("OK" if self.ok else "FAILED"))
            return "\n".join(lines)
        lines.append(
            f"frames: {self.n_frames}   atoms/frame: {self.n_atoms[0]}"
            + (f"-{self.n_atoms[1]}" if self.n_atoms[1] != self.n_atoms[0] else "")
        )
        lines.append(
            "species: "
            + (
                ", ".join(f"{s} ({n})" for s, n in sorted(self.species.items()))
                or "none"
            )
        )
        lines.append(
            "keys: "
            + (
                ", ".join(f"{k} ({n}/{self.n_frames})" for k, n in self.keys.items())
                or "none"
            )
        )
        groups = {"all frames": [], "some frames": [], "no frames": []}
        for k in _EXPECTED:
            n = self.keys.get(k, 0)
            group = "all" if n == self.n_frames else ("no" if n == 0 else "some")
            groups[f"{group} frames"].append(k if group != "some" else f"{k} ({n})")
        lines.append(
            "labels in "
            + "; ".join(f"{g}: {', '.join(ks) or '-'}" for g, ks in groups.items())
        )
        asr = fmt(self.asr_max) + (
            f" e (frame {self.asr_frame})" if self.asr_max is not None else ""
        )
        lines.append(f"Born-charge acoustic sum rule, max |sum_i Z*_i|: {asr}")
        asym = fmt(self.alpha_asym_max) + (
            f" e*A^2/V (frame {self.alpha_asym_frame})"
            if self.alpha_asym_max is not None
            else ""
        )
        lines.append(f"polarizability asymmetry, max |alpha - alpha^T|: {asym}")
        if self.p_offset_frac is not None:

            def vec(v, f="{:.4f}"):
                return "[" + " ".join(f.format(x) for x in v) + "]"

            lines.append(
                "polarization in fractional units of the quantum e*R (folded to [-1/2, 1/2)): "
                f"common offset {vec(self.p_offset_frac, '{:+.4f}')}, max spread {vec(self.p_spread_frac)}, "
                f"rms spread {vec(self.p_rms_frac)}, concentration {vec(self.p_concentration, '{:.3f}')}"
            )
            if self.p_consistent:
                lines.append(
                    "  -> consistent: all frames on one branch within the spread above"
                )
                half = [
                    k
                    for k, x in enumerate(self.p_offset_frac)
                    if abs(abs(x) - 0.5) < 0.05
                ]
                if half:
                    lines.append(
                        "  note: constant offset of half a quantum along "
                        + ", ".join("a%d" % (k + 1) for k in half)
                    )
            else:
                lines.append(
                    f"  -> branch NOT verifiable: frames spread by >= {P_SPREAD_WARN} quanta "
                    "(large P fluctuations or mixed branches)"
                )
        else:
            lines.append("polarization: n/a")
        if self.inversion_offset is not None:
            lines.extend(self.inversion_offset.report_lines())
        if self.ranges is not None:
            from ..guards import format_ranges

            lines.extend(format_ranges(self.ranges).splitlines())
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        for e in self.errors:
            lines.append(f"ERROR: {e}")
        status = self.status
        if status == "NOT READY":
            status += " to train: the loss needs " + ", ".join(
                f"{k} (absent in {n} of {self.n_frames} frames)"
                for k, n in self.not_ready.items()
            )
        lines.append("status: " + status)
        return "\n".join(lines)


def _frame_values(atoms) -> dict:
    vals = {}
    for k, v in atoms.info.items():
        vals[k] = v
    for k, v in atoms.arrays.items():
        if k not in ("numbers", "positions"):
            vals[k] = v
    if atoms.calc is not None:
        for k, v in getattr(atoms.calc, "results", {}).items():
            vals[k] = v
    return vals


def _shape_ok(shape, allowed, n) -> bool:
    for a in allowed:
        if len(a) == len(shape) and all(
            (d == n if s == "N" else d == s) for s, d in zip(a, shape)
        ):
            return True
    return False


def _as_3x3(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v.reshape(3, 3)


def _circular_centre(frac: np.ndarray) -> np.ndarray:
    """Centre of fractional coordinates on the unit circle, in [-1/2, 1/2)."""
    ang = 2 * np.pi * frac
    c = np.arctan2(np.sin(ang).mean(axis=0), np.cos(ang).mean(axis=0)) / (2 * np.pi)
    return c - np.floor(c + 0.5)


def loss_labels(config) -> tuple:
    """The labels a nequip-train config's loss uses: ``training_module.loss.coeffs`` keys with
    a nonzero weight (``per_atom_energy`` counts as ``total_energy``).

    Args:
        config: path of a YAML config, or its loaded ``dict``
    """
    import yaml

    if not isinstance(config, dict):
        path = Path(config)
        if not path.is_file():
            raise DataCheckError(f"{path}: no such config file")
        config = yaml.safe_load(path.read_text()) or {}
    try:
        coeffs = config["training_module"]["loss"]["coeffs"]
    except (KeyError, TypeError):
        raise DataCheckError(
            "the config has no training_module.loss.coeffs: cannot tell which labels its loss uses"
        ) from None
    labels = []
    for key, weight in coeffs.items():
        key = {"per_atom_energy": "total_energy"}.get(key, key)
        try:
            used = float(weight) != 0.0
        except (TypeError, ValueError):  # an interpolation such as ${loss_polarization}
            used = True
        if used and key in _SHAPES and key not in labels:
            labels.append(key)
    return tuple(labels)


def check_dataset(
    path, key_mapping: dict | None = None, needed: tuple | list = ()
) -> DataReport:
    """Check one extended-XYZ file; never raises for data problems (see ``report.errors``).

    Args:
        path: extended-XYZ file.
        key_mapping: extra ``{file key: canonical key}`` renames (canonical keys: total_energy,
            forces, stress, polarization, born_effective_charges, polarizability, electric_field).
        needed: labels the training needs (:func:`loss_labels` of its config): the report's
            ``status`` is ``NOT READY`` when one is absent in any frame.
    """
    import ase.io

    path = Path(path)
    rep = DataReport(path=str(path), needed=tuple(needed))
    aliases = dict(DEFAULT_KEY_ALIASES)
    aliases.update(key_mapping or {})
    if not path.is_file():
        rep.errors.append(
            f"{path}: "
            + (
                "is a folder, not an extended-XYZ file"
                if path.is_dir()
                else "no such file"
            )
        )
        return rep
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 -- any reader failure is "unreadable"
        rep.errors.append(
            f"{path}: unreadable extended-XYZ file: {type(exc).__name__}: {exc}"
        )
        return rep
    if not frames:
        rep.errors.append(f"{path}: no frames")
        return rep

    rep.n_frames = len(frames)
    nat = [len(a) for a in frames]
    rep.n_atoms = (min(nat), max(nat))
    species: dict = {}
    present: dict = {}
    asr = []
    asym = []
    frac_p = []
    offset_frames = []  # (positions, cell, numbers, P, Z*) for the inversion offset

    for i, atoms in enumerate(frames):
        for s in atoms.get_chemical_symbols():
            species[s] = species.get(s, 0) + 1
        n = len(atoms)
        if not np.all(np.isfinite(atoms.positions)):
            rep.errors.append(f"frame {i}: non-finite positions")
        if not np.all(np.isfinite(atoms.cell[:])):
            rep.errors.append(f"frame {i}: non-finite cell")
        raw = _frame_values(atoms)
        vals = {}
        for k, v in raw.items():
            ck = aliases.get(k, k)
            if ck in _SHAPES:
                vals[ck] = v
        for ck, v in vals.items():
            present[ck] = present.get(ck, 0) + 1
            try:
                arr = np.asarray(v, dtype=float)
            except (TypeError, ValueError):
                rep.errors.append(f"frame {i}: {ck} is not numeric")
                continue
            if not _shape_ok(arr.shape, _SHAPES[ck], n):
                rep.errors.append(
                    f"frame {i}: {ck} has shape {arr.shape}, expected one of "
                    + ", ".join(
                        str(tuple(n if d == "N" else d for d in s)) for s in _SHAPES[ck]
                    )
                )
                continue
            if not np.all(np.isfinite(arr)):
                rep.errors.append(f"frame {i}: {ck} contains NaN or inf")
                continue
            vals[ck] = arr
        # derived checks on well-formed values only
        z = vals.get("born_effective_charges")
        if isinstance(z, np.ndarray) and z.size == 9 * n and np.all(np.isfinite(z)):
            asr.append((float(np.abs(z.reshape(n, 3, 3).sum(axis=0)).max()), i))
        a = vals.get("polarizability")
        if isinstance(a, np.ndarray) and a.size == 9 and np.all(np.isfinite(a)):
            a = _as_3x3(a)
            asym.append((float(np.abs(a - a.T).max()), i))
        p = vals.get("polarization")
        if isinstance(p, np.ndarray) and p.shape == (3,) and np.all(np.isfinite(p)):
            cell = atoms.cell[:]
            if abs(np.linalg.det(cell)) > 1e-8 and np.all(atoms.pbc):
                f = np.linalg.solve(cell.T, p)
                frac_p.append(f - np.floor(f + 0.5))
                if isinstance(z, np.ndarray) and z.size == 9 * n:
                    offset_frames.append(
                        (atoms.positions, cell, atoms.numbers, p, z.reshape(n, 3, 3))
                    )
            else:
                rep.warnings.append(
                    f"frame {i}: no periodic cell, polarization branch not checked"
                )

    # errors reported once per key, not once per frame, when they repeat
    rep.errors = _compress(rep.errors)
    rep.species = species
    rep.keys = {k: present[k] for k in list(_SHAPES) if k in present}
    rep.missing = {
        k: rep.n_frames - present.get(k, 0)
        for k in _EXPECTED
        if present.get(k, 0) < rep.n_frames
    }
    if rep.missing:
        rep.warnings.append(
            "missing values: "
            + ", ".join(
                f"{k} absent in {m} of {rep.n_frames} frames"
                for k, m in rep.missing.items()
            )
        )
    if (
        not rep.errors
    ):  # the range the data covers (the extrapolation guards' reference)
        from ..guards import data_ranges

        try:
            rep.ranges = data_ranges(frames)
        except Exception as exc:  # noqa: BLE001 -- a report, not a crash
            rep.warnings.append(
                f"field and distance ranges not computed: {type(exc).__name__}: {exc}"
            )
    if asr:
        rep.asr_max, rep.asr_frame = max(asr)
    if asym:
        rep.alpha_asym_max, rep.alpha_asym_frame = max(asym)
    if frac_p:
        fp = np.array(frac_p)
        c = _circular_centre(fp)
        d = fp - c
        d -= np.floor(d + 0.5)
        ang = 2 * np.pi * fp
        rep.p_offset_frac = c
        rep.p_spread_frac = np.abs(d).max(axis=0)
        rep.p_rms_frac = np.sqrt((d**2).mean(axis=0))
        rep.p_concentration = np.hypot(
            np.cos(ang).mean(axis=0), np.sin(ang).mean(axis=0)
        )
        rep.p_consistent = bool(np.all(rep.p_spread_frac < P_SPREAD_WARN))
        if not rep.p_consistent:
            rep.warnings.append(
                f"folded polarization spreads by up to {rep.p_spread_frac.max():.3f} quanta around the common "
                "offset: its branch cannot be confirmed from the data alone (frames with large P "
                "fluctuations, or frames on different branches)"
            )
    if offset_frames and not rep.errors:
        from ..data.offset import estimate_inversion_offset

        # None when no frame has an inversion pairing (e.g. two atoms of one kind at random)
        rep.inversion_offset = estimate_inversion_offset(offset_frames)
        if rep.inversion_offset is not None:
            rep.warnings.extend(rep.inversion_offset.warnings())
    return rep


def _compress(errors: list, keep: int = 5) -> list:
    """Keep the first ``keep`` messages of each kind (text after 'frame N: ') and count the rest."""
    out, seen = [], {}
    for e in errors:
        kind = e.split(": ", 1)[-1]
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= keep:
            out.append(e)
    for kind, n in seen.items():
        if n > keep:
            out.append(f"... and {n - keep} more frames with: {kind}")
    return out
