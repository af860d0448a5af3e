"""Perturbations of the feedback pathway, applied to the error delta arriving at every converted layer.

- ``error_noise`` sigma: delta <- delta + sigma * rms(delta) * xi, xi ~ N(0, 1);
- ``error_quantization`` N: stochastic spike-count code with at most N spikes per unit and scale
  m = max|delta|: c = N |delta| / m, q = sign(delta) m / N (floor(c) + Bernoulli(c - floor(c))), so E[q] = delta;
- ``error_delay`` K: the weight update at step t uses the error and presynaptic activity of step t - K
  (grad_W(t - K) = delta(t - K) x(t - K)^T; zero for the first K steps);
- ``eligibility_decay`` lambda: the update is an exponentially decaying trace e_t = lambda e_{t-1} + grad_W(t).

Noise and quantisation draw from generators seeded by (seed, layer, step) so runs resume exactly; delay
queues and traces live in persistent buffers, saved with the model. A zero perturbation installs nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from biocircuits.config.constraints import PhasesSpec
from biocircuits.feedback.convert import feedback_layers
from biocircuits.feedback.rules.registry import layer_seed


class ErrorPerturbation:
    """The backward hook installed on a layer's output: noise then quantisation of delta."""

    def __init__(self, layer: nn.Module, spec: PhasesSpec, seed: int) -> None:
        self.layer = layer
        self.noise = spec.error_noise
        self.spikes = spec.error_quantization
        self.seed = seed

    def _generator(self, device: torch.device) -> torch.Generator:
        self.layer.phase_step += 1
        return torch.Generator(device=device).manual_seed((self.seed + 104729 * int(self.layer.phase_step))
                                                           % (2**62))

    @torch.no_grad()
    def __call__(self, delta: Tensor) -> Tensor:
        gen = self._generator(delta.device)
        out = delta
        if self.noise:
            rms = out.float().pow(2).mean().sqrt()
            xi = torch.randn(out.shape, generator=gen, device=out.device, dtype=torch.float32)
            out = (out.float() + self.noise * rms * xi).to(delta.dtype)
        if self.spikes:
            out = quantize(out, self.spikes, gen)
        return out


def quantize(delta: Tensor, spikes: int, generator: torch.Generator | None = None) -> Tensor:
    """Unbiased stochastic spike-count coding of ``delta`` with at most ``spikes`` spikes per unit."""
    scale = delta.detach().abs().max().float()
    if scale == 0:
        return delta
    count = delta.float().abs() * (spikes / scale)
    low = count.floor()
    extra = torch.rand(count.shape, generator=generator, device=count.device) < (count - low)
    return (torch.sign(delta.float()) * (low + extra) * (scale / spikes)).to(delta.dtype)


class GradientPhases:
    """Delay and eligibility trace of the weight (and bias) gradients, applied just before the optimiser step."""

    def __init__(self, layers: list[tuple[str, nn.Module]], spec: PhasesSpec) -> None:
        self.layers = layers
        self.delay = spec.error_delay
        self.decay = spec.eligibility_decay

    @torch.no_grad()
    def __call__(self) -> None:
        for _, layer in self.layers:
            for pname in ("weight", "bias"):
                param = _param(layer, pname)
                if param is None or param.grad is None:
                    continue
                grad = param.grad
                if self.delay:
                    queue = getattr(layer, f"delay_queue_{pname}")
                    slot = int(layer.delay_count) % self.delay
                    ready = int(layer.delay_count) >= self.delay
                    delayed = queue[slot].clone() if ready else torch.zeros_like(grad)
                    queue[slot].copy_(grad)
                    grad.copy_(delayed)
                if self.decay:
                    trace = getattr(layer, f"eligibility_{pname}")
                    trace.mul_(self.decay).add_(grad)
                    grad.copy_(trace)
            if self.delay:
                layer.delay_count += 1


def _param(layer: nn.Module, name: str) -> Tensor | None:
    parametrizations = getattr(layer, "parametrizations", None)
    if name == "weight" and parametrizations is not None and "weight" in parametrizations:
        return parametrizations.weight.original
    return getattr(layer, name, None)


def attach_perturbations(model: nn.Module, spec: PhasesSpec) -> GradientPhases | None:
    """Install the error hooks and gradient buffers that ``spec`` asks for on every converted layer of
    ``model``; returns the gradient transform (or None) that :func:`biocircuits.bind` runs before each step."""
    layers = feedback_layers(model)
    for name, layer in layers:
        if spec.error_noise or spec.error_quantization:
            layer.register_buffer("phase_step", torch.zeros((), dtype=torch.int64, device=layer.weight.device))
            layer.optional_buffers.add("phase_step")
            layer.error_perturbation = ErrorPerturbation(layer, spec, layer_seed(spec.seed, name))
        for pname in ("weight", "bias"):
            param = _param(layer, pname)
            if param is None:
                continue
            if spec.error_delay:
                queue = torch.zeros((spec.error_delay, *param.shape), dtype=param.dtype, device=param.device)
                layer.register_buffer(f"delay_queue_{pname}", queue)
                layer.optional_buffers.add(f"delay_queue_{pname}")
            if spec.eligibility_decay:
                layer.register_buffer(f"eligibility_{pname}", torch.zeros_like(param))
                layer.optional_buffers.add(f"eligibility_{pname}")
        if spec.error_delay:
            layer.register_buffer("delay_count", torch.zeros((), dtype=torch.int64, device=layer.weight.device))
            layer.optional_buffers.add("delay_count")
    if spec.error_delay or spec.eligibility_decay:
        return GradientPhases(layers, spec)
    return None
