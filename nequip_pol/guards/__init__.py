"""Extrapolation guards: the range of fields and structures a model was trained on, and a check of
every evaluation against it.

A field-aware model is fitted on a finite range of fields and interatomic distances; outside it
the results look as confident as inside. :func:`data_ranges` records what a data set covers:

* ``max_field``: the largest |E| of any frame (V/A), and ``max_field_per_axis``: the largest
  |E_x|, |E_y|, |E_z| (V/A);
* ``min_distance``: the smallest interatomic distance per species pair (A, ``"O-Ti"`` with the
  symbols sorted), over pairs closer than ``cutoff`` (pairs never that close are absent: at
  least ``cutoff`` apart);
* ``species``: the chemical symbols seen.

At training time :class:`TrainingRangeRecorder` (a Lightning callback) computes them from the
training file and stores them in every checkpoint (``checkpoint["nequip_pol_training_ranges"]``)
and in ``training_ranges.json`` next to it. :class:`ExtrapolationGuard` checks an evaluation
(structure and field): it warns once per run when ``|E|`` exceeds ``field_factor`` x the trained
maximum, when two atoms come closer than ``distance_factor`` x the trained minimum of their
pair, or when a species was never seen; then it counts silently, and :meth:`~ExtrapolationGuard.report`
gives the counts (printed at exit when anything was counted). ``strict=True`` raises
:class:`ExtrapolationError` instead of warning. Models without recorded ranges run unguarded,
with one line saying so (:meth:`ExtrapolationGuard.off`).

Deployed models carry the ranges too. The recorder also writes them into the checkpoint's model
config (``hyper_parameters["model"]`` becomes :func:`with_training_ranges` around the original
config), so every model built from the checkpoint (``nequip-compile``, ``nequip-package``,
``ModelFromCheckpoint``) has them in its metadata (:func:`ranges_metadata`): the JSON under
:data:`RANGES_KEY` and flat keys for the LAMMPS pair styles, ``nequip_pol_max_field`` (V/A, one
number), ``nequip_pol_min_distance`` (``"Ba-O:2.31 O-Ti:1.71"``, A) and
``nequip_pol_distance_cutoff`` (A). :func:`saved_model_ranges` and :func:`ranges_from_metadata`
read them back.

One module per concept, their public names gathered here (the import paths
``nequip_pol.guards.X`` hold, and checkpoints name ``nequip_pol.guards.with_training_ranges``):

- :mod:`~nequip_pol.guards.ranges`: what a data set covers, and the ranges in checkpoints and
  deployed models' metadata, written and read back (the one reader: :func:`ranges_from_metadata`)
- :mod:`~nequip_pol.guards.recorder`: :class:`TrainingRangeRecorder` and
  :func:`with_training_ranges` (recording at training time)
- :mod:`~nequip_pol.guards.guard`: :class:`ExtrapolationGuard` (the check of every evaluation)

Units: field V/A, distances A. numpy and ASE (torch and nequip only where a model is handled).
"""

from .guard import ExtrapolationError, ExtrapolationGuard, ExtrapolationWarning
from .ranges import (
    DEFAULT_CUTOFF,
    DISTANCE_CUTOFF_KEY,
    MAX_FIELD_KEY,
    MIN_DISTANCE_KEY,
    RANGES_FILE,
    RANGES_KEY,
    attach_ranges,
    data_ranges,
    format_ranges,
    ranges_from_metadata,
    ranges_from_model,
    ranges_metadata,
    saved_model_ranges,
)
from .recorder import WRAPPER_TARGET, TrainingRangeRecorder, with_training_ranges

# the names of the module before its split, then the constants it also had
__all__ = [
    "RANGES_KEY",
    "RANGES_FILE",
    "ExtrapolationError",
    "ExtrapolationWarning",
    "data_ranges",
    "format_ranges",
    "ExtrapolationGuard",
    "TrainingRangeRecorder",
    "ranges_metadata",
    "ranges_from_metadata",
    "ranges_from_model",
    "saved_model_ranges",
    "attach_ranges",
    "with_training_ranges",
    "DEFAULT_CUTOFF",
    "MAX_FIELD_KEY",
    "MIN_DISTANCE_KEY",
    "DISTANCE_CUTOFF_KEY",
    "WRAPPER_TARGET",
]
