"""The one interface for everything attached to a layer: feedback rules, Dale enforcers, error-pathway
transforms and plasticity rules are each a registered subclass of
[`LayerAttachment`][biocircuits.core.interface.LayerAttachment].

An attachment declares its options (a pydantic model), registers its state as buffers on the layer
([`LayerAttachment.register_buffer`][biocircuits.core.interface.LayerAttachment.register_buffer]: saved and loaded with
the model at ``<layer>.<buffer>``, optional when a plain torch checkpoint lacks them, left out of DDP's broadcast
because every rank builds them identically), and acts at hooks around the optimiser step that
[`biocircuits.bind`][biocircuits.core.binding.bind] installs:

    before_step   (gradients ready: delay queues, eligibility traces, sign-of-gradient updates)
    after_step    (weights updated: plasticity reshapes the update, Dale enforcers restore signs,
                   feedback rules refresh B)

The attachments of one layer live in one [`Attachments`][biocircuits.core.interface.Attachments] object,
``layer.attachments`` (like ``torch.nn.utils.parametrize`` keeps its state under ``module.parametrizations``). All
attachments of one class (or one fused group) run their hook over every layer at once:
[`LayerAttachment.after_step_group`][biocircuits.core.interface.LayerAttachment.after_step_group] gets the whole list,
so an enforcer can use ``torch._foreach_*`` ops instead of a Python loop of small ops.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from biocircuits.errors import ConfigError

# an attachment's options and their validation live in options.py (both names stay importable from here)
from .options import NoOptions, validate_options
from .seeds import layer_seed

# where each slot's hooks run among the others: gradients are reshaped in time (transforms) before the update
# is reshaped (plasticity), signs are restored (dale) after that, and B is rebuilt (rule) from the final weights
SLOT_ORDER = {"transform": 0, "plasticity": 1, "dale": 2, "rule": 3}
SINGLE_SLOTS = ("rule", "dale")  # at most one attachment per layer in these slots (but those that ``shares_slot``)


@dataclass
class StepState:
    """What the hooks of one optimiser step share: the optimiser's parameters (by id) and param groups, and, for the
    layers whose attachments ask for it (``needs_snapshot``), the trainable weight as it was before the step."""

    params: set[int] = field(default_factory=set)
    before: dict[int, Tensor] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def weight_before(self, layer: nn.Module) -> Tensor:
        return self.before[id(layer)]

    def group_of(self, param: Tensor) -> dict[str, Any]:
        """The optimiser's param group holding ``param`` (its current lr, weight_decay...); {} if none does."""
        return next((g for g in self.groups if any(p is param for p in g["params"])), {})


