"""Streams: the training batch as B parallel streams of stimuli, one optimiser step as one time bin.

Item b of every training batch is the next stimulus of stream b (training batches keep a fixed size: the loaders
drop the last incomplete batch). State that belongs to a stream -- an eligibility trace of presynaptic activity,
a low-pass filtered error, the feedback signal left in a layer's units, the late output errors -- is a buffer whose
first dimension is the stream: row b belongs to stream b.

The clock ([`StreamClock`][biocircuits.phases.transforms.streams.StreamClock], attached to the model's root module by
``bc.apply`` when a ``phases`` setting needs it) tells the layers which rows the current forward pass covers. A
*training forward* (root module in training mode, gradients enabled, error pathways not suspended) of a micro-batch of m
items covers the next m rows of the step; the optimiser step (through ``bc.bind``) starts the next time bin at row 0.
Any other forward pass (evaluation, probes, ``torch.no_grad``) covers no rows: stream state is neither read nor
advanced, and the layers compute exactly what they compute without these settings.

The number of streams S is the number of rows one optimiser step covers on this process (per-process batch x
``grad_accum``). It is fixed by the first step (buffers grow during it) and saved (``stream_count``, the number
over all processes); a later micro-batch that does not fit is an error. Micro-batches left over at an epoch's end
(fewer than ``grad_accum``) carry into the next step; their rows wrap around (row index modulo S).

Under DDP rank r of W holds the global streams g = r + W j (j its local row), because the sampler gives rank r
every W-th item of the permutation. [`gather_rows`][biocircuits.phases.transforms.streams.gather_rows] and
[`scatter_rows`][biocircuits.phases.transforms.streams.scatter_rows] convert between the two, so a checkpoint holds the
global streams and resumes on any number of processes. Errors dL/dy of a loss averaged over the process's batch carry 1
/ (per-process batch); the checkpoint stores them in one-process units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from biocircuits.core.interface import LayerAttachment, StepState, attached_modules, attachments_of
from biocircuits.errors import ConfigError

from .base import TRANSFORMS, ErrorTransform


class StreamState(ErrorTransform):
    """Base of the transforms that keep per-stream state: ``stream_buffers`` names their buffers whose first
    dimension is the stream (grown during the first step, resized on load, gathered across DDP ranks)."""

    stream_buffers: ClassVar[tuple[str, ...]] = ()
    # those of them that hold errors dL/dy: with a mean loss over the process's batch they carry 1 / batch, so
    # checkpoints store them in one-process units (x 1 / processes) and a resume scales them back
    error_buffers: ClassVar[tuple[str, ...]] = ()
    spec_key = False
    clock: StreamClock | None = None

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        for name in self.stream_buffers:
            self.register_buffer(layer, name, torch.zeros(0, device=_device(layer)))
        if not getattr(layer, "_stream_load_hook", False):
            layer._register_load_state_dict_pre_hook(_resize_for_load, with_module=True)
            layer.__dict__["_stream_load_hook"] = True

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        clock = find_clock(model)
        for _, layer, att in members:
            att.clock = attachments_of(layer).clock = clock


def _device(module: nn.Module) -> torch.device:
    tensor = next(iter(module.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def state_rows(layer: nn.Module, name: str, rows: slice, like: Tensor) -> Tensor:
    """Rows ``rows`` of ``layer``'s stream buffer ``name`` (a view; shape (rows, *like.shape[1:])). The buffer
    grows with zeros to cover them (it is fixed after the first step:
    [`StreamClock`][biocircuits.phases.transforms.streams.StreamClock] refuses larger rows)."""
    buf = layer._buffers[name]
    tail = tuple(like.shape[1:])
    allocated = buf.dim() > 1 or buf.numel() > 0  # attach registers an empty 1-d placeholder
    if allocated and tuple(buf.shape[1:]) != tail:
        qualname = layer.attachments.qualname or type(layer).__name__
        raise ConfigError(
            f"{qualname}.{name} holds per-stream state of shape {tuple(buf.shape[1:])} and now sees {tail}",
            suggestion="stream settings need the same input shape at every step",
        )
    if not allocated or buf.shape[0] < rows.stop:
        dtype = torch.promote_types(like.dtype, torch.float32)
        grown = torch.zeros((rows.stop, *tail), dtype=dtype, device=like.device)
        if allocated:
            grown[: buf.shape[0]] = buf
        layer._buffers[name] = buf = grown
    return buf[rows]


def _resize_for_load(module: nn.Module, state_dict, prefix, *args) -> None:
    """Before loading: give every stream buffer of ``module`` the shape it has in ``state_dict``."""
    held = attachments_of(module)
    if held is None:
        return
    for att in held:
        for name in getattr(att, "stream_buffers", ()):
            saved = state_dict.get(prefix + name)
            if saved is not None and module._buffers[name].shape != saved.shape:
                module._buffers[name] = torch.zeros_like(saved, device=module._buffers[name].device)


@TRANSFORMS.register
class StreamClock(LayerAttachment):
    """Attached to the root module: which stream rows the forward pass in progress covers (see the module
    docstring). Hooks: a forward pre-hook opens rows, a forward hook closes them (after passing the model's
    output through the ``output_hooks``, e.g. the late-error queue), and ``before_step`` starts the next time bin.

    An output hook ([`add_output_hook`][biocircuits.phases.transforms.streams.StreamClock.add_output_hook]) acts on the
    error dL/dy at the model's output *before* any layer's error pathway: it returns a view of the output
    ([`output_view`][biocircuits.phases.transforms.streams.output_view]) whose gradient hook runs first in the backward
    pass, so the last converted layer's transforms see what it returns, whatever module made the output (a model ending
    in that layer and the same model followed by a no-op module agree exactly)."""

    slot = "transform"
    name = "stream_clock"
    whole_model = True
    order = -100
    spec_key = False

    def attach(self, model: nn.Module, qualname: str) -> None:
        super().attach(model, qualname)
        self.register_buffer(model, "stream_count", torch.zeros((), dtype=torch.int64, device=_device(model)))
        self.cursor, self.rows, self.world, self.root = 0, None, 1, model
        self._streams: int | None = None
        self.output_hooks: list[tuple[int, Callable[[Tensor, slice], Tensor]]] = []
        self.handles = [model.register_forward_pre_hook(self._open), model.register_forward_hook(self._close)]

    def detach(self, model: nn.Module) -> None:
        for h in self.handles:
            h.remove()
        super().detach(model)

    @property
    def streams(self) -> int | None:
        """S, the streams of this process (None before the first step)."""
        if self._streams is None:  # read the buffer until S is fixed (then never again: no device sync per forward)
            total = int(self.root.stream_count)
            self._streams = total // self.world if total else None
        return self._streams

    def _open(self, module: nn.Module, args: tuple) -> None:
        held = attachments_of(module)
        if not (module.training and torch.is_grad_enabled() and not held.suspended):
            self.rows = None
            return
        batch = next((a for a in args if isinstance(a, Tensor)), None)
        if batch is None:
            raise TypeError(
                "phases settings with per-stream state need the model to be called with the batch "
                "tensor as a positional argument (batch in dimension 0)"
            )
        n = int(batch.shape[0])
        streams = self.streams
        start = self.cursor if streams is None else self.cursor % streams
        if streams is not None and start + n > streams:
            raise ConfigError(
                f"a training micro-batch of {n} items does not fit the {streams} streams fixed by the "
                f"first step (rows {start}..{start + n - 1})",
                given=n,
                suggestion="keep the batch size fixed (drop the last incomplete batch)",
            )
        self.rows = slice(start, start + n)

    def add_output_hook(self, hook: Callable[[Tensor, slice], Tensor], rank: int) -> None:
        """``hook(output, rows)`` returns the output the model returns (a view of it:
        [`output_view`][biocircuits.phases.transforms.streams.output_view]); in the backward pass the hooks act on the
        output error in increasing ``rank``, all before the layers' own."""
        self.output_hooks.append((rank, hook))
        self.output_hooks.sort(key=lambda item: item[0])

    def _close(self, module: nn.Module, args: tuple, out):
        if self.rows is None:
            return None
        returned = out
        for _, hook in reversed(self.output_hooks):  # the last view made is the first the backward reaches
            returned = hook(returned, self.rows)
        self.cursor += self.rows.stop - self.rows.start
        self.rows = None
        return None if returned is out else returned

    @torch.no_grad()
    def before_step(self, model: nn.Module, step: StepState) -> None:
        """The time bin ends: the first step fixes S; the next forward starts at row 0."""
        if int(model.stream_count) == 0 and self.cursor:
            model.stream_count.fill_(self.cursor * self.world)
            self._streams = None
        self.cursor = 0


