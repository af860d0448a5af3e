"""Shared fixtures: deterministic, single-threaded torch for reproducible numbers."""

import os

import pytest
import torch

THREADS = max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(THREADS)
# subprocesses that a test compares with an in-process run must sum in the same order: same thread count
os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
