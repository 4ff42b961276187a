"""Integrations of field-aware models with simulation codes.

- :mod:`nequip_pol.integrations.ase`: ``NequIPPolCalculator``, an ASE calculator (compiled,
  checkpoint or packaged models; static or time-dependent field; full or linear response).
- :mod:`nequip_pol.integrations.md`: ``PolarizationLogger``, an ASE MD observer recording
  t, E(t), P(t) (and alpha(t), energies, field work) to CSV.

Import the submodules directly; this package imports nothing at load time (nequip imports
``nequip_pol`` while its own integrations are still being imported).
"""
