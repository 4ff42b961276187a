"""The polarization offset that inversion allows, estimated from a dataset.

A model's cell dipole is ``P(R) = P_local(R) + P0``, a sum of local terms plus a constant
``P0 = f @ cell`` (``polarization_offset_fractional`` f, in units of lattice vectors). The local
part is odd under inversion, and in a periodic insulator inversion gives ``P(-R) = -P(R)`` modulo
the quantum e*R, so ``2 P0 = 0`` modulo the quantum: each entry of f is 0 or 1/2 (modulo
integers). Which of the two a dataset needs is the Berry-phase P of a *centrosymmetric* structure
of the material, folded to the lattice: a property of the data's branch convention, not of any
model.

:func:`estimate_inversion_offset` reads it off each frame without a model. For frame A it finds
the inversion (centre c, and the atom pairing) that maps A nearest onto itself, builds the
centrosymmetric structure C halfway between A and its image, and carries A's polarization to C
with its own Born charges (trapezoid rule along the straight path; Z* at C is the inversion average
of A's, which is exact for a rank-2 polar tensor):

    P(C) = P(A) + sum_k 1/2 (Z*_k(A) + Z*_k(C)) . (r_k(C) - r_k(A))

Folded to fractional coordinates, ``P(C) @ cell^-1`` lies near 0 or 1/2 in each lattice
direction; the distance from the nearer allowed value measures the path integral's error (it
grows with the frame's polar distortion). The dataset's estimate is the allowed value most frames
pick, per direction. It is trusted (``decided``) only where the paths are short (median
|P(A) - P(C)| below 1/2 quantum) and the frames lie on both sides of C: when every frame is
displaced to the same side, the data sample one polar direction only (``one_sided``). On the
shared BaTiO3 data it is not decided along c (paths of 3-4 quanta over which Z*_Ti changes from
~4 to ~7 e): the offset there follows from the DFT setup instead (even valence charges without
spin polarization put a centrosymmetric cell's Berry-phase P on whole quanta: 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALLOWED_OFFSETS",
    "OffsetEstimate",
    "centrosymmetric_partner",
    "frame_offset",
    "estimate_inversion_offset",
    "project_offset",
]

#: the fractional offsets inversion allows, modulo integers
ALLOWED_OFFSETS = (0.0, 0.5)


def project_offset(fractional) -> np.ndarray:
    """The nearest inversion-allowed offset (0 or 1/2 per entry, folded to [0, 1))."""
    f = np.asarray(fractional, dtype=float)
    return np.mod(np.round(2.0 * f) / 2.0, 1.0)


def _distance_to(fractional: np.ndarray, value: float) -> np.ndarray:
    """Distance on the circle of period 1."""
    d = np.mod(fractional - value + 0.5, 1.0) - 0.5
    return np.abs(d)


def centrosymmetric_partner(positions, cell, numbers):
    """The inversion that maps a structure nearest onto itself.

    Tries every atom as the inversion centre, pairs each atom with the same-species atom nearest
    its inverted image (minimum image), keeps the centre with the smallest mean squared mismatch
    whose pairing is one-to-one, and refines the centre by least squares.

    Args:
        positions: (N, 3) Cartesian positions, A
        cell: (3, 3) lattice vectors as rows, A
        numbers: (N,) atomic numbers
    Returns:
        ``(partner, displacement, rms)``: ``partner[k]`` is the atom that atom k's image lands
        on, ``displacement`` (N, 3) moves each atom to the centrosymmetric structure halfway
        between the frame and its inverted image (A), ``rms`` the mismatch per atom (A); ``None``
        when no inversion pairs the atoms one-to-one.
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    numbers = np.asarray(numbers)
    inverse = np.linalg.inv(cell)
    frac = positions @ inverse
    best = None
    for center in frac:
        image = 2.0 * center - frac  # (N, 3) inverted fractional positions
        delta = frac[None, :, :] - image[:, None, :]  # image i -> atom j
        delta -= np.round(delta)
        dist2 = ((delta @ cell) ** 2).sum(-1)
        dist2[numbers[:, None] != numbers[None, :]] = np.inf
        partner = dist2.argmin(1)
        if len(np.unique(partner)) != len(partner):
            continue
        cost = dist2[np.arange(len(partner)), partner].mean()
        if best is None or cost < best[0]:
            best = (cost, center, partner)
    if best is None:
        return None
    _, center, partner = best
    # least-squares centre: image_i + shift = frac_partner, shift = 2 (c' - c) in fractions
    mismatch = frac[partner] - (2.0 * center - frac)
    mismatch -= np.round(mismatch)
    center = center + mismatch.mean(0) / 2.0
    image = 2.0 * center - frac
    mismatch = frac[partner] - image
    mismatch -= np.round(mismatch)
    # atom partner[i] moves halfway towards image i
    displacement = np.zeros_like(positions)
    displacement[partner] = -0.5 * (mismatch @ cell)
    rms = float(np.sqrt((displacement**2).sum(-1).mean()))
    return partner, displacement, rms


