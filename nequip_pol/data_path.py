"""Where the shared DFT data live: one setting, ``NEQUIP_POL_DATA``.

Default: ``../shared/data`` relative to the project root (the folder holding ``pyproject.toml``).
"""

import os
from pathlib import Path

DATA_ENV_VAR = "NEQUIP_POL_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """Return the shared data folder (it may not exist; callers check)."""
    return Path(
        os.environ.get(DATA_ENV_VAR, _PROJECT_ROOT.parent / "shared" / "data")
    ).resolve()
