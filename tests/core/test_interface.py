"""The layer-attachment interface: a new enforcer, error transform and plasticity rule are each one registered
class, usable from a YAML spec with no other edit, and checked here against a hand computation."""

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

import biocircuits as bc
from biocircuits.core.celltypes import sign_mask
from biocircuits.core.interface import attachments_of, constraint_buffer_names


class MirrorEnforcer(bc.DaleEnforcer):
    """Toy enforcer: after each step W <- s |W| (a wrong-signed weight flips instead of vanishing)."""

    name = "mirror_test"

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step):
        for layer, _ in members:
            layer.weight.copy_(sign_mask(layer) * layer.weight.abs())


class GainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gain: float = 0.0


class ErrorGain(bc.ErrorTransform):
    """Toy transform: delta <- gain * delta."""

    name = "error_gain_test"
    Options = GainOptions
    shorthand = "gain"

    def on_error(self, layer, delta, generator, rows):
        return delta * self.options.gain


class FactorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: float = 1.0


class ScaleUpdate(bc.PlasticityRule):
    """Toy plasticity rule: dW <- factor * dW (no static factor: the general, per-layer path)."""

    name = "scale_test"
    Options = FactorOptions

    def reshape(self, delta, grows):
        return delta * self.options.factor


@pytest.fixture
def toys():
    bc.ENFORCERS.register(MirrorEnforcer)
    bc.TRANSFORMS.register(ErrorGain)
    bc.PLASTICITY.register(ScaleUpdate)
    yield
    for registry, name in (
        (bc.ENFORCERS, "mirror_test"),
        (bc.TRANSFORMS, "error_gain_test"),
        (bc.PLASTICITY, "scale_test"),
    ):
        registry.unregister(name)


SPEC = """\
feedback: {rule: fa}
dale: {enforce: mirror_test, excitatory_fraction: 0.5, exempt: [], init: keep}
phases: {error_gain_test: 3.0}
plasticity:
  rules:
    - {rule: scale_test, factor: 2.0, match: {layers: "*"}}
"""


def test_new_enforcer_transform_and_plasticity_rule_from_yaml(toys, tmp_path):
    path = tmp_path / "toys.yaml"
    path.write_text(SPEC)
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(4, 3)), str(path))
    layer = model[0]
    held = attachments_of(layer)
    assert [type(a) for a in held] == [ErrorGain, ScaleUpdate, MirrorEnforcer, type(layer.rule)]
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.5), model)
    W0, B = layer.weight.detach().clone(), layer.feedback_weight.clone()
    s = layer.dale_sign.view(1, -1)
    x, c = torch.randn(5, 4, requires_grad=True), torch.randn(5, 3)
    (model(x) * c).sum().backward()
    # by hand: delta = c; the transform makes it 3c; the layer's backward sends it through B
    assert torch.allclose(x.grad, 3.0 * c @ B, atol=1e-6)
    assert torch.allclose(layer.weight.grad, 3.0 * c.t() @ x.detach(), atol=1e-6)
    opt.step()
    # SGD: W0 - 0.5 grad; plasticity doubles the update; the enforcer mirrors wrong signs
    expected = s * (W0 - 2.0 * 0.5 * 3.0 * c.t() @ x.detach()).abs()
    assert torch.allclose(layer.weight.detach(), expected, atol=1e-6)
    assert (layer.weight * s >= 0).all()


def test_unknown_and_misspelt_names_name_the_registries(toys):
    with pytest.raises(bc.ConfigError, match=r"phases.error_gain_tset: unknown key.*did you mean 'error_gain_test'"):
        bc.Constraints.from_dict({"phases": {"error_gain_tset": 1.0}})
    with pytest.raises(bc.ConfigError, match=r"plasticity.rules\[0\].rule: unknown plasticity rule.*scale_test"):
        bc.Constraints.from_dict({"plasticity": {"rules": [{"rule": "scale_tset"}]}})
    with pytest.raises(bc.ConfigError, match=r"plasticity.rules\[0\].factr: .*does not take option 'factr'"):
        bc.Constraints.from_dict({"plasticity": {"rules": [{"rule": "scale_test", "factr": 2}]}})
    with pytest.raises(bc.ConfigError, match=r"phases.error_gain_test.gain: .*valid number"):
        bc.Constraints.from_dict({"phases": {"error_gain_test": {"gain": "lots"}}})


def test_buffers_are_declared_by_attachments():
    model = bc.apply(
        nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)),
        {"feedback": {"rule": "fa"}, "dale": {}, "phases": {"error_noise": 0.1, "error_delay": 1}},
    )
    names = set(constraint_buffer_names(model))
    assert names == {
        "0.feedback_weight",
        "0.phase_step",
        "0.delay_queue_weight",
        "0.delay_queue_bias",
        "0.delay_count",
        "2.feedback_weight",
        "2.dale_sign",
        "2.phase_step",
        "2.delay_queue_weight",
        "2.delay_queue_bias",
        "2.delay_count",
    }
    assert names <= set(model.state_dict())
