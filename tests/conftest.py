import os

import numpy as np
import pytest

# Known-answer data shipped with the tests (tests/data/circuits: the Bristol Fashion
# circuits and vectors.json, with their licence); EZP_SHARED points elsewhere if wanted.
SHARED = os.environ.get("EZP_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))


@pytest.fixture
def rng():
    # test-data generator only (inputs to check against cleartext); protocol randomness never comes from numpy
    return np.random.default_rng(12345)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long test (soak, very large transfers); skipped unless EZP_SLOW=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EZP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set EZP_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
