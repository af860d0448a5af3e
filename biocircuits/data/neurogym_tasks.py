"""Any neurogym task (Molano-Mazon et al., Gymnasium-style cognitive tasks) as an offline trial set:
``data.name: neurogym`` with ``task:`` the environment id (e.g. ``PerceptualDecisionMaking-v0``) and ``task_options``
passed to ``neurogym.make`` (``dt``, ``timing``...). Needs ``pip install -e ".[neurogym]"``."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import TensorDataset

from biocircuits.core.seeds import layer_seed
from biocircuits.errors import ConfigError

from .registry import DataBundle, DatasetSource, register_dataset


def neurogym_trials(env: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` trials of the neurogym environment ``env`` (its random state seeded with ``seed``): x [n, T, n_in] (the
    observations, zero-padded to the longest trial) and y [n, T]: the ground-truth action during the ``decision``
    period (every step whose ground truth is not 0, fixation, when the task has no such period), -1 elsewhere."""
    task = env.unwrapped
    task.seed(seed)
    obs, targets = [], []
    for _ in range(n):
        task.new_trial()
        ob, gt = torch.as_tensor(task.ob, dtype=torch.float32), torch.as_tensor(task.gt, dtype=torch.int64)
        mask = gt != 0
        if "decision" in task.start_ind:
            mask = torch.zeros_like(gt, dtype=torch.bool)
            mask[task.start_ind["decision"] : task.end_ind["decision"]] = True
        obs.append(ob)
        targets.append(torch.where(mask, gt, -1))
    length = max(len(o) for o in obs)
    x = torch.zeros(n, length, obs[0].shape[-1])
    y = torch.full((n, length), -1, dtype=torch.int64)
    for i, (ob, target) in enumerate(zip(obs, targets, strict=True)):
        x[i, : len(ob)], y[i, : len(target)] = ob, target
    return x, y


@register_dataset
class Neurogym(DatasetSource):
    """``train_size`` and ``val_size`` trials of the neurogym task ``data.task``, each set from its own seed derived
    from ``split_seed``; the classes are the task's actions (fixation is class 0)."""

    name = "neurogym"

    def build(self, spec) -> DataBundle:
        try:
            import neurogym
        except ImportError:
            raise ConfigError(
                "data.name: neurogym needs the neurogym package",
                key="data.name",
                given="neurogym",
                suggestion='pip install -e ".[neurogym]", or use data.name: cognitive',
            ) from None
        task = getattr(spec, "task", None)
        try:
            env = neurogym.make(task, **dict(getattr(spec, "task_options", None) or {}))
        except Exception as err:  # gymnasium raises its own errors for an unknown id or a bad keyword
            raise ConfigError(
                f"neurogym could not make {task!r}: {type(err).__name__}: {err}",
                key="data.task",
                given=task,
                suggestion="an id from neurogym.all_envs(), e.g. PerceptualDecisionMaking-v0",
            ) from None
        sets = []
        for part, size in (("train", spec.train_size), ("val", spec.val_size)):
            sets.append(
                TensorDataset(*neurogym_trials(env, size, layer_seed(spec.split_seed, f"neurogym.{part}") % 2**32))
            )
        n_in = sets[0].tensors[0].shape[-1]
        length = max(s.tensors[0].shape[1] for s in sets)
        sets = [_pad(s, length) for s in sets]
        return DataBundle(sets[0], sets[1], int(env.action_space.n), (length, n_in))


def _pad(data: TensorDataset, length: int) -> TensorDataset:
    """``data`` with x zero-padded and y padded with -1 to ``length`` steps."""
    x, y = data.tensors
    extra = length - x.shape[1]
    if extra == 0:
        return data
    return TensorDataset(torch.nn.functional.pad(x, (0, 0, 0, extra)), torch.nn.functional.pad(y, (0, extra), value=-1))
