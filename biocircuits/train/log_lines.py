"""Progress for log files (a SLURM ``.out``, ``nohup``, a pipe): one plain line every ``train.log_interval_s`` seconds
on rank 0 when stdout is not a terminal (where the tqdm bar cannot be seen), and a line naming the rank when a run
fails on any process."""

from __future__ import annotations

import resource
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TextIO

import torch

from .callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from .distributed import DistInfo
    from .trainer import Trainer


def duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS`` (days as ``Dd H:MM:SS``); ``?`` when not finite or negative."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    text = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}d {text}" if days else text


def memory_text(device: torch.device) -> str:
    """Peak memory of this process: the device's peak allocated tensors on CUDA (``torch.cuda.max_memory_allocated``)
    and the host's peak resident set size (``ru_maxrss``, KiB on Linux), in GiB."""
    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if device.type == "cuda":
        return f"gpu {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB, host {host:.2f} GiB"
    return f"host {host:.2f} GiB"


def status_line(
    step: int,
    total: int,
    epoch: float,
    window: dict[str, float],
    world: int,
    window_s: float,
    run_s: float,
    run_steps: int,
    memory: str,
) -> str:
    """One line of figures over the ``window`` since the previous line (this rank's ``samples``, ``data_s``,
    ``compute_s``, ``loss_sum``) and over the run so far:

    - images/s = world * samples / window_s (every rank loads the same per-rank batch);
    - data share = data_s / (data_s + compute_s): the part of this rank's step time spent waiting for the loader;
    - loss = loss_sum / samples;
    - ETA = (total - step) * run_s / run_steps (the mean step time since this start or resume)."""
    n = max(window["samples"], 1.0)
    busy = window["data_s"] + window["compute_s"]
    share = 100 * window["data_s"] / busy if busy > 0 else 0.0
    eta = (total - step) * run_s / run_steps if run_steps > 0 else float("nan")
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return (
        f"{stamp} step {step}/{total} epoch {epoch:.2f} | {world * window['samples'] / max(window_s, 1e-9):.1f} "
        f"img/s | data wait {share:.0f}% | loss {window['loss_sum'] / n:.4f} | {memory} | "
        f"ETA {duration(eta)}"
    )


class LogLines(Callback):
    """Every ``train.log_interval_s`` seconds (and at the last step) rank 0 prints
    [`status_line`][biocircuits.train.log_lines.status_line] to ``stream`` (stdout) and flushes it. ``train.log_lines``:
    true always, false never, unset (default) only when ``stream`` is not a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.enabled = False
        self.window: dict[str, float] = {}
        self.t_line = self.t_start = 0.0
        self.start_step = 0

    def on_train_start(self, trainer: Trainer) -> None:
        stream = self.stream or sys.stdout
        wanted = trainer.exp.train.log_lines
        self.enabled = trainer.dist.is_main and (wanted if wanted is not None else not stream.isatty())
        self.window = dict.fromkeys(("samples", "data_s", "compute_s", "loss_sum"), 0.0)
        self.t_line = self.t_start = time.perf_counter()
        self.start_step = trainer.step
        if self.enabled:
            print(
                f"training {trainer.exp.name}: steps {trainer.step}/{trainer.total_steps}, world {trainer.dist.world}"
                f", device {trainer.device}, a line every {trainer.exp.train.log_interval_s:g} s",
                file=stream,
                flush=True,
            )

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        w = self.window
        for key in ("samples", "data_s", "compute_s"):
            w[key] += metrics[key]
        w["loss_sum"] += metrics["loss"] * metrics["samples"]
        now = time.perf_counter()
        if now - self.t_line < trainer.exp.train.log_interval_s and trainer.step != trainer.total_steps:
            return
        line = status_line(
            trainer.step,
            trainer.total_steps,
            metrics["epoch"],
            w,
            trainer.dist.world,
            now - self.t_line,
            now - self.t_start,
            trainer.step - self.start_step,
            memory_text(trainer.device),
        )
        print(line, file=self.stream or sys.stdout, flush=True)
        self.window, self.t_line = dict.fromkeys(w, 0.0), now


@contextmanager
def ranked_failures(dist: DistInfo, stream: TextIO | None = None) -> Iterator[SimpleNamespace]:
    """Under DDP (world > 1), re-raise any exception of the block after printing (flushed) one line to ``stream``
    (stderr) that names this process: ``rank R of W (local rank L on HOST) failed at step S: Type: message``.
    Yields a namespace whose ``where`` the block sets to the trainer once built (its ``step`` goes in the line).
    Under torchrun the failing rank's line reaches the job's log even when another rank is the one blocked in a
    collective."""
    failure = SimpleNamespace(where=None)
    try:
        yield failure
    except BaseException as err:
        if not dist.enabled or isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        step = getattr(failure.where, "step", None)
        at = f" at step {step}" if step is not None else ""
        message = str(err).splitlines()[0][:300] if str(err) else ""
        print(
            f"rank {dist.rank} of {dist.world} (local rank {dist.local_rank} on {socket.gethostname()}) failed"
            f"{at}: {type(err).__name__}: {message}",
            file=stream or sys.stderr,
            flush=True,
        )
        raise


__all__ = ["LogLines", "duration", "memory_text", "ranked_failures", "status_line"]
