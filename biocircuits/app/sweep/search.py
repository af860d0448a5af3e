"""``search:`` a space of settings searched at random or by Optuna. Random samples are drawn when the sweep is
planned, from ``seed``, so they are the same on every rerun and the sweep continues like a grid: each sample is one
more variant (``sample000``, ``sample001``, ...), run for every seed and grid cell. Optuna's samples are chosen while
the sweep runs ([`adaptive`][biocircuits.app.sweep.adaptive])."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from biocircuits.config.constraints import Strict
from biocircuits.errors import ConfigError

DottedKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]


class Distribution(Strict):
    """One key of the space: exactly one of ``uniform: [low, high]``, ``loguniform: [low, high]`` (low > 0),
    ``randint: [low, high]`` (integers, high excluded) or ``choice: [values...]``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    uniform: Pair | None = None
    loguniform: Pair | None = None
    randint: Annotated[list[int], Field(min_length=2, max_length=2)] | None = None
    choice: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [k for k in ("uniform", "loguniform", "randint", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                "a distribution is exactly one of uniform, loguniform, randint, choice",
                given=given or None,
                has_given=bool(given),
                suggestion="e.g. {loguniform: [0.001, 0.1]}",
            )
        pair = self.uniform or self.loguniform or self.randint
        if pair is not None and not pair[0] < pair[1]:
            raise ConfigError("the range is empty", key=given[0], expected="[low, high] with low < high", given=pair)
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ConfigError(
                "loguniform needs a positive range", key="loguniform", expected="low > 0", given=self.loguniform
            )
        return self

    def sample(self, rng: np.random.Generator) -> Any:
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        if self.loguniform is not None:
            return float(math.exp(rng.uniform(math.log(self.loguniform[0]), math.log(self.loguniform[1]))))
        if self.randint is not None:
            return int(rng.integers(*self.randint))
        return self.choice[int(rng.integers(len(self.choice)))]

    def candidates(self) -> list[Any]:
        """Values that bound the distribution (both ends of a range, every choice): each is validated before a
        search whose samples are drawn later (Optuna) starts."""
        if self.randint is not None:
            return [self.randint[0], self.randint[1] - 1]
        return list(self.uniform or self.loguniform or self.choice)


class Search(Strict):
    """``search:`` ``num_samples`` points of ``space``: drawn at random from ``seed`` when the sweep is planned
    (``algorithm: random``), or chosen one after another by Optuna's TPE sampler (seeded by ``seed``) from the
    results so far, through Ray Tune's ``OptunaSearch`` (``algorithm: optuna``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    algorithm: Literal["random", "optuna"] = "random"
    num_samples: int = Field(ge=1, le=10_000)
    seed: int = Field(0, ge=0, lt=2**63)
    space: Annotated[dict[DottedKey, Distribution], Field(min_length=1)]


def draw(search: Search | None) -> list[tuple[str, dict[str, Any]]]:
    """[(label, {key: value})] of the random samples, in draw order (keys in file order); one unnamed empty sample
    when there is no search or its samples are chosen while the sweep runs."""
    if search is None or search.algorithm != "random":
        return [("", {})]
    rng = np.random.default_rng(search.seed)
    return [(f"sample{i:03d}", {k: d.sample(rng) for k, d in search.space.items()}) for i in range(search.num_samples)]
