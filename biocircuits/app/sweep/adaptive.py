"""``search: {algorithm: optuna}``: samples chosen while the sweep runs, by Optuna's TPE sampler through Ray Tune's
``OptunaSearch``, each from the results of those before it. One trial per sample, at the sweep's one seed; a trial
claims the next index when it starts and trains into ``trials/NNN_sampleNNN_s<seed>``, an ordinary run folder whose
``trial.json`` records the values Optuna chose.

Before anything runs, the experiment is built at every bound of the space (both ends of each range, every choice),
so a bad key or value fails at once naming the ``search.space`` key. A rerun continues: interrupted samples resume
from their checkpoints with their recorded values, the finished ones are told to Optuna as evaluated points
(``points_to_evaluate`` + ``evaluated_rewards``), and only the samples still missing are drawn, by a sampler
seeded from ``seed`` and the number of samples already taken
([`sampler_seed`][biocircuits.app.sweep.adaptive.sampler_seed])."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .engine import REPORTED, build_scheduler, fit, run_trials
from .folder import DONE, SweepFolder
from .results import figures
from .search import Distribution, Search
from .spec import SweepSpec, Trial, base_experiment, build_trial, slug
from .trial import train_trial

CLAIMS = ".claims"  # trials/.claims/NNN: one empty folder per index taken (os.mkdir is atomic)


@dataclass
class SearchPlan:
    """What a trial needs to build its experiment from the values Optuna chose (it travels to the workers)."""

    search: Search
    seed: int
    base: dict[str, Any]
    exp_path: Path
    here: Path
    sets: dict[str, Any]
    sweep_file: str

    def trial(self, index: int, values: dict[str, Any]) -> Trial:
        """Sample ``index`` with ``values`` (search key -> value), its experiment built and validated."""
        tid = f"{index:03d}_sample{index:03d}_s{self.seed}"
        sets = {**self.sets, **values, "train.seed": self.seed, "name": slug(f"{self.base.get('name', 'run')}-{tid}")}
        where = {**{k: f"set.{k}" for k in self.sets}, **{k: f"search.space.{k}" for k in values}}
        exp = build_trial(self.base, self.exp_path, self.here, sets, self.sweep_file, where)
        return Trial(tid, f"sample{index:03d}", dict(values), self.seed, exp)

    def bounds(self) -> list[Trial]:
        """One trial per bound of the space (the other keys at their first bound): all validated."""
        first = {k: d.candidates()[0] for k, d in self.search.space.items()}
        return [
            self.trial(0, {**first, key: value}) for key, d in self.search.space.items() for value in d.candidates()
        ]

    def distributions(self) -> dict[str, Any]:
        """Optuna's space, key ``p<i>`` for the i-th search key (a choice is searched by its index)."""
        return {f"p{i}": _optuna(d) for i, d in enumerate(self.search.space.values())}

    def values(self, config: dict[str, Any]) -> dict[str, Any]:
        """Tune's config (``p<i>``) -> {search key: value}."""
        return {k: _decode(d, config[f"p{i}"]) for i, (k, d) in enumerate(self.search.space.items())}

    def config(self, values: dict[str, Any]) -> dict[str, Any]:
        """{search key: value} -> Tune's config (``p<i>``)."""
        return {
            f"p{i}": d.choice.index(values[k]) if d.choice is not None else values[k]
            for i, (k, d) in enumerate(self.search.space.items())
        }


def _optuna(d: Distribution) -> Any:
    from optuna import distributions as od

    if d.randint is not None:
        return od.IntDistribution(d.randint[0], d.randint[1] - 1)
    if d.choice is not None:
        return od.CategoricalDistribution(list(range(len(d.choice))))
    low, high = d.uniform or d.loguniform
    return od.FloatDistribution(low, high, log=d.loguniform is not None)


def _decode(d: Distribution, value: Any) -> Any:
    if d.choice is not None:
        return d.choice[int(value)]
    return int(value) if d.randint is not None else float(value)


