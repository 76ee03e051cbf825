"""Shared test set-up: Keras runs on its torch backend in this suite."""

import os
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
# the mutation suite (tests/mutants.py) is imported by name
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def torch_one_thread():
    """torch with one intra-op thread for the test (restored after): the model audits
    measure mcdrop's work, not contention with the 2-core machine's other test."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