def output_view(out, rows: slice, on_error: Callable[[Tensor, slice], Tensor], what: str) -> Tensor:
    """A view of the model's output ``out`` (same values) whose gradient goes through ``on_error(grad, rows)``
    before it reaches ``out``: the returned error is what every layer's backward -- the last layer's error
    pathway included -- then receives. ``out`` must be one tensor (``what`` names the setting that needs it)."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{what} needs a model that returns one tensor (got {type(out).__name__})")
    if not out.requires_grad:
        return out
    view = out.view_as(out)
    view.register_hook(lambda grad: on_error(grad, rows))
    return view


def find_clock(model: nn.Module) -> StreamClock | None:
    """The stream clock attached to ``model``'s root module, if any."""
    held = attachments_of(model)
    return next((a for a in held.of("transform") if isinstance(a, StreamClock)), None) if held else None


def set_shard(model: nn.Module, world: int) -> None:
    """Tell the clock how many processes share the streams (the trainer calls this under DDP)."""
    clock = find_clock(model)
    if clock is not None:
        clock.world, clock._streams = world, None


def stream_buffer_names(model: nn.Module, errors: bool = False) -> list[str]:
    """Qualified names of every per-stream buffer of ``model`` (first dimension = stream); with ``errors``, only
    those that hold errors (``error_buffers``)."""
    kind = "error_buffers" if errors else "stream_buffers"
    return [
        f"{prefix}.{b}" if prefix else b
        for prefix, _, held in attached_modules(model)
        for att in held
        for b in getattr(att, kind, ())
    ]


def gather_rows(local: Sequence[Tensor]) -> Tensor:
    """The global rows from each rank's local rows (``local[r]`` of rank r, equal shapes): row r + W j of the
    result is row j of rank r."""
    stacked = torch.stack(list(local))  # (W, S_local, ...)
    return stacked.transpose(0, 1).reshape(-1, *stacked.shape[2:])


def scatter_rows(rows: Tensor, rank: int, world: int) -> Tensor:
    """Rank ``rank``'s local rows of the global ``rows`` (rows rank, rank + W, ...)."""
    return rows[rank::world].clone()