def search_plan(spec: SweepSpec, sweep_file: str | Path) -> SearchPlan:
    """The plan of an Optuna search, validated at every bound of its space."""
    here, exp_path, base = base_experiment(spec, sweep_file)
    plan = SearchPlan(spec.search, spec.seeds[0], base, exp_path, here, dict(spec.set), str(sweep_file))
    plan.bounds()
    return plan


def claim_index(trials: Path) -> int:
    """The lowest sample index no trial has taken yet, taken now (safe between concurrent workers)."""
    (trials / CLAIMS).mkdir(parents=True, exist_ok=True)
    index = 0
    while True:
        try:
            os.mkdir(trials / CLAIMS / f"{index:03d}")
            return index
        except FileExistsError:
            index += 1


def sampler_seed(seed: int, started: int) -> int:
    """The TPE sampler's seed for a run that finds ``started`` samples already taken: derived from both, so that a
    continued search does not replay the draws its first run made (Optuna's first samples are random draws)."""
    return int(np.random.SeedSequence([seed, started]).generate_state(1)[0])


def search_trainable(
    config: dict[str, Any], folder: str, plan: SearchPlan, threads: int, scheduler: str | None = None
) -> None:
    """The function Ray Tune calls for a sample Optuna chose: claim an index, build and train the trial."""
    import torch
    from ray import tune

    torch.set_num_threads(threads)
    trials = Path(folder) / "trials"
    trial = plan.trial(claim_index(trials), plan.values(config))
    train_trial(
        trials / trial.id,
        trial.record(),
        trial.experiment.model_dump(mode="json"),
        trial.experiment.source,
        threads,
        report=tune.report,
        scheduler=scheduler,
    )


def run_search(
    folder: SweepFolder, spec: SweepSpec, plan: SearchPlan, max_concurrent: int | None
) -> tuple[list[Trial], dict[str, str | None], float | None]:
    """Resume the interrupted samples, then let Optuna choose the missing ones; returns every sample's trial (for
    [`settle`][biocircuits.app.sweep.command.settle]), the engine's errors and when a signal stopped the sweep."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    states = {tid: folder.trial_state(tid) for tid in folder.trial_ids()}
    known = [plan.trial(int(tid.split("_")[0]), s["values"]) for tid, s in states.items()]
    errors, stopped = run_trials(
        folder,
        [t for t in known if states[t.id].get("status") not in DONE],
        spec.resources,
        max_concurrent,
        scheduler=spec.scheduler,
        metric=spec.metric,
    )
    missing = spec.search.num_samples - len(states)
    if stopped is None and missing > 0:
        name, mode = REPORTED[spec.metric]
        told = [
            (plan.config(states[t.id]["values"]), figures(folder.trial(t.id))[name])
            for t in known
            if states[t.id].get("status") == "finished" and figures(folder.trial(t.id))[name] is not None
        ]
        searcher = OptunaSearch(
            space=plan.distributions(),
            metric=name,
            mode=mode,
            seed=sampler_seed(spec.search.seed, len(states)),
            points_to_evaluate=[c for c, _ in told] or None,
            evaluated_rewards=[r for _, r in told] or None,
        )
        trainable = tune.with_parameters(
            search_trainable,
            folder=str(folder.path.resolve()),
            plan=plan,
            threads=spec.resources.torch_threads(),
            scheduler=spec.scheduler.name if spec.scheduler else None,
        )
        _, stopped = fit(
            folder,
            trainable,
            spec.resources,
            {},
            tune.TuneConfig(
                search_alg=searcher,
                num_samples=missing,
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,  # one worker (and its imports) for many samples
                scheduler=build_scheduler(spec.scheduler, spec.metric),
            ),
        )
        states = {tid: folder.trial_state(tid) for tid in folder.trial_ids()}
        known = [plan.trial(int(tid.split("_")[0]), s["values"]) for tid, s in states.items()]
    return known, errors, stopped
