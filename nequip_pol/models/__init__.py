"""Models that ship with nequip-pol, by name.

Each shipped model is a ``nequip-package`` archive in this folder (``NAME.nequip.zip``) with its
model card beside it (``NAME.md``: data source and license, split, recipe, CPU hours, test errors
beside the published ones, known limits)::

    import nequip_pol.models
    nequip_pol.models.available()             # ['batio3', 'sio2'] (those present)
    calc = nequip_pol.models.load("sio2")     # an ASE NequIPPolCalculator (eager, CPU)
    path = nequip_pol.models.model_path("sio2")

Every ``nequip-pol`` verb that takes a MODEL accepts these names as well as a file path. Names are
case-insensitive. This module imports nothing heavy until :func:`load` is called.
"""

from __future__ import annotations

from pathlib import Path

#: shipped model name -> (archive file, one-line description)
SHIPPED_MODELS = {
    "sio2": (
        "sio2.nequip.zip",
        "alpha-quartz (Si, O), Allegro-pol trained on the Allegro-pol SiO2 DFT data",
    ),
    "batio3": (
        "batio3.nequip.zip",
        "tetragonal BaTiO3 (Ba, Ti, O), Allegro-pol trained on the Allegro-pol BaTiO3 DFT data",
    ),
}

_FOLDER = Path(__file__).resolve().parent


def available() -> list:
    """Names of the shipped models whose archive is present in this installation."""
    return sorted(
        name for name, (file, _) in SHIPPED_MODELS.items() if (_FOLDER / file).is_file()
    )


def is_shipped_name(model: str) -> bool:
    """Whether ``model`` is the name of a shipped model (present or not), not a file path."""
    return isinstance(model, str) and model.lower() in SHIPPED_MODELS


def model_path(name: str) -> Path:
    """The archive of the shipped model ``name``; ValueError naming the choices if there is none."""
    key = name.lower() if isinstance(name, str) else name
    if key not in SHIPPED_MODELS:
        raise ValueError(
            f"no shipped model named {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}"
        )
    path = _FOLDER / SHIPPED_MODELS[key][0]
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped model {name!r} is not in this installation ({path} is missing); "
            f"present: {', '.join(available()) or 'none'}"
        )
    return path


def card_path(name: str) -> Path:
    """The model card (Markdown) of the shipped model ``name``."""
    return model_path(name).with_name(f"{name.lower()}.md")


def card(name: str) -> dict:
    """The machine-readable card of a shipped model (``NAME.json``: data, split, recipe, training
    time, test RMSEs in eV/atom, eV/A, eV/A^3, e*A, e, e*A^2/V)."""
    import json

    return json.loads(model_path(name).with_name(f"{name.lower()}.json").read_text())


def describe(name: str) -> str:
    """One line on a shipped model: training and test errors, to print beside results it gives."""
    info = card(name)
    rmse = info["test_rmse"]
    train = info["training"]
    parts = [
        f"{label} {rmse[key] * factor:.3g} {unit}"
        for key, label, factor, unit in (
            ("E", "E", 1e3, "meV/atom"),
            ("F", "F", 1e3, "meV/A"),
            ("P", "P", 1.0, "e*A"),
            ("Z*", "Z*", 1.0, "e"),
            ("alpha", "alpha", 1.0, "e*A^2/V"),
        )
        if key in rmse
    ]
    if (
        "cpu_hours_all_stages" in train
    ):  # a fine-tune: its epochs, and the cost of all stages
        cost = (
            f"{train['epochs']} epochs of fine-tuning, "
            f"{train['cpu_hours_all_stages']:.1f} CPU h in all"
        )
    else:
        cost = f"{train['epochs']} epochs, {train['cpu_hours']:.1f} CPU h"
    return (
        f"shipped model {name.lower()} ({info['dataset']}, {cost}); test RMSE "
        + ", ".join(parts)
    )


def resolve(model: str) -> str:
    """A MODEL argument as a file path: shipped names map to their archive, anything else is kept."""
    return str(model_path(model)) if is_shipped_name(model) else model


def load(name: str, device: str = "cpu", **kwargs):
    """An ASE :class:`~nequip_pol.integrations.ase.NequIPPolCalculator` of the shipped model ``name``.

    The package is evaluated eagerly (no compilation); species map to the model's atom types by
    their chemical symbols. ``kwargs`` go to ``NequIPPolCalculator.from_saved_model`` (e.g.
    ``field=``, ``mode=``). For fast MD, compile the archive (docs/simulate.md).
    """
    from nequip_pol.integrations.ase import NequIPPolCalculator

    kwargs.setdefault("chemical_species_to_atom_type_map", True)
    return NequIPPolCalculator.from_saved_model(
        str(model_path(name)), device=device, **kwargs
    )


__all__ = [
    "card",
    "describe",
    "SHIPPED_MODELS",
    "available",
    "is_shipped_name",
    "model_path",
    "card_path",
    "resolve",
    "load",
]
