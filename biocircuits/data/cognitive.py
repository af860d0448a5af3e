"""Cognitive tasks of the rate-RNN literature (Song, Yang & Wang 2016), generated offline from a seed:
``data.name: cognitive`` with ``task:`` ``perceptual_decision``, ``delayed_match`` or ``context_integration``.

Every trial is a sequence of periods (fixation, stimulus, delay, response; the delayed match has a sample and a test
stimulus around its delay) of ``round(ms / dt)`` steps each. A sample is ``(x, y)``: inputs x [T, n_in] (float32;
channel 0 is the fixation cue, 1 until the response period begins) and targets y [T] (int64): the trial's class
during the response period and -1 everywhere else, which the trainer's sequence loss masks out
([`biocircuits.train.targets`][biocircuits.train.targets]). All trials of a task have the same length T."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from biocircuits.core import Registry
from biocircuits.core.seeds import layer_seed
from biocircuits.errors import ConfigError

from .registry import DataBundle, DatasetSource, register_dataset


class CognitiveTask:
    """A task: its periods in ms (``periods``, in trial order), ``dt`` (ms per step), ``input_noise`` (standard
    deviation of the N(0, 1) noise added to the stimulus channels at every stimulus step) and
    [`generate`][biocircuits.data.cognitive.CognitiveTask.generate]."""

    name: ClassVar[str]
    n_in: ClassVar[int]
    num_classes: ClassVar[int] = 2
    period_names: ClassVar[tuple[str, ...]]

    def __init__(self, dt: float = 20.0, input_noise: float = 1.0, **periods: float) -> None:
        unknown = set(periods) - set(self.period_names)
        if unknown:
            raise TypeError(f"unknown period(s) {sorted(unknown)}; this task has {list(self.period_names)}")
        if dt <= 0 or input_noise < 0 or any(ms < 0 for ms in periods.values()):
            raise ConfigError(
                "dt must be positive, input_noise and the periods non-negative",
                key="data.task_options",
                given={"dt": dt, "input_noise": input_noise, **periods},
            )
        self.dt, self.input_noise = float(dt), float(input_noise)
        self.periods = {**self.default_periods(), **periods}

    def default_periods(self) -> dict[str, float]:
        raise NotImplementedError

    def steps(self) -> dict[str, slice]:
        """Each period's steps as a slice of [0, T), in trial order."""
        out, start = {}, 0
        for name in self.period_names:
            n = int(round(self.periods[name] / self.dt))
            out[name] = slice(start, start + n)
            start += n
        return out

    @property
    def length(self) -> int:
        """T, the number of steps of a trial."""
        return max(s.stop for s in self.steps().values())

    def generate(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` trials: x [n, T, n_in], y [n, T] (-1 outside the response period)."""
        steps = self.steps()
        x = torch.zeros(n, self.length, self.n_in)
        x[:, : steps["response"].start, 0] = 1.0  # fixation cue until the response period
        labels = self.fill(x, steps, gen)
        y = torch.full((n, self.length), -1, dtype=torch.int64)
        y[:, steps["response"]] = labels.view(-1, 1)
        return x, y

    def fill(self, x: Tensor, steps: dict[str, slice], gen: torch.Generator) -> Tensor:
        """Write the stimuli into x [n, T, n_in] in place; return the labels [n]."""
        raise NotImplementedError

    def noise(self, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        return self.input_noise * torch.randn(shape, generator=gen)


TASKS: Registry[type[CognitiveTask]] = Registry("cognitive task")


def signed_coherence(n: int, levels: list[float], gen: torch.Generator) -> Tensor:
    """n coherences c = d * level with level drawn uniformly from ``levels`` and direction d = +-1 (fair coin)."""
    level = torch.tensor(levels, dtype=torch.float32)[torch.randint(len(levels), (n,), generator=gen)]
    return level * (2.0 * torch.randint(2, (n,), generator=gen) - 1.0)


@TASKS.register
class PerceptualDecision(CognitiveTask):
    """Random-dots style two-alternative choice: channels 1 and 2 carry (1 + c) / 2 and (1 - c) / 2 plus noise during
    the stimulus; the class is 0 when c > 0 (channel 1 stronger), else 1. ``coherences``: the levels |c|."""

    name, n_in, period_names = "perceptual_decision", 3, ("fixation", "stimulus", "delay", "response")

    def __init__(self, coherences: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coherences = [float(c) for c in coherences]

    def default_periods(self) -> dict[str, float]:
        return {"fixation": 100.0, "stimulus": 500.0, "delay": 0.0, "response": 100.0}

    def fill(self, x: Tensor, steps: dict[str, slice], gen: torch.Generator) -> Tensor:
        n, stim = x.shape[0], steps["stimulus"]
        c = signed_coherence(n, self.coherences, gen)
        means = torch.stack([(1 + c) / 2, (1 - c) / 2], 1).unsqueeze(1)  # [n, 1, 2]
        x[:, stim, 1:3] = means + self.noise((n, stim.stop - stim.start, 2), gen)
        return (c < 0).long()


@TASKS.register
class DelayedMatch(CognitiveTask):
    """Delayed match-to-sample: one of ``stimuli`` one-hot stimuli (channels 1..K, plus noise) in the sample period,
    a delay, then a test stimulus equal to the sample with probability 1/2 (else another, uniformly); class 1 for a
    match, 0 for a non-match."""

    name, period_names = "delayed_match", ("fixation", "sample", "delay", "test", "response")
    n_in = 5

    def __init__(self, stimuli: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if stimuli < 2:
            raise ConfigError("delayed match needs at least 2 stimuli", key="data.task_options.stimuli", given=stimuli)
        self.stimuli, self.n_in = int(stimuli), 1 + int(stimuli)

    def default_periods(self) -> dict[str, float]:
        return {"fixation": 100.0, "sample": 200.0, "delay": 300.0, "test": 200.0, "response": 100.0}

    def fill(self, x: Tensor, steps: dict[str, slice], gen: torch.Generator) -> Tensor:
        n, k = x.shape[0], self.stimuli
        sample = torch.randint(k, (n,), generator=gen)
        match = torch.randint(2, (n,), generator=gen)
        other = (sample + 1 + torch.randint(k - 1, (n,), generator=gen)) % k  # uniform over the k - 1 others
        test = torch.where(match.bool(), sample, other)
        for period, stim in (("sample", sample), ("test", test)):
            s = steps[period]
            x[:, s, 1:] = torch.nn.functional.one_hot(stim, k).float().unsqueeze(1)
            x[:, s, 1:] += self.noise((n, s.stop - s.start, k), gen)
        return match


@TASKS.register
class ContextIntegration(CognitiveTask):
    """Context-dependent integration (Mante et al. 2013): two modalities each carry a coherence (channels 3-4 and
    5-6, as in the perceptual decision), a context cue (channel 1 or 2, on until the response) says which one
    counts; the class is 0 when the attended coherence is positive, else 1."""

    name, n_in, period_names = "context_integration", 7, ("fixation", "stimulus", "delay", "response")

    def __init__(self, coherences: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coherences = [float(c) for c in coherences]

    def default_periods(self) -> dict[str, float]:
        return {"fixation": 100.0, "stimulus": 500.0, "delay": 100.0, "response": 100.0}

    def fill(self, x: Tensor, steps: dict[str, slice], gen: torch.Generator) -> Tensor:
        n, stim, cue_end = x.shape[0], steps["stimulus"], steps["response"].start
        context = torch.randint(2, (n,), generator=gen)
        x[:, :cue_end, 1:3] = torch.nn.functional.one_hot(context, 2).float().unsqueeze(1)
        cohs = torch.stack([signed_coherence(n, self.coherences, gen) for _ in range(2)], 1)  # [n, 2]
        for m in range(2):
            means = torch.stack([(1 + cohs[:, m]) / 2, (1 - cohs[:, m]) / 2], 1).unsqueeze(1)
            x[:, stim, 3 + 2 * m : 5 + 2 * m] = means + self.noise((n, stim.stop - stim.start, 2), gen)
        return (cohs.gather(1, context.view(-1, 1)).squeeze(1) < 0).long()


def make_task(name: str | None, options: dict[str, Any]) -> CognitiveTask:
    """Task ``name`` built with ``options`` (``data.task_options``); a bad name or option is a ConfigError."""
    if name is None:
        raise ConfigError(
            "data.name: cognitive needs a task",
            key="data.task",
            expected="one of " + ", ".join(TASKS.names()),
            given=None,
            has_given=False,
        )
    cls = TASKS.get(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise ConfigError(
            f"task {name!r} rejected its options: {err}", key="data.task_options", given=options
        ) from None


@register_dataset
class Cognitive(DatasetSource):
    """``train_size`` and ``val_size`` trials of ``data.task`` (options ``data.task_options``), each set drawn from
    its own generator seeded from ``split_seed`` (the same seed gives the same trials)."""

    name = "cognitive"

    def build(self, spec) -> DataBundle:
        task = make_task(getattr(spec, "task", None), dict(getattr(spec, "task_options", None) or {}))
        sets = []
        for part, size in (("train", spec.train_size), ("val", spec.val_size)):
            gen = torch.Generator().manual_seed(layer_seed(spec.split_seed, f"cognitive.{task.name}.{part}"))
            sets.append(TensorDataset(*task.generate(size, gen)))
        return DataBundle(sets[0], sets[1], task.num_classes, (task.length, task.n_in))
