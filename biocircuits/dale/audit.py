"""Auditing Dale's law: sign violations, E/I counts, sign leaks, and each layer's singular-value spectrum."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import Populations, cell_types, populations
from biocircuits.core.interface import attachments_of
from biocircuits.core.layers import dale_layers, unwrap

from .effective import NormReadings, effective_count, norm_readings
from .graph import UnitGraph
from .residual import identity_blocks, leaking_units
from .slot import DaleAttachment, column_violations


@dataclass
class LayerAudit:
    """One weight layer: E/I counts of its presynaptic units (``excitatory``, ``inhibitory``: the columns of W) and,
    named apart, of the inhibitory interneurons the layer holds itself (``interneurons``: a DANN layer's n_i), the
    weights breaking Dale, and its spectrum.

    ``sv_spread`` = sigma_max / sigma_min of W reshaped to (out, in * kernel); ``svd_entropy`` is the
    normalised SVD entropy H = -sum_i p_i log p_i / log r with p_i = sigma_i / sum_j sigma_j (Li et al. 2023):
    1 for a flat spectrum, lower when a few directions dominate. ``not_guaranteed``: weights onto units that a
    LayerNorm or GroupNorm reads, whose effective sign the audit cannot vouch for (see
    [`AuditReport`][biocircuits.dale.audit.AuditReport]). ``pooled_units``: inhibitory pool units per sample and
    position that divide the layer's input (``population_norm``: one per population; their Jacobian entries against type
    are in the report's leaks)."""

    name: str
    constrained: bool
    excitatory: int = 0
    inhibitory: int = 0
    violations: int = 0
    sv_spread: float = float("nan")
    svd_entropy: float = float("nan")
    input_min: float | None = None
    effective_violations: int = 0
    not_guaranteed: int = 0
    pooled_units: int = 0
    interneurons: int = 0

    @property
    def populations(self) -> Populations:
        """The counts as ``bc.describe`` prints them: ``16E/0I`` (presynaptic) ``+ 3 interneurons`` (the layer's)."""
        return Populations(self.excitatory, self.inhibitory, self.interneurons)


@dataclass
class MixedUnit:
    """A unit (``producer[channel]``) that the layers in ``excitatory_in`` read as E and those in ``inhibitory_in``
    read as I."""

    unit: str
    excitatory_in: list[str]
    inhibitory_in: list[str]


@dataclass
class AuditReport:
    """``violations``: weights whose sign breaks Dale, over all constrained layers; ``effective_violations``: the
    same for the effective weights, with the sign of the per-unit gain of every normalisation that reads a layer's
    units folded in, directly after it or after a concatenation or addition (`effective.unit_flips`: a
    negative BatchNorm gamma flips every synapse onto its unit); ``mixed_units``: units that
    one layer reads as E and another as I ([`MixedUnit`][biocircuits.dale.audit.MixedUnit]); ``layers``: per-layer rows;
    ``leaks``: human-readable sign leaks (negative inputs, identity shortcuts, exempt layers, flipped units, centred
    units).

    What ``effective_violations`` vouches for: BatchNorm in evaluation mode is a per-unit affine map, so its folded
    weights W[o, ...] gamma_o / sqrt(var_o + eps) are exactly the effective ones. LayerNorm and GroupNorm centre
    over units: y = gamma (z - mean(z)) / sigma(z) + beta, whose Jacobian (gamma / sigma)(I - 1 1^T / n - z_hat
    z_hat^T / n) W mixes the units' weights, so with gamma >= 0 an effective weight can still have the wrong sign
    (and which ones depends on the input). The weights onto such units are counted apart, in ``not_guaranteed``
    (per layer and in total), not as violations nor as fine."""

    violations: int
    layers: list[LayerAudit]
    leaks: list[str] = field(default_factory=list)
    effective_violations: int = 0
    mixed_units: list[MixedUnit] = field(default_factory=list)
    not_guaranteed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        head = (
            f"Dale audit: {self.violations} violating weights ({self.effective_violations} effective, norm "
            f"gains folded; {self.not_guaranteed} not guaranteed, centred by a LayerNorm or GroupNorm) in "
            f"{sum(r.constrained for r in self.layers)} constrained layers; "
            f"{len(self.mixed_units)} units with two types"
        )
        rows = [
            f"  {r.name:<28} {str(r.populations):>12}  viol={r.violations:<6} "
            f"spread={r.sv_spread:8.2f}  H={r.svd_entropy:.3f}"
            for r in self.layers
            if r.constrained
        ]
        leaks = [f"  leak: {leak}" for leak in self.leaks]
        leaks += [
            f"  two types: {m.unit} E in {', '.join(m.excitatory_in)}; I in {', '.join(m.inhibitory_in)}"
            for m in self.mixed_units[:20]
        ]
        return "\n".join([head, *rows, *leaks])


@torch.no_grad()
def singular_values(weight: Tensor) -> Tensor | None:
    """Singular values of ``weight`` reshaped to (out, -1), descending; None when it holds NaN or inf."""
    matrix = weight.detach().reshape(weight.shape[0], -1).float().cpu()
    if not bool(torch.isfinite(matrix).all()):
        return None
    return torch.linalg.svdvals(matrix).double()


def spectrum(weight: Tensor) -> tuple[float, float]:
    """(sigma_max / sigma_min, normalised SVD entropy) of ``weight`` reshaped to (out, -1)."""
    return spread_and_entropy(singular_values(weight))


def spread_and_entropy(sv: Tensor | None) -> tuple[float, float]:
    """(sigma_max / sigma_min, normalised SVD entropy) from singular values (NaN, NaN for None)."""
    if sv is None:
        return math.nan, math.nan
    spread = float(sv.max() / sv.min()) if sv.min() > 0 else math.inf
    p = sv / sv.sum()
    p = p[p > 0]
    entropy = float(-(p * p.log()).sum() / math.log(len(sv))) if len(sv) > 1 else 1.0
    return spread, entropy


def _input_minima(module: nn.Module, layers: list, sample: Tensor) -> dict[str, float]:
    """The minimum input of each constrained layer over one eval-mode forward of ``sample``."""
    mins: dict[str, float] = {}
    handles = [
        layer.register_forward_pre_hook(_record_min(mins, name))
        for name, layer in layers
        if cell_types(layer) is not None
    ]
    was_training = module.training
    module.eval()
    try:
        module(sample)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return mins


def _model_leaks(module: nn.Module, rows: list[LayerAudit]) -> list[str]:
    """Leaks outside the weight layers: identity shortcuts carrying I units, exempt layers in a constrained model."""
    leaks = []
    for name, block in identity_blocks(module):
        n = leaking_units(block)
        if n:
            leaks.append(
                f"{name}: identity shortcut carries {n} inhibitory units with weight +1 (set dale.residual: signed)"
            )
    if any(r.constrained for r in rows):
        leaks += [f"{r.name}: exempt from Dale (unconstrained weights)" for r in rows if not r.constrained]
        leaks += attention_leaks(module, {r.name for r in rows})
    return leaks


def attention_leaks(module: nn.Module, rows: set[str]) -> list[str]:
    """Attention in a constrained model: the activity x activity products Dale cannot sign (one line per audited
    in-projection), and every ``nn.MultiheadAttention`` whose packed in-projection is not a Dale layer (not converted:
    excluded from the feedback rule, or a form the conversion refuses); see
    [`biocircuits.dale.graph.attention`][biocircuits.dale.graph.attention]."""
    leaks = []
    for name, m in module.named_modules():
        if not isinstance(m, nn.MultiheadAttention):
            continue
        if name in rows:
            leaks.append(
                f"{name}: attention logits q_h k_h^T / sqrt(d) multiply activity by activity (no synapse): their sign "
                "is not Dale's (an E unit's query can lower a logit); the values are mixed with weights >= 0, so "
                "the value units keep their types"
            )
        else:
            leaks.append(
                f"{name}: packed in-projection (in_proj_weight) is not constrained (the module is not converted)"
            )
    return leaks


@torch.no_grad()
def audit(model: nn.Module, sample: Tensor | None = None, spectra: bool = True) -> AuditReport:
    """Check every weight layer of ``model`` against Dale's law.

    With ``sample`` (a batch of inputs), a forward pass records the minimum input of each constrained layer:
    a negative input flips the sign an E unit delivers, so it is reported as a leak. ``spectra=False`` skips
    the SVDs (NaN in the spectrum columns)."""
    module = unwrap(model)
    layers = dale_layers(module)
    mins = _input_minima(module, layers, sample) if sample is not None else {}
    state = module.__dict__.get("biocircuits")
    units = getattr(state, "dale_units", None)
    readings = norm_readings(module, units) if units is not None else NormReadings()
    rows, leaks = [], []
    for name, layer in layers:
        if cell_types(layer) is None:
            rows.append(LayerAudit(name, False))
        else:
            rows.append(_audit_layer(name, layer, readings, mins.get(name), spectra, leaks))
    total = sum(r.violations for r in rows)
    effective = sum(r.effective_violations for r in rows)
    leaks += _model_leaks(module, rows)
    mixed = mixed_units(module, units) if units is not None else []
    return AuditReport(total, rows, leaks, effective, mixed, sum(r.not_guaranteed for r in rows))


def _audit_layer(
    name: str, layer: nn.Module, readings: NormReadings, input_min: float | None, spectra: bool, leaks: list[str]
) -> LayerAudit:
    """The row of one constrained layer; its sign leaks (negative norm gains, centred units, its attachments' notes,
    a negative input) are appended to ``leaks``."""
    gains, negative_in = readings.flips, readings.negative_in
    held = attachments_of(layer)
    dale = held.dale if held is not None else None
    weight = layer.weight
    if isinstance(dale, DaleAttachment):  # the attachment says what its layer's law is
        bad = dale.count_violations(layer)
        flipped = dale.effective_violations(layer, gains.get(name))
    else:  # a dale_sign without a Dale attachment: the column-sign law
        bad = column_violations(layer)
        flipped = effective_count(layer, gains.get(name))
    if name in negative_in:
        leaks.append(
            f"{name}: {int((gains[name] < 0).sum())} units have a negative gain in "
            f"{', '.join(negative_in[name])}, which flips the sign of every synapse onto them"
        )
    counts = populations(layer)
    spread, entropy = spectrum(weight) if spectra else (math.nan, math.nan)
    centred = readings.centred.get(name)
    unsure = int(centred.sum()) * weight[0].numel() if centred is not None else 0
    if unsure:
        leaks.append(
            f"{name}: {unsure} synapses onto units centred by {', '.join(readings.centred_in[name])} "
            "have no guaranteed effective sign (the centring subtracts the other units' input)"
        )
    dale_held = held.of("dale") if held is not None else []
    pooled = sum(a.pooled_units(layer) for a in dale_held if isinstance(a, DaleAttachment))
    leaks += [line for a in dale_held if isinstance(a, DaleAttachment) for line in a.audit_notes(layer, name)]
    if input_min is not None and input_min < 0:
        leaks.append(
            f"{name}: input goes negative on the sample (min {input_min:.3g}); Dale assumes non-negative rates"
        )
    return LayerAudit(
        name,
        True,
        counts.excitatory,
        counts.inhibitory,
        bad,
        spread,
        entropy,
        input_min,
        flipped,
        unsure,
        pooled,
        counts.interneurons,
    )


def mixed_units(module: nn.Module, units: UnitGraph) -> list[MixedUnit]:
    """Units read as E by one constrained layer and as I by another (their ``dale_sign`` entries disagree)."""
    seen: dict[int, tuple[list[str], list[str]]] = {}
    for name, layer in dale_layers(module):
        sign = cell_types(layer)
        if sign is None or name not in units.inputs or sign.numel() != units.inputs[name].numel():
            continue
        roots = units.root[units.inputs[name]].tolist()
        for root, s in zip(roots, sign.tolist(), strict=True):
            e, i = seen.setdefault(root, ([], []))
            (e if s > 0 else i).append(name)
    return [
        MixedUnit(units.unit_name(root), sorted(set(e)), sorted(set(i)))
        for root, (e, i) in sorted(seen.items())
        if e and i
    ]


def _record_min(mins: dict[str, float], name: str):
    def hook(module: nn.Module, args: tuple) -> None:
        mins[name] = min(mins.get(name, math.inf), float(args[0].min()))

    return hook
