import os

import pytest

from nequip_pol.data_path import DATA_ENV_VAR, shared_data_dir

try:  # property-based tests (tests/test_fuzz_readers.py): bounded, reproducible by default
    from hypothesis import HealthCheck, settings

    # the default suite: few examples, the same ones every run (derandomize), no example
    # database written into the checkout
    settings.register_profile(
        "default-suite",
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # capsys: read out in every example
        ],
    )
    # a longer, random search: HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz_readers.py
    settings.register_profile(
        "fuzz",
        max_examples=500,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # capsys: read out in every example
        ],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-suite"))
except ImportError:  # without hypothesis the property tests skip
    pass


SEED_ENV_VAR = "NEQUIP_POL_TEST_SEED"


@pytest.fixture(scope="session")
def seed_offset():
    """Added to every seed of a statistical test (marker ``statistical``): 0 by default, so the
    suite is reproducible; ``NEQUIP_POL_TEST_SEED=N`` runs the same tests on other random input,
    which they must pass at the same tolerances (CONTRIBUTING.md lists the seeds checked)."""
    value = os.environ.get(SEED_ENV_VAR, "0")
    try:
        return int(value)
    except ValueError:
        raise pytest.UsageError(f"{SEED_ENV_VAR}={value!r}: give an integer") from None


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module with one torch thread, restoring the count afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shared_data():
    """The shared DFT data folder; skips the test when it is missing."""
    path = shared_data_dir()
    if not (path / "dft").is_dir():
        pytest.skip(
            f"shared data not found at {path}: set {DATA_ENV_VAR} to the folder holding dft/ and qe_runs/"
        )
    return path


# nequip's model-test fixtures (model_dtype, molecules, diamond_carbon, ...)
from nequip.utils.unittests import CONFTEST_PATH  # noqa: E402

exec(open(CONFTEST_PATH).read())
