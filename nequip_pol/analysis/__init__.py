"""Electric response from simulations with a field-aware potential.

One module per concept (this file imports nothing, so that each module can be added on its own):

- ``timeseries``: P(t), alpha(t) from the PolarizationLogger CSV or LAMMPS ``fix ave/time``
  output of ``compute pol/allegro`` -> :class:`~nequip_pol.analysis.timeseries.PolarizationSeries`
- ``spectra``: correlation functions (Wiener-Khinchin: ``spectra.correlation``), IR absorption
  and eps(omega) (``spectra.infrared``), Raman (``spectra.raman``)
- ``dielectric``: eps_inf from alpha; eps_0 by three routes (harmonic, fluctuations, field response)
- ``phonons``: Gamma phonons with phonopy, mode effective charges, oscillator strengths, LO-TO splitting
- ``tolerances``: the force tolerance of relaxations from the model's precision (float32/float64)
- ``plots``: figures of spectra and phonons
- ``hysteresis``: ferroelectric switching (P-E loops)
- ``domains``: per-cell views of switching in perovskites (off-centring per unit cell, switching
  times, neighbour correlation) from a loop's structure snapshots

Units: eV, A, fs, field V/A, P in e*A (cell dipole), alpha in e*A^2/V. See ``docs/analysis.md``.
"""
