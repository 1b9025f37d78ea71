import numpy as np
import pytest

import tinygrad_attn as ta


@pytest.fixture(params=["numpy", "numba"])
def backend(request):
    """Run the test once on each backend."""
    with ta.backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
