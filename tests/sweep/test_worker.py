"""The engine's worker set-up: the Ray job's runtime environment (torch/BLAS threads per trial, the warm-up hook by
import path), the hook itself, and the driver's Tune variables, set for a sweep and put back after it."""

from __future__ import annotations

import importlib
import os

import torch

from biocircuits.app.sweep import worker


def test_the_runtime_environment_gives_each_worker_its_threads_and_the_warm_up_hook():
    env = worker.runtime_env(3)
    assert env["env_vars"] == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}
    module, name = env["worker_process_setup_hook"].rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is worker.warm_worker  # Ray resolves it by this path


def test_the_warm_up_hook_sets_torch_threads_from_the_environment(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        torch.set_num_threads(2)
        worker.warm_worker()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_the_driver_variables_are_set_for_the_sweep_and_put_back(monkeypatch):
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "1")  # the user's own setting wins
    before = worker.driver_environment()
    assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1" and os.environ["RAY_CHDIR_TO_TRIAL_DIR"] == "1"
    worker.restore_environment(before)
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ and os.environ["RAY_CHDIR_TO_TRIAL_DIR"] == "1"
