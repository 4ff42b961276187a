"""Ferroelectric switching: P-E hysteresis loops under an oscillating field, coercive field and remanence.

The names of the switching analysis in one namespace; each lives in the module of its concept:

* :mod:`~nequip_pol.analysis.protocol`: the field E(t) = E0 f(t/T) along an axis and the loop
  settings (:class:`LoopProtocol`, :func:`field_function`, :func:`waveform_value`,
  :func:`axis_vector`);
* :mod:`~nequip_pol.analysis.loops`: extraction of Ec+/Ec-, Pr+/Pr- and the loop area per cycle
  from a time series (:func:`analyze_loops`, :func:`analyze_series`, :func:`read_loop`);
* :mod:`~nequip_pol.analysis.loop_drivers`: one loop by ASE MD (:func:`run_loop`) or in LAMMPS
  (:class:`LammpsLoopRunner`);
* :mod:`~nequip_pol.analysis.sweeps`: loops over temperatures x periods, the table
  ``hysteresis.csv``, the P(t) files and the figures (:func:`run_sweep`);
* :mod:`~nequip_pol.analysis.coercive`: the zero-temperature intrinsic coercive field of any
  field-aware calculator (:func:`intrinsic_coercive_field`);
* :mod:`~nequip_pol.analysis.domains`: per-cell views of a loop's structure snapshots
  (``snapshot_interval``): Ti off-centring per unit cell, when each cell switches, and whether
  neighbours switch together (imported from there, not gathered here).

The command line ``nequip-pol hysteresis`` runs a sweep (``--intrinsic``: the intrinsic
coercive field). Units: time fs, field V/A, P e*A (cell dipole), work eV, temperature K.
"""

from .coercive import intrinsic_coercive_field
from .loop_drivers import (
    LammpsLoopRunner,
    check_field_calculator,
    run_loop,
    snapshot_path,
)
from .loops import (
    LOOP_QUANTITIES,
    LoopAnalysis,
    analyze_loops,
    analyze_series,
    read_loop,
)
from .protocol import (
    MIN_STEPS_PER_PERIOD,
    WAVEFORMS,
    LoopProtocol,
    axis_vector,
    field_function,
    waveform_value,
)
from .sweeps import (
    TABLE_COLUMNS,
    check_output_dir,
    combine_runs,
    plot_sweep,
    read_table,
    run_sweep,
    write_table,
)

__all__ = [
    "LOOP_QUANTITIES",
    "TABLE_COLUMNS",
    "check_field_calculator",
    "WAVEFORMS",
    "MIN_STEPS_PER_PERIOD",
    "LoopProtocol",
    "LoopAnalysis",
    "axis_vector",
    "field_function",
    "waveform_value",
    "analyze_loops",
    "analyze_series",
    "read_loop",
    "run_loop",
    "run_sweep",
    "LammpsLoopRunner",
    "snapshot_path",
    "check_output_dir",
    "write_table",
    "read_table",
    "combine_runs",
    "plot_sweep",
    "intrinsic_coercive_field",
]
