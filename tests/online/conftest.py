"""The online rules' tests run tiny ops step by step: one thread (two threads' barriers cost more than the ops on a
loaded machine); the suite's setting is restored after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
