"""The training loop's extension point: a [`Callback`][biocircuits.train.callback.Callback] is called at five moments of
a run and owns its state, which the checkpoint saves and ``--resume`` restores. Logging, evaluation, probes, checkpoints
and progress are callbacks ([`callbacks`][biocircuits.train.callbacks]); a user's metric, early stop or report to
another system is one more.

The loop ([`Trainer`][biocircuits.train.trainer.Trainer]) calls, in this order::

    on_train_start(trainer)                  # once per start or resume, before the first step
    on_step_end(trainer, metrics)            # after each optimiser step (update phase done, schedule stepped)
    on_epoch_end(trainer)                    # after the last micro-batch of each epoch
    on_eval_end(trainer, metrics)            # after each evaluation: {"loss", "acc1", "acc5", "count", "step"}
    on_train_end(trainer, summary)           # once, with the summary (``{"interrupted": True, ...}`` on a signal)

Callbacks run in list order: the built-in ones first (log, evaluate, probe, checkpoint, progress), then the user's.
A callback stops the run early with ``trainer.request_stop(reason)``: the run then ends as a finished one
(evaluation, checkpoint, summary with ``stopped_early``), unlike a signal, which leaves it to be resumed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

HOOKS = ("on_train_start", "on_step_end", "on_epoch_end", "on_eval_end", "on_train_end")


class Callback:
    """Base class: override any hook; keep what must survive a resume in
    [`state_dict`][biocircuits.train.callback.Callback.state_dict].

    ``metrics`` of [`on_step_end`][biocircuits.train.callback.Callback.on_step_end] is one optimiser step's figures:
    ``step``, ``epoch`` (fractional), ``loss`` (mean over the step's micro-batches on this rank), ``lr``,
    ``correct1``/``correct5``/``samples`` (this rank's counts), ``data_s`` and ``compute_s`` (seconds spent loading and
    computing) and ``grad_norm`` (with clipping)."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_epoch_end(self, trainer: Trainer) -> None: ...

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What the checkpoint keeps for this callback (plain values and tensors); empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what [`state_dict`][biocircuits.train.callback.Callback.state_dict] returned (on ``--resume``)."""


class CallbackList:
    """The run's callbacks in call order, each under a key (its class name, ``-2``, ``-3``... for repeats) that
    names its entry in the checkpoint."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.items: list[Callback] = list(callbacks)
        seen: Counter[str] = Counter()
        self.keys: list[str] = []
        for cb in self.items:
            name = type(cb).__name__
            seen[name] += 1
            self.keys.append(name if seen[name] == 1 else f"{name}-{seen[name]}")

    def fire(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback in order."""
        for cb in self.items:
            getattr(cb, hook)(*args)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {key: state for key, cb in zip(self.keys, self.items, strict=True) if (state := cb.state_dict())}

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        """Restore each callback from its key's entry; callbacks the checkpoint has no entry for keep their start
        state, and entries of callbacks absent from this run are ignored."""
        for key, cb in zip(self.keys, self.items, strict=True):
            if key in state:
                cb.load_state_dict(state[key])
