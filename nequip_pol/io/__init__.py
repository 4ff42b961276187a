"""Data conversion and checks: Quantum ESPRESSO finite-field runs, QE linear response (pw.x + ph.x)
and VASP runs -> extended XYZ, dataset checks.

Submodules are imported lazily so that ``import nequip_pol.io`` stays cheap.
"""

_EXPORTS = {
    "parse_qe_runs": "qe",
    "write_frames": "qe",
    "read_qe_xml": "qe_xml",
    "QEParseError": "qe_xml",
    "parse_vasp_runs": "vasp",
    "VaspParseError": "errors",
    "parse_qe_ph_runs": "qe_ph",
    "OutputExistsError": "errors",
    "NequipPolIOError": "errors",
    "check_dataset": "check_data",
    "DataReport": "check_data",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