class LayerAttachment:
    """Base class of everything attached to a layer. Subclasses set ``slot``, ``name`` and ``Options``, and
    override the hooks they need; a subclass is registered in its slot's
    [`Registry`][biocircuits.core.registry.Registry].

    ``seed`` and the layer's qualified name give ``self.layer_seed``, the seed of every draw it makes."""

    slot: ClassVar[str]
    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    order: ClassVar[int] = 0  # position among the hooks of its slot (lower first)
    needs_snapshot: ClassVar[bool] = False  # after_step reads the trainable weight from before the step
    whole_model: ClassVar[bool] = False  # acts on the model as a whole (else only where the optimiser owns W)
    shares_slot: ClassVar[bool] = False  # sits beside its single slot's one attachment (a Dale input normalisation)
    # what the class is, for the cross-checks of other attachments (`check_partner`), never tested by name:
    exact_gradient: ClassVar[bool] = False  # a feedback rule whose B^T delta is backprop's own gradient
    learns_feedback: ClassVar[bool] = False  # a feedback rule whose B learns from W's updates or responses
    fixed_column_signs: ClassVar[bool] = False  # every weight keeps its presynaptic unit's sign: sign(W) is constant
    #                                             down each column (column-sign Dale)
    reparametrises: ClassVar[bool] = False  # W = s f(V): the optimiser trains a latent V, never W itself

    def __init__(self, options: BaseModel | dict[str, Any] | None = None, seed: int = 0) -> None:
        self.options = validate_options(type(self), options)
        self.seed = int(seed)
        self.buffer_names: list[str] = []
        self.layer_seed = layer_seed(self.seed, "")

    # --- lifetime --------------------------------------------------------------------------------------------
    def attach(self, layer: nn.Module, qualname: str) -> None:
        """Called once when the attachment is added to ``layer``: register buffers, reshape the layer."""
        self.layer_seed = layer_seed(self.seed, qualname)

    def detach(self, layer: nn.Module) -> None:
        """Undo [`attach`][biocircuits.core.interface.attach] (used by
        [`biocircuits.remove`][biocircuits.apply.remove]): by default, drop the registered buffers."""
        for name in self.buffer_names:
            owner, _, leaf = name.rpartition(".")
            module = layer.get_submodule(owner) if owner else layer
            module._buffers.pop(leaf, None)
        self.buffer_names = []

    def register_buffer(self, layer: nn.Module, name: str, tensor: Tensor, persistent: bool = True) -> Tensor:
        """Register ``tensor`` as buffer ``name`` of ``layer`` and record it as this attachment's state."""
        layer.register_buffer(name, tensor, persistent=persistent)
        if name not in self.buffer_names:
            self.buffer_names.append(name)
        return getattr(layer, name)

    # --- hooks (per layer); the *_group classmethods run them over every layer of one fused group ------------------
    def before_step(self, layer: nn.Module, step: StepState) -> None:
        """After backward, before the optimiser step (gradients are final, all-reduced under DDP)."""

    def after_step(self, layer: nn.Module, step: StepState) -> None:
        """After the optimiser step."""

    def report(self, layer: nn.Module) -> dict[str, float]:
        """Figures the runner logs as ``kind: attachment`` rows at every log interval (e.g. a mirror phase's
        iterations and the angle between W and B); none by default."""
        return {}

    @classmethod
    def fused_group(cls) -> type[LayerAttachment]:
        """The class whose ``*_group`` hooks run this attachment (itself; a base class to fuse across kinds)."""
        return cls

    @classmethod
    def before_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        for layer, att in members:
            att.before_step(layer, step)

    @classmethod
    def after_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        for layer, att in members:
            att.after_step(layer, step)

    @classmethod
    def attach_group(cls, members: Sequence[tuple[str, nn.Module, LayerAttachment]], model: nn.Module) -> None:
        """Called once by ``bc.apply`` after every attachment is in place, with (name, layer, attachment) of every
        attachment of this class in module order and the whole model: for set-up that links layers (e.g. direct
        feedback)."""

    @classmethod
    def acts(cls, hook: str) -> bool:
        """Whether ``hook`` ("before_step" or "after_step") does anything for this class."""
        base = LayerAttachment
        return (
            getattr(cls, hook) is not getattr(base, hook)
            or getattr(cls, f"{hook}_group").__func__ is not getattr(base, f"{hook}_group").__func__
        )

    # --- what other attachments ask of the one that owns a layer's weight signs (the Dale slot) ------------------
    def growth_sign(self, layer: nn.Module, before: Tensor) -> Tensor | float:
        """The direction in which the trainable tensor grows |W| (LTP/LTD rules), given its value ``before`` the
        step: sign(W_before) unless the attachment reparametrises W (then the latent's own direction)."""
        return torch.sign(before)

    def synapse_tensors(self, layer: nn.Module) -> list[tuple[str, str, str]] | None:
        """(parameter path, presynaptic type, postsynaptic type) of each tensor of a layer that keeps its synapse
        classes in separate tensors (DANN's W_EE, W_IE, W_EI); None when W holds them all (the default)."""
        return None

    @classmethod
    def check_partner(cls, own: Choice, partner: Choice) -> None:
        """Raise a ConfigError (naming ``own.key`` or ``partner.key`` and why) when this class, chosen with
        ``own.options``, cannot act on a layer beside ``partner``; called by the spec for every pair it makes
        ([`check_pair`][biocircuits.core.interface.check_pair]). Nothing is refused by default."""

    # --- description --------------------------------------------------------------------------------------------
    def options_dict(self) -> dict[str, Any]:
        return self.options.model_dump()

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options_dict().items())
        return f"{self.name}({opts})" if opts else self.name


@dataclass(frozen=True)
class Choice:
    """An attachment class that a spec chose, with its validated options, the key path that named it and the prefix
    of its options' key paths (for the errors of
    [`LayerAttachment.check_partner`][biocircuits.core.interface.LayerAttachment.check_partner])."""

    cls: type[LayerAttachment]
    options: BaseModel
    key: str
    options_key: str = ""


def check_pair(a: Choice, b: Choice) -> None:
    """Ask both classes whether they can act on one layer together (each may refuse the other)."""
    a.cls.check_partner(a, b)
    b.cls.check_partner(b, a)