def frame_offset(positions, cell, numbers, polarization, born_charges):
    """One frame's estimate of the inversion offset (see the module docstring).

    Args:
        positions: (N, 3), A; cell: (3, 3) rows, A; numbers: (N,)
        polarization: (3,) cell dipole, e*A (any branch)
        born_charges: (N, 3, 3), e, Z*_k,ab = dP_a/dr_kb
    Returns:
        ``(fractional, polar, rms)``: P(C) in fractions of the lattice vectors folded to
        [0, 1) (3,), the polar part P(A) - P(C) in the same units (3,), and the inversion
        mismatch per atom (A); ``None`` when the structure has no inversion pairing.
    """
    found = centrosymmetric_partner(positions, cell, numbers)
    if found is None:
        return None
    partner, displacement, rms = found
    z = np.asarray(born_charges, dtype=float).reshape(-1, 3, 3)
    z_center = 0.5 * (z + z[partner])
    z_path = 0.5 * (z + z_center)
    change = np.einsum("kab,kb->a", z_path, displacement)
    inverse = np.linalg.inv(np.asarray(cell, dtype=float))
    p_center = (np.asarray(polarization, dtype=float) + change) @ inverse
    return np.mod(p_center, 1.0), -change @ inverse, rms


@dataclass
class OffsetEstimate:
    """A dataset's inversion-allowed polarization offset.

    Attributes:
        offset: (3,) the allowed value (0 or 1/2) most frames pick, per lattice direction
        votes: (3, 2) frames nearer 0 and nearer 1/2, per direction
        distance_median: (3,) median distance of the frames' P(C) from the chosen value
            (fractions of the quantum; the path integral's error)
        polar_range: (3, 2) smallest and largest polar part P(A) - P(C) over the frames
            (fractions of the quantum)
        path_median: (3,) median |P(A) - P(C)| (fractions of the quantum): the length of the
            Born-charge path; beyond 1/2 quantum the estimate is not trusted (Z* can change
            along it: in BaTiO3 the centrosymmetric Ti charge is ~7 e, the polar one ~4 e)
        one_sided: (3,) bool, every frame polarized to the same side along that direction
            (beyond 0.05 quanta): the data sample one polar direction only
        frames_used: frames with an inversion pairing and Born charges
        frames_skipped: the other frames
    """

    offset: np.ndarray
    votes: np.ndarray
    distance_median: np.ndarray
    polar_range: np.ndarray
    path_median: np.ndarray
    one_sided: np.ndarray
    frames_used: int
    frames_skipped: int

    @property
    def decided(self) -> np.ndarray:
        """(3,) bool: frames on both sides of the centrosymmetric structure (or near it), a
        clear majority, and the chosen value's median distance below 1/8."""
        majority = self.votes.max(1) >= 0.75 * self.votes.sum(1)
        return (
            majority
            & (self.distance_median < 0.125)
            & (self.path_median < _LONG_PATH)
            & ~self.one_sided
        )

    def report_lines(self) -> list:
        """The lines of check-data's report."""

        def per_axis(values, f):
            return " ".join(f.format(x) for x in values)

        decided = ["yes" if d else "no" for d in self.decided]
        return [
            "inversion-allowed polarization offset (P carried by each frame's Born charges to its "
            f"nearest centrosymmetric structure; {self.frames_used} frames, "
            f"{self.frames_skipped} without an inversion pairing): "
            f"[{per_axis(self.offset, '{:g}')}] quanta along a1 a2 a3",
            "  frames nearer 0 / 1/2: "
            + ", ".join(f"a{k + 1} {v[0]}/{v[1]}" for k, v in enumerate(self.votes))
            + f"; median distance {per_axis(self.distance_median, '{:.3f}')} quanta"
            + f"; polar part {', '.join(f'{lo:+.2f}..{hi:+.2f}' for lo, hi in self.polar_range)} quanta"
            + f"; decided: {' '.join(decided)}",
            "  -> the config's polarization_offset: ["
            + ", ".join(
                f"{v:g}" if ok else "?" for v, ok in zip(self.offset, self.decided)
            )
            + "]"
            + (
                ""
                if self.decided.all()
                else " (? = not decided by the data: see the warning)"
            ),
        ]

    def warnings(self) -> list:
        """What the data cannot tell, in words (check-data's warnings)."""
        warnings = []
        one_sided = [k for k in range(3) if self.one_sided[k]]
        if one_sided:
            axes = ", ".join(f"a{k + 1}" for k in one_sided)
            warnings.append(
                f"every frame is polarized to one side along {axes} (one polar direction only): "
                "the data cannot tell a symmetric polarization offset from an asymmetric one, and "
                "the estimate carries the Born charges over the whole polar distortion (wrong where "
                "Z* changes along it, as in ferroelectrics); add frames of the opposite polarization "
                "or near the centrosymmetric structure, or state the offset from the DFT setup "
                "(even valence charges without spin polarization: a centrosymmetric cell has whole "
                "quanta, offset 0)"
            )
        undecided = [
            k for k in range(3) if not self.decided[k] and not self.one_sided[k]
        ]
        if undecided:
            axes = ", ".join(f"a{k + 1}" for k in undecided)
            warnings.append(
                f"the frames do not decide the polarization offset along {axes} (split votes, "
                "values far from 0 and 1/2, or Born-charge paths longer than 1/2 quantum, over "
                "which Z* may change): state it in the config from the DFT setup (even valence "
                "charges without spin polarization: 0)"
            )
        return warnings

    def config_line(self) -> str:
        values = ", ".join(f"{v:g}" for v in self.offset)
        return f"polarization_offset: [{values}]"


