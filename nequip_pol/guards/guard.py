"""The runtime extrapolation guard: every evaluation (structure and field) checked against a
model's training ranges (:mod:`~nequip_pol.guards.ranges`).

:class:`ExtrapolationGuard` warns once per run when ``|E|`` exceeds ``field_factor`` x the
trained maximum, when two atoms come closer than ``distance_factor`` x the trained minimum of
their pair, or when a species was never seen; then it counts silently, and
:meth:`~ExtrapolationGuard.report` gives the counts (printed at exit when anything was
counted). ``strict=True`` raises :class:`ExtrapolationError` instead of warning. Models
without recorded ranges run unguarded, with one line saying so (:meth:`ExtrapolationGuard.off`).

Units: field V/A, distances A. numpy and ASE.
"""

from __future__ import annotations

import atexit
import sys
import warnings
from typing import Optional

import numpy as np

from .ranges import pair_minima

__all__ = ["ExtrapolationError", "ExtrapolationWarning", "ExtrapolationGuard"]


class ExtrapolationError(ValueError):
    """An evaluation outside the trained range, with ``strict=True``."""


class ExtrapolationWarning(UserWarning):
    """An evaluation outside the trained range (warned once per guard)."""


class ExtrapolationGuard:
    """Compares evaluations with a training range (see the module docstring).

    Args:
        ranges: from :func:`~nequip_pol.guards.ranges.data_ranges` (or a model's metadata); ``None``: the guard is off
        field_factor: warn when |E| > field_factor x the trained max |E|. A model trained at
            zero field only (the usual DFT set: P, Z*, alpha at E = 0, the field acting through
            that learned response) has no sampled field range: its field is not checked, and
            the guard says so once
        distance_factor: warn when a pair is closer than distance_factor x its trained minimum
        strict: raise :class:`ExtrapolationError` instead of warning
        name: the model's name in the messages (its file)
    """

    def __init__(
        self,
        ranges: Optional[dict],
        field_factor: float = 1.2,
        distance_factor: float = 1.0,
        strict: bool = False,
        name: str = "model",
        report_at_exit: bool = True,
    ):
        if not field_factor >= 1.0 or not 0 < distance_factor <= 1.0:
            raise ValueError(
                f"need field_factor >= 1 and 0 < distance_factor <= 1, got {field_factor}, {distance_factor}"
            )
        self.ranges = ranges
        self.field_factor = float(field_factor)
        self.distance_factor = float(distance_factor)
        self.strict = bool(strict)
        self.name = name
        self.counts = {"field": 0, "distance": 0, "species": 0}
        self.evaluations = 0
        self._warned = False
        if ranges is None:
            print(
                f"note: {name} has no recorded training range: the extrapolation guard is off",
                file=sys.stderr,
            )
        elif not ranges.get("max_field", 0.0) > 0.0:
            print(
                f"note: {name} was trained at zero field only (the field acts through the learned "
                "P, Z*, alpha): the extrapolation guard checks distances and species, not |E|",
                file=sys.stderr,
            )
        if ranges is not None and report_at_exit:
            atexit.register(self._report_at_exit)

    @classmethod
    def off(cls, name: str = "model") -> "ExtrapolationGuard":
        """A guard that checks nothing (a model without recorded ranges); says so once."""
        return cls(None, name=name)

    @property
    def active(self) -> bool:
        return self.ranges is not None

    def problems(self, atoms, field) -> list:
        """What lies outside the range for this structure and field: a list of (kind, text)."""
        if self.ranges is None:
            return []
        out = []
        r = self.ranges
        e = float(np.linalg.norm(np.asarray(field, dtype=float)))
        limit = self.field_factor * r["max_field"]
        if r["max_field"] > 0.0 and e > limit:
            out.append(
                (
                    "field",
                    f"|E| = {e:.4g} V/A exceeds {self.field_factor:g} x the trained maximum "
                    f"{r['max_field']:.4g} V/A",
                )
            )
        if r.get("species"):  # absent in ranges rebuilt from the flat metadata keys
            new = sorted(set(atoms.get_chemical_symbols()) - set(r["species"]))
            if new:
                out.append(
                    ("species", f"species {', '.join(new)} never seen in training")
                )
        minima = r["min_distance"]
        if minima:
            cutoff = max(minima.values())
            for key, dist in pair_minima(atoms, cutoff).items():
                floor = minima.get(key)
                if floor is not None and dist < self.distance_factor * floor:
                    out.append(
                        (
                            "distance",
                            f"a {key} pair at {dist:.3f} A, closer than the training "
                            f"minimum {floor:.3f} A",
                        )
                    )
        return out

    def check(self, atoms, field) -> None:
        """Count (and warn about the first, or raise with ``strict``) what lies outside the range."""
        self.evaluations += 1
        found = self.problems(atoms, field)
        if not found:
            return
        for kind in {k for k, _ in found}:
            self.counts[kind] += 1
        message = (
            f"{self.name}: extrapolating: "
            + "; ".join(text for _, text in found)
            + " (results outside the trained range are unreliable)"
        )
        if self.strict:
            raise ExtrapolationError(message)
        if not self._warned:
            self._warned = True
            warnings.warn(
                message + "; further cases are counted silently (guard.report())",
                ExtrapolationWarning,
                stacklevel=3,
            )

    def report(self) -> str:
        """One line: evaluations checked and how many were outside the range, by kind."""
        if self.ranges is None:
            return f"{self.name}: extrapolation guard off (no recorded training range)"
        counted = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        evaluations = f"{self.evaluations} evaluation" + (
            "" if self.evaluations == 1 else "s"
        )
        return f"{self.name}: extrapolation guard: {evaluations}, outside the trained range: {counted}"

    def _report_at_exit(self) -> None:
        if any(self.counts.values()):
            print(self.report(), file=sys.stderr)
