import os

import numpy as np
import pytest

SHARED = os.environ.get("EZP_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


@pytest.fixture
def rng():
    # test-data generator only (inputs to check against cleartext); protocol randomness never comes from numpy
    return np.random.default_rng(12345)
