import pytest

from nequip_pol.data_path import DATA_ENV_VAR, shared_data_dir


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
