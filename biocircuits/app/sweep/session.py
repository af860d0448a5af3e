"""The sweep's Ray, started as early as the command allows and stopped while the report is written.

``biocircuits sweep`` spends seconds importing torch and biocircuits and validating every trial before it needs Ray;
Ray's own start (its GCS and raylet, then the job's workers, which Ray prestarts when the driver connects and which
import torch and the trial code in their set-up hook) needs seconds too. So the command
([`start_early`][biocircuits.app.sweep.session.start_early], called before the heavy imports) reads the sweep file's
``resources`` (all the job's runtime environment depends on) and starts Ray in a thread of its own; the engine
([`claim`][biocircuits.app.sweep.session.claim]) takes that Ray when it asks for the same one, and a sweep that
fails validation ([`release`][biocircuits.app.sweep.session.release]) stops it before the command exits 2.

One thread owns Ray from ``ray.init`` to ``ray.shutdown`` ([`RayOwner`][biocircuits.app.sweep.session.RayOwner]):
Ray binds its head processes to the thread that started them (Linux's parent-death signal), so that thread lives
until Ray is stopped; and stopping is asked for, not waited on, so that the results, summary and figures are
written while Ray shuts down (the command waits for both before it exits)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from biocircuits.app.arguments import positive

from .worker import runtime_env, torch_threads

PEEK_BYTES = 1 << 20  # a sweep file larger than this is left to the validation; Ray then starts when needed
TIMES: dict[str, float] = {}  # this command's timeline (epoch s): Ray's init, ready and down; the engine adds its own


class QuietParser(argparse.ArgumentParser):
    """A parser that raises instead of printing usage and exiting: the early read of the command line stays
    silent, and the command's own parser reports any error."""

    def error(self, message: str) -> Any:
        raise ValueError(message)


def sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sweep`` command's arguments (the command's parser and the early read share them)."""
    parser.add_argument("sweep", metavar="SWEEP.yaml")
    parser.add_argument("--output", help="the sweep folder (default OUTPUT/<sweep file name>); rerun to continue")
    parser.add_argument("--address", help="an existing Ray cluster (default: a local Ray started for the sweep)")
    parser.add_argument("--max-concurrent", type=positive(int), default=None, help="at most N trials at once")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for every trial, over the file's set: (repeatable; recorded in sweep.json)",
    )
    parser.add_argument("--variants", metavar="NAME,...", help="run only these of the file's variants")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)


def planned_threads(sweep_file: str | Path) -> int | None:
    """The torch threads per trial that the sweep file's ``resources`` ask for (``threads``, else its whole CPUs),
    read without validating the file (that comes later and decides); None when the file is not a plain small
    mapping with plain numbers there."""
    import yaml

    try:
        if os.path.getsize(sweep_file) > PEEK_BYTES:
            return None
        with open(sweep_file, encoding="utf-8") as f:
            data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (a safe loader)
        resources = data.get("resources") or {}
        cpu, threads = resources.get("cpu", 1.0), resources.get("threads")
        plain = isinstance(cpu, int | float) and cpu > 0 and (threads is None or isinstance(threads, int))
        return torch_threads(cpu, threads) if plain and not isinstance(cpu, bool) else None
    except Exception:  # noqa: BLE001  (anything odd: the validation reports it)
        return None


class QuietThreadWarning(logging.Filter):
    """Drops Ray's warning that ``ray.init`` outside the main thread sets no SIGTERM handler: the command sets one
    ([`start`][biocircuits.app.sweep.session.start]) and the sweep its own around the trials
    ([`engine.stop_signals`][biocircuits.app.sweep.engine.stop_signals])."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


