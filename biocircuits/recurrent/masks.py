"""No self-connections under a reparametrised Dale weight: a recurrent model's mask (buffer ``self_mask``, 1 - I)
kept on W_rec when Dale's enforcer writes W = s f(V) (``dale.enforce: abs | softplus``), where the model's own
gradient mask cannot reach (W is no longer the parameter) and softplus cannot make a zero."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils import parametrize


class SelfMask(nn.Module):
    """The last parametrisation of W_rec: W = (1 - I) * (s f(V)), so the diagonal is exactly 0 in every forward
    and receives no gradient (mask: a non-persistent buffer; the state_dict keys are Dale's)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().clone(), persistent=False)

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask.to(weight.dtype)


def keep_self_mask(model: nn.Module) -> bool:
    """Stack [`SelfMask`][biocircuits.recurrent.masks.SelfMask] on the recurrent weight of a model with a
    ``self_mask`` whose ``recurrent.weight`` is parametrised (a Dale reparametrisation; removing it folds the mask into
    the plain weight); True when it did."""
    mask, layer = getattr(model, "self_mask", None), getattr(model, "recurrent", None)
    if mask is None or layer is None or not parametrize.is_parametrized(layer, "weight"):
        return False
    parametrize.register_parametrization(layer, "weight", SelfMask(mask), unsafe=True)
    return True