#: polar parts smaller than this (fractions of the quantum) count as centrosymmetric
_POLAR_SIDE_THRESHOLD = 0.05
#: median |polar part| (fractions of the quantum) beyond which the estimate is not trusted
_LONG_PATH = 0.5


def estimate_inversion_offset(frames) -> OffsetEstimate | None:
    """Estimate the inversion-allowed offset from frames with P and Born charges.

    Args:
        frames: an iterable of ``(positions, cell, numbers, polarization, born_charges)``
    Returns:
        an :class:`OffsetEstimate`, or ``None`` when no frame could be used
    """
    fractions, polar = [], []
    skipped = 0
    for frame in frames:
        result = frame_offset(*frame)
        if result is None:
            skipped += 1
            continue
        fractions.append(result[0])
        polar.append(result[1])
    if not fractions:
        return None
    fractions = np.array(fractions)
    polar = np.array(polar)
    near = np.stack([_distance_to(fractions, v) for v in ALLOWED_OFFSETS], -1)
    choice = near.argmin(-1)  # (frames, 3)
    votes = np.stack([(choice == k).sum(0) for k in range(2)], -1)
    offset = np.array(ALLOWED_OFFSETS)[votes.argmax(1)]
    distance = np.stack(
        [np.median(_distance_to(fractions[:, a], offset[a])) for a in range(3)]
    )
    polar_range = np.stack([polar.min(0), polar.max(0)], -1)
    one_sided = (polar_range[:, 0] > _POLAR_SIDE_THRESHOLD) | (
        polar_range[:, 1] < -_POLAR_SIDE_THRESHOLD
    )
    return OffsetEstimate(
        offset=offset,
        votes=votes,
        distance_median=distance,
        polar_range=polar_range,
        path_median=np.median(np.abs(polar), 0),
        one_sided=one_sided,
        frames_used=len(fractions),
        frames_skipped=skipped,
    )