class RayOwner:
    """A thread that starts Ray (``ray.init``: the cluster at ``address``, else a local Ray with ``num_cpus``; the
    job's workers with ``threads`` torch threads: [`runtime_env`][biocircuits.app.sweep.worker.runtime_env]),
    keeps it while the sweep runs, and shuts it down when [`stop`][biocircuits.app.sweep.session.RayOwner.stop] is
    called. A daemon thread: should the command end without stopping it, Ray's own exit hook stops Ray."""

    def __init__(self, address: str | None, num_cpus: int | None, threads: int | None) -> None:
        self.settings = (address, num_cpus, threads)
        self.error: BaseException | None = None
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._own, name="biocircuits-ray", daemon=True)
        self._thread.start()

    def _own(self) -> None:
        address, num_cpus, threads = self.settings
        quiet = QuietThreadWarning()
        try:
            import ray

            if address is None:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user Ray: no token to manage
            logging.getLogger("ray._private.worker").addFilter(quiet)
            TIMES["ray_init_at"] = time.time()
            ray.init(
                address=address,
                num_cpus=None if address else num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env=runtime_env(threads) if threads else None,
            )
        except BaseException as err:  # noqa: BLE001  (raised in the command's thread by wait())
            self.error = err
            self._ready.set()
            return
        finally:
            logging.getLogger("ray._private.worker").removeFilter(quiet)
        TIMES["ray_ready_at"] = time.time()
        self._ready.set()
        self._stop.wait()
        ray.shutdown()
        TIMES["ray_down_at"] = time.time()

    def wait(self) -> None:
        """Block until Ray is up; raise ``ray.init``'s error when it failed."""
        self._ready.wait()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Ask for ``ray.shutdown`` (in the owner thread) and return at once."""
        self._stop.set()

    def join(self) -> None:
        """Stop Ray (once it is up) and wait until it is down."""
        self._ready.wait()
        self._stop.set()
        self._thread.join()


_owners: list[RayOwner] = []  # Rays this command started and has not yet waited to see stopped
_early: list[RayOwner] = []  # a Ray started by start_early and not yet claimed


def exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM outside the trials: exit with code ``signum`` through ``SystemExit`` (``finally`` blocks run, Ray is
    stopped), as Ray's own handler does when ``ray.init`` runs in the main thread."""
    sys.exit(signum)


def start(address: str | None, num_cpus: int | None, threads: int | None) -> RayOwner:
    """Start Ray in a [`RayOwner`][biocircuits.app.sweep.session.RayOwner] thread (returns at once). ``ray.init``
    off the main thread installs no SIGTERM handler, so the main thread installs
    [`exit_on_sigterm`][biocircuits.app.sweep.session.exit_on_sigterm] (unless a handler is set already); the
    sweep's own handler replaces it while the trials run."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, exit_on_sigterm)
    owner = RayOwner(address, num_cpus, threads)
    _owners.append(owner)
    return owner


def start_early(argv: list[str]) -> None:
    """For a ``sweep`` command line ``argv`` (the arguments after ``sweep``): start the sweep's Ray now, before the
    command imports torch and validates the sweep, when the command line reads plainly, Ray is installed and the
    sweep file's resources can be read ([`planned_threads`][biocircuits.app.sweep.session.planned_threads]).
    Otherwise nothing starts here: the sweep starts Ray when it needs it, after validation."""
    parser = QuietParser(add_help=False)
    sweep_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except ValueError:
        return
    threads = planned_threads(args.sweep)
    if threads is None:
        return
    try:
        import ray
    except ImportError:
        return
    if not ray.is_initialized():
        _early.append(start(args.address, None, threads))


def claim(address: str | None, num_cpus: int | None, threads: int | None) -> RayOwner | None:
    """The early Ray, when one was started with these settings (the engine then uses it); an early Ray with other
    settings, or one that failed to start, is stopped (the engine starts its own). None when there is none."""
    if not _early:
        return None
    owner = _early.pop()
    owner._ready.wait()
    if owner.error is None and owner.settings == (address, num_cpus, threads):
        return owner
    owner.join()
    return None


def release() -> None:
    """Stop every Ray this command started and wait until each is down (the early one too, when no sweep took it:
    e.g. its validation failed)."""
    _early.clear()
    while _owners:
        _owners.pop().join()


def take_times() -> dict[str, float]:
    """This command's timeline ([`TIMES`][biocircuits.app.sweep.session.TIMES]), emptied for the next command run in
    this process."""
    times = dict(TIMES)
    TIMES.clear()
    return times
