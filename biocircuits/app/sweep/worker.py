"""How the engine's worker processes are set up, so that a trial pays for training and little else: one torch
thread per CPU the trial holds from the moment the process starts (``OMP_NUM_THREADS`` and friends in Ray's
runtime environment), torch, Ray Tune and biocircuits imported when a worker starts (Ray's
``worker_process_setup_hook``) rather than when its first trial is unpacked, trials in the driver's
working directory (``RAY_CHDIR_TO_TRIAL_DIR=0``: run folders are absolute paths) and none of Tune's own per-trial
result files (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``: the run folders hold the results). Workers are reused from
trial to trial (``reuse_actors``, in [`engine`][biocircuits.app.sweep.engine])."""

from __future__ import annotations

import os
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

DRIVER_VARIABLES = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # Tune passes it on to the trials' workers
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no CSV / JSON / TensorBoard files per trial in tune/
}


def torch_threads(cpu: float, threads: int | None) -> int:
    """The torch threads of a trial holding ``cpu`` CPUs: ``threads`` when given, else its whole CPUs (at least 1)."""
    return threads or max(1, int(cpu))


def warm_worker() -> None:
    """Ray's ``worker_process_setup_hook``: import torch (at the thread count from the environment), Ray Tune (which
    unpacking a trial's function would import: ``ray.tune`` brings ``ray.train``, ``ray.data``, pandas and pyarrow)
    and, last, the trial module (whose import time is the timeline's ``imported_at``) in a starting worker. Never
    fails the worker: an import error shows again, with its message, when the trial itself is unpacked."""
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
        import ray.tune  # noqa: F401

        import biocircuits.app.sweep.trial  # noqa: F401
    except Exception:  # noqa: BLE001  (the trial reports it)
        pass


def runtime_env(threads: int) -> dict[str, Any]:
    """The runtime environment of the sweep's Ray job: ``threads`` torch/BLAS threads per worker and the warm-up
    hook ([`warm_worker`][biocircuits.app.sweep.worker.warm_worker])."""
    env = {name: str(threads) for name in THREAD_VARIABLES}
    return {"env_vars": env, "worker_process_setup_hook": "biocircuits.app.sweep.worker.warm_worker"}


def driver_environment() -> dict[str, str | None]:
    """Set ``DRIVER_VARIABLES`` in this process (where unset); returns the values they had, for
    [`restore_environment`][biocircuits.app.sweep.worker.restore_environment]."""
    before = {name: os.environ.get(name) for name in DRIVER_VARIABLES}
    for name, value in DRIVER_VARIABLES.items():
        os.environ.setdefault(name, value)
    return before


def restore_environment(before: dict[str, str | None]) -> None:
    """Put back the variables [`driver_environment`][biocircuits.app.sweep.worker.driver_environment] set."""
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
