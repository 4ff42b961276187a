"""Tools for the LAMMPS pair styles (``compile_model.py``: a small test model compiled for
them; also run as a script)."""
