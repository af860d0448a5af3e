"""Shared fixtures: deterministic, single-threaded torch for reproducible numbers, and the model and data
builders of :mod:`tests.builders` as factory fixtures (session-scoped and stateless, so hypothesis tests may take
them too)."""

import os

import pytest
import torch

from .builders import build_mlp, random_gradient_step

THREADS = max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(THREADS)
# subprocesses that a test compares with an in-process run must sum in the same order: same thread count
os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def float64():
    """Double precision as the default dtype for one test (hand recursions compared at 1e-12), restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.fixture(scope="session")
def mlp():
    """``mlp(*sizes, act=nn.ReLU, dtype=None, seed=None)``: see :func:`tests.builders.build_mlp`."""
    return build_mlp


@pytest.fixture(scope="session")
def random_step():
    """``random_step(model, optimizer, seed, batch=16)``: see :func:`tests.builders.random_gradient_step`."""
    return random_gradient_step


def _global_torch_state() -> dict:
    """Process-wide torch settings a test must leave as it found them (a later in-process run would otherwise
    differ from its subprocess twin: threads, default dtype and device, grad mode, deterministic flags)."""
    return {
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "device": str(torch.get_default_device()),
        "grad": torch.is_grad_enabled(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "function_modes": len(torch.overrides._get_current_function_mode_stack()),
    }


@pytest.fixture(autouse=True)
def _leaves_torch_as_found():
    before = _global_torch_state()
    yield
    after = _global_torch_state()
    assert after == before, f"the test changed process-wide torch settings: {before} -> {after}"
