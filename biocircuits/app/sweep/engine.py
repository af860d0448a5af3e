"""Running a sweep's trials on Ray Tune: a local Ray started for the sweep (or the cluster at ``--address``, or a
Ray already initialised in this process), one Tune trial per pending trial, each holding ``resources``. Ray is
imported here only, when a sweep runs, so ``import biocircuits`` never needs it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from biocircuits.errors import BiocircuitsError
from biocircuits.train.build import handling_signals

from . import session
from .folder import SweepFolder
from .spec import Resources, Scheduler, Trial
from .trial import tune_trainable
from .worker import driver_environment, restore_environment

INSTALL = 'pip install -e ".[sweep]"  (or: pip install "ray[tune]")'


class EngineMissing(BiocircuitsError):
    """Ray Tune is not installed."""


class EngineFailed(BiocircuitsError):
    """Ray Tune's run ended with an error of its own (not a trial's: those are results), e.g. its memory monitor
    killing workers when other jobs fill the node's memory."""


def import_ray() -> Any:
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError as err:
        raise EngineMissing(
            f"sweeps run on Ray Tune, which is not installed ({err}); install it with {INSTALL}"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None, threads: int | None = None) -> Iterator[Any]:
    """Ray for the sweep: the one already initialised in this process, the cluster at ``address``, or a local Ray
    started for the sweep. With ``threads``, the job's workers start with that many torch threads and torch already
    imported ([`worker.runtime_env`][biocircuits.app.sweep.worker.runtime_env]). A Ray the command started early with
    the same settings is taken as it is ([`session`][biocircuits.app.sweep.session]); one started here is stopped on
    exit in the background ([`session.release`][biocircuits.app.sweep.session.release] waits for it)."""
    ray = import_ray()
    owner = session.claim(address, num_cpus, threads)
    if owner is None and ray.is_initialized():
        yield ray
        return
    owner = owner or session.start(address, num_cpus, threads)
    try:
        owner.wait()
        yield ray
    finally:
        owner.stop()


@contextmanager
def stop_signals(flag: dict[str, Any]) -> Iterator[None]:
    """Ctrl-C and SIGTERM (a batch scheduler ending the job) set ``flag['stop']`` to the time and take Tune's
    graceful stop (its SIGUSR1): trials stop, the sweep can be rerun. A second Ctrl-C raises
    `KeyboardInterrupt` at once."""

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = time.time()
        os.kill(os.getpid(), signal.SIGUSR1)

    before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours forwards to Tune's, and knows that it was a stop
    try:
        with handling_signals(handler):
            yield
    finally:
        if before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before


REPORTED = {
    "val_acc1": ("val_acc1", "max"),
    "best_val_acc1": ("val_acc1", "max"),
    "val_acc5": ("val_acc5", "max"),
    "val_loss": ("val_loss", "min"),
    "best_val_loss": ("val_loss", "min"),
}  # sweep metric -> Tune's, mode


def build_scheduler(scheduler: Scheduler | None, metric: str) -> Any:
    """Ray Tune's ASHA on the reported figure behind ``metric``, one time unit per evaluation; None for FIFO."""
    if scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    name, mode = REPORTED[metric]
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=name,
        mode=mode,
        max_t=scheduler.max_evaluations,
        grace_period=scheduler.grace_period,
        reduction_factor=scheduler.reduction_factor,
    )


def run_trials(
    folder: SweepFolder,
    trials: list[Trial],
    resources: Resources,
    max_concurrent: int | None,
    address: str | None = None,
    scheduler: Scheduler | None = None,
    metric: str = "val_acc1",
) -> tuple[dict[str, str | None], float | None]:
    """Run ``trials`` on Ray Tune (each a [`trial.tune_trainable`][biocircuits.app.sweep.trial.tune_trainable] call);
    returns each trial's engine error (None when Tune saw none) and when a signal stopped the sweep (None when none
    did)."""
    if not trials:
        return {}, None
    from ray import tune

    entries = {
        t.id: {"record": t.record(), "experiment": t.experiment.model_dump(mode="json"), "source": t.experiment.source}
        for t in trials
    }
    trainable = tune.with_parameters(
        tune_trainable,
        folder=str(folder.path.resolve()),
        trials=entries,
        threads=resources.torch_threads(),
        scheduler=scheduler.name if scheduler else None,
    )
    results, stopped = fit(
        folder,
        trainable,
        resources,
        {"trial": tune.grid_search([t.id for t in trials])},
        tune.TuneConfig(
            max_concurrent_trials=max_concurrent, reuse_actors=True, scheduler=build_scheduler(scheduler, metric)
        ),
    )
    errors = {
        r.config["trial"]: (None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:2000])
        for r in results
        if r.config and "trial" in r.config
    }
    return errors, stopped


def fit(
    folder: SweepFolder, trainable: Any, resources: Resources, param_space: dict[str, Any], tune_config: Any
) -> tuple[Any, float | None]:
    """``tune.Tuner(trainable, ...).fit()`` with each trial holding ``resources``, Tune's files under the sweep
    folder's ``tune/``, no retries (a failure is a result), and Ctrl-C / SIGTERM taken as a clean stop; returns
    Tune's results and when a signal stopped the sweep (None when none did). An error of Tune's own is raised as
    [`EngineFailed`][biocircuits.app.sweep.engine.EngineFailed]."""
    import_ray()
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": resources.cpu, "gpu": resources.gpu}),
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=f"fit-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(folder.tune.resolve()),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    flag: dict[str, Any] = {"stop": None}
    before = driver_environment()
    with stop_signals(flag):
        try:
            session.TIMES["fit_at"] = time.time()
            results = tuner.fit()
            session.TIMES["fit_done_at"] = time.time()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # the engine's own failure: the sweep records it and can be continued
            raise EngineFailed(f"{type(err).__name__}: {err}"[:1000]) from err
        finally:
            restore_environment(before)
    return results, flag["stop"]
