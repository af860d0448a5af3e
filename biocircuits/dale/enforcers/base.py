"""The Dale-enforcer base class and registry: how a layer's weights keep their presynaptic unit's sign."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.core.celltypes import sign_mask

from ..init import INITS, initialise
from ..slot import ENFORCERS, DaleAttachment


def _init_name(name: str) -> str:
    INITS.get(name)  # a ConfigError listing the initialisations otherwise
    return name


class EnforcerOptions(BaseModel):
    """``init`` (``dale.init``): how the weights get their unit's sign when the enforcer attaches (``balanced``:
    I weights rescaled so each unit's E and I weights cancel; ``keep``: magnitudes kept)."""

    model_config = ConfigDict(extra="forbid")
    init: Annotated[str, AfterValidator(_init_name)] = Field(
        "balanced",
        description="How the weights get their unit's sign when the enforcer attaches (`dale.init`): `balanced` "
        "rescales the I weights so each unit's E and I weights cancel; `keep` keeps the magnitudes.",
    )


class DaleEnforcer(DaleAttachment):
    """Attached to a Dale-constrained layer: registers the buffer ``dale_sign`` (s, the ``sign`` it was given: +1 E
    / -1 I per presynaptic unit, input feature or channel), gives the weights their unit's sign (option ``init``),
    and keeps ``W * s >= 0`` (s broadcast over the input dimension, [`sign_mask`][biocircuits.core.celltypes.sign_mask])
    after every optimiser step, each subclass its own way. Chosen by ``dale.enforce``; a subclass is registered
    with ``@ENFORCERS.register`` (which registers it in ``DALE`` too)."""

    spec_key = "enforce"
    Options = EnforcerOptions
    typed_inputs = True
    fixed_column_signs = True

    def __init__(self, options: Any = None, seed: int = 0, sign: Tensor | None = None) -> None:
        super().__init__(options, seed, sign)
        if sign is None:
            raise ValueError(f"the {self.name} enforcer needs the layer's presynaptic signs (sign=...)")
        self.init = self.options.init
        self._mask_key: tuple | None = None  # the cached sign mask and the (buffer, device, dtype) it was built for
        self._mask: Tensor | None = None
        self._runs_key: tuple | None = None  # the cached sign runs (block assignment) and the buffer they came from
        self._runs: list[tuple[int, int, float]] | None = None

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        weight = layer.weight
        self.register_buffer(layer, "dale_sign", self.sign.to(weight.device, weight.dtype))
        initialise(layer, self.init)

    @classmethod
    def spec_options(cls, spec: Any) -> dict[str, Any]:
        return {"init": spec.init}

    def growth_sign(self, layer: nn.Module, before: Tensor) -> Tensor | float:
        """The direction in which the trainable tensor grows |W| (for LTP/LTD rules): the Dale sign here."""
        return sign_mask(layer)

    @staticmethod
    def cached_runs(member) -> list[tuple[int, int, float]] | None:
        """[`sign_runs`][biocircuits.dale.enforcers.base.sign_runs] of the member's layer, kept on the attachment until
        ``dale_sign`` changes."""
        layer, att = member
        key = (layer.dale_sign.data_ptr(), layer.dale_sign._version)
        if att._runs_key != key:
            att._runs, att._runs_key = sign_runs(layer), key
        return att._runs

    @staticmethod
    def cached_masks(members, like: list[Tensor]) -> list[Tensor]:
        """Each member layer's sign mask (broadcastable to its weight) in the dtype and on the device of the
        matching tensor of ``like``; built once per (layer, device, dtype) and kept on the attachment."""
        out = []
        for (layer, att), t in zip(members, like, strict=True):
            key = (layer.dale_sign.data_ptr(), layer.dale_sign._version, t.device, t.dtype)
            if att._mask_key != key:
                att._mask, att._mask_key = sign_mask(layer).to(t), key
            out.append(att._mask)
        return out


def sign_runs(layer: nn.Module, limit: int = 8) -> list[tuple[int, int, float]] | None:
    """The Dale signs of ``layer`` as at most ``limit`` runs (start, stop, sign) of equal sign along the input
    dimension (dim 1 of the weight), when every output unit sees the same signs (no conv groups): with the
    ``block`` assignment there are two, so enforcement can act on two strided views with scalar bounds (one
    pass over W) instead of multiplying by a mask. None otherwise (``random`` assignment, groups)."""
    if getattr(layer, "groups", 1) != 1:
        return None
    signs = layer.dale_sign.tolist()
    runs: list[tuple[int, int, float]] = []
    for i, s in enumerate(signs):
        if runs and runs[-1][2] == s:
            runs[-1] = (runs[-1][0], i + 1, s)
        else:
            runs.append((i, i + 1, s))
    return runs if len(runs) <= limit else None


__all__ = ["ENFORCERS", "DaleEnforcer", "EnforcerOptions", "sign_runs", "signed_weights"]


@torch.no_grad()
def signed_weights(members) -> list[Tensor]:
    """The ``weight`` tensors of the member layers (the optimiser's own tensors for unparametrised layers)."""
    return [layer.weight for layer, _ in members]
