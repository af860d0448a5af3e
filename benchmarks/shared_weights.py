"""Benchmark variants that share one model's tensors: each variant only switches the layers' class (plain
torch layer or feedback layer), rule, and the optimiser (with or without biocircuits hooks) before its step.

On a small CPU, separate model copies differ in memory placement, which moves step times by several percent
between copies and between runs; sharing the tensors removes that, so the ratios measure the backward path
and the hooks alone."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable

import torch
from common import synthetic_batch, training_step
from torch import nn

import biocircuits as bc
from biocircuits.core.binding import Binding
from biocircuits.core.interface import attachments_of
from biocircuits.dale.enforcers import ENFORCERS
from biocircuits.plasticity.rules import Update

PLASTICITY = {"rules": [{"match": {"layers": "layer4.*", "population": "I"}, "lr_scale": 0.5}]}


def shared_steps(base: nn.Module, args, dale: bool) -> dict[str, Callable[[], None]]:
    """{variant: step} over one converted copy of ``base``: plain autograd, bp, fa, sign_symmetry, and with
    ``dale`` the project / exp_gradient / project+plasticity hooks on top of sign_symmetry."""
    device = torch.device(args.device)
    model = copy.deepcopy(base)
    bc.apply(model, {"feedback": {"rule": "bp"}, **({"dale": {"enforce": "project"}} if dale else {})})
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    layers = bc.feedback_layers(model)
    feedback_cls = {name: type(layer) for name, layer in layers}
    plain_cls = {name: attachments_of(layer).plain_class for name, layer in layers}
    rules = {r: {name: bc.make_rule(r, {}, seed=0) for name, _ in layers} for r in ("bp", "fa", "sign_symmetry")}
    for r in ("fa", "sign_symmetry"):
        for name, layer in layers:
            rules[r][name].attach(layer, name)  # registers feedback_weight / the sign cache once
    x, y = synthetic_batch(args, device)

    def optimizer() -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def make(mode: str, opt: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            for name, layer in layers:
                if mode == "plain":
                    layer.__class__ = plain_cls[name]
                else:
                    layer.__class__ = feedback_cls[name]
                    attachments_of(layer).slots["rule"] = [rules[mode][name]]
            training_step(model, opt, x, y, args.amp)

        return step

    steps = {"plain autograd": make("plain", optimizer())}
    for rule in ("bp", "fa", "sign_symmetry"):
        steps[rule] = make(rule, optimizer())
    if dale:
        constrained = [(n, layer) for n, layer in layers if getattr(layer, "dale_sign", None) is not None]
        project = {n: attachments_of(layer).dale for n, layer in constrained}
        for name, enforce, plasticity in (
            ("dale_project+sign_symmetry", "project", False),
            ("dale_exp_gradient+sign_symmetry", "exp_gradient", False),
            ("dale_project+plasticity+sign_symmetry", "project", True),
        ):
            for n, layer in constrained:  # the variant's attachments, unattached (weights and buffers as they are)
                held = attachments_of(layer)
                held.slots["dale"] = [
                    project[n] if enforce == "project" else ENFORCERS.get(enforce)(sign=layer.dale_sign)
                ]
                held.slots["plasticity"] = (
                    [Update({"lr_scale": 0.5}, population="I")]
                    if plasticity and fnmatch.fnmatchcase(n, PLASTICITY["rules"][0]["match"]["layers"])
                    else []
                )
            opt = optimizer()
            Binding(opt, model)  # the hooks (and the attachments they run) stay on this optimiser only
            steps[name] = make("sign_symmetry", opt)
        for n, layer in constrained:
            attachments_of(layer).slots.update(dale=[project[n]], plasticity=[])
    return steps