class Attachments:
    """The attachments of one layer (``layer.attachments``), by slot, in the order they were added; and what
    [`biocircuits.remove`][biocircuits.apply.remove] needs to undo them (the layer's class before conversion)."""

    def __init__(self, qualname: str, plain_class: type[nn.Module]) -> None:
        self.qualname = qualname
        self.plain_class = plain_class
        self.slots: dict[str, list[LayerAttachment]] = {}
        # delta -> delta', run on the error arriving at a feedback layer's output (set by error transforms)
        self.error_pathway: Callable[[Tensor], Tensor] | None = None
        self.suspended = False  # error pathway off (probes measure the clean pathway)
        # per-stream state (biocircuits.phases.transforms.streams): the clock says which stream rows a forward covers;
        # presynaptic(layer, x, rows) -> the tensor grad_W pairs with delta (a trace of x), or None for x;
        # activity(layer, y, rows) -> the layer's output with the feedback signal of the last step added
        self.clock: Any = None
        self.presynaptic: Callable[[nn.Module, Tensor, slice], Tensor] | None = None
        self.activity: Callable[[nn.Module, Tensor, slice], Tensor] | None = None

    def of(self, slot: str) -> list[LayerAttachment]:
        return self.slots.get(slot, [])

    def first(self, slot: str) -> LayerAttachment | None:
        items = self.slots.get(slot)
        return items[0] if items else None

    def primary(self, slot: str) -> LayerAttachment | None:
        """The slot's one attachment that does not share it (the rule; the Dale enforcer or architecture)."""
        return next((a for a in self.slots.get(slot, ()) if not a.shares_slot), None)

    @property
    def rule(self) -> LayerAttachment | None:
        return self.primary("rule")

    @property
    def dale(self) -> LayerAttachment | None:
        return self.primary("dale")

    def __iter__(self) -> Iterator[LayerAttachment]:
        for slot in sorted(self.slots, key=lambda s: SLOT_ORDER.get(s, 99)):
            yield from self.slots[slot]

    def buffer_names(self) -> list[str]:
        return [name for att in self for name in att.buffer_names]

    def __repr__(self) -> str:
        return "Attachments(" + ", ".join(f"{s}={v!r}" for s, v in self.slots.items()) + ")"


def attachments_of(module: nn.Module) -> Attachments | None:
    """``module.attachments`` when something is attached to it, else None."""
    found = module.__dict__.get("attachments")
    return found if isinstance(found, Attachments) else None


def attach(module: nn.Module, attachment: LayerAttachment, qualname: str = "") -> LayerAttachment:
    """Add ``attachment`` to ``module`` (creating ``module.attachments``) and call its
    [`attach`][biocircuits.core.interface.LayerAttachment.attach]. A second attachment in a single slot (``rule``,
    ``dale``) is an error."""
    held = attachments_of(module)
    if held is None:
        held = Attachments(qualname, type(module))
        module.__dict__["attachments"] = held
    slot = attachment.slot
    if slot in SINGLE_SLOTS and not attachment.shares_slot and held.primary(slot) is not None:
        raise ConfigError(
            f"{qualname or type(module).__name__} already has a {slot}",
            given=attachment.name,
            suggestion=f"one {slot} per layer",
        )
    attachment.attach(module, qualname)
    held.slots.setdefault(slot, []).append(attachment)
    return attachment


def attached_modules(model: nn.Module) -> list[tuple[str, nn.Module, Attachments]]:
    """(qualified name, module, attachments) of every module of ``model`` with something attached."""
    return [(n, m, a) for n, m in model.named_modules() if (a := attachments_of(m)) is not None]


def constraint_buffer_names(model: nn.Module) -> list[str]:
    """Qualified names of every buffer that attachments registered (feedback weights, counters, Dale signs,
    delay queues and traces fed by all-reduced gradients): identical on every DDP rank by construction."""
    return [
        f"{prefix}.{b}" if prefix else b for prefix, _, held in attached_modules(model) for b in held.buffer_names()
    ]


@torch.no_grad()
def detach_all(module: nn.Module) -> None:
    """Detach every attachment of ``module`` (last added first) and drop ``module.attachments``."""
    held = attachments_of(module)
    if held is None:
        return
    for att in reversed(list(held)):
        att.detach(module)
    del module.__dict__["attachments"]


@contextlib.contextmanager
def error_pathways_suspended(model: nn.Module) -> Iterator[None]:
    """Inside this block no layer of ``model`` transforms the errors it receives (noise, quantisation...)."""
    held = [a for _, _, a in attached_modules(model)]
    before = [a.suspended for a in held]
    for a in held:
        a.suspended = True
    try:
        yield
    finally:
        for a, b in zip(held, before, strict=True):
            a.suspended = b


def attach_groups(model: nn.Module) -> None:
    """Run [`LayerAttachment.attach_group`][biocircuits.core.interface.LayerAttachment.attach_group] once per attachment
    class of ``model``."""
    groups: dict[type[LayerAttachment], list[tuple[str, nn.Module, LayerAttachment]]] = {}
    for name, module, held in attached_modules(model):
        for att in held:
            groups.setdefault(type(att), []).append((name, module, att))
    for cls, members in groups.items():
        cls.attach_group(members, model)


def attachment_reports(model: nn.Module) -> list[tuple[str, str, dict[str, float]]]:
    """(layer name, attachment name, figures) of every attachment of ``model`` that reports something."""
    return [
        (name, att.name, figures)
        for name, module, held in attached_modules(model)
        for att in held
        if type(att).report is not LayerAttachment.report and (figures := att.report(module))
    ]
