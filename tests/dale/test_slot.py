"""The Dale slot as one interface: a new Dale architecture is one registered class, driven from YAML with no other
edit (checked against a hand computation); the audit, plasticity and the spec's cross-checks ask the attachment;
cross-check errors name the key and say why."""

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

import biocircuits as bc
from biocircuits.core.interface import Choice, attachments_of
from biocircuits.dale import DALE, SPEC_KEYS, DaleAttachment
from biocircuits.feedback.rules import RULES, Backprop


class GainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gain: float = 1.0


class AbsArchitecture(DaleAttachment):
    """Toy architecture: every input excitatory (``dale_sign`` = +1), W <- |W| when attached and W <- gain |W| after
    each optimiser step; refuses backprop (to show a refusal reaching the spec by the class alone)."""

    name = "abs_arch_test"
    spec_key = "architecture"
    Options = GainOptions

    def attach(self, layer, qualname):
        super().attach(layer, qualname)
        self.register_buffer(layer, "dale_sign", torch.ones(layer.weight.shape[1]))
        with torch.no_grad():
            layer.weight.abs_()

    @torch.no_grad()
    def after_step(self, layer, step):
        layer.weight.copy_(self.options.gain * layer.weight.abs())

    @classmethod
    def check_partner(cls, own, partner):
        if partner.cls.exact_gradient:
            raise bc.ConfigError(
                "abs_arch_test wants a feedback rule other than backprop", key=partner.key, given=partner.cls.name
            )


@pytest.fixture
def toy():
    DALE.register(AbsArchitecture)
    yield
    DALE.unregister("abs_arch_test")


SPEC = """\
feedback: {rule: fa}
dale: {architecture: abs_arch_test, abs_arch_test: {gain: 0.5}, exempt: []}
plasticity:
  rules:
    - {rule: update, lr_scale: 2.0, match: {population: E}}
"""


def test_new_dale_architecture_is_one_class_driven_from_yaml(toy, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    assert SPEC_KEYS["architecture"].get("abs_arch_test") is AbsArchitecture
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(4, 3)), str(path))
    layer = model[0]
    assert isinstance(attachments_of(layer).dale, AbsArchitecture) and attachments_of(layer).dale.options.gain == 0.5
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.5), model)
    W0, B = layer.weight.detach().clone(), layer.feedback_weight.clone()
    assert (W0 >= 0).all()
    x, c = torch.randn(5, 4, requires_grad=True), torch.randn(5, 3)
    (model(x) * c).sum().backward()
    assert torch.allclose(x.grad, c @ B, atol=1e-6)
    opt.step()
    # by hand: SGD W0 - 0.5 c^T x; plasticity (all inputs E) doubles the update; the toy takes 0.5 |W|
    expected = 0.5 * (W0 - 2.0 * 0.5 * c.t() @ x.detach()).abs()
    assert torch.allclose(layer.weight.detach(), expected, atol=1e-6)
    report = bc.audit(model, spectra=False)  # the attachment's population counts and violations
    assert (report.violations, report.layers[0].excitatory, report.layers[0].inhibitory) == (0, 4, 0)
    plain = bc.remove(model)
    assert "0.dale_sign" not in plain.state_dict()


def test_toy_architecture_options_and_refusals_name_their_keys(toy):
    with pytest.raises(bc.ConfigError, match=r"dale.abs_arch_test.gian: .*does not take option 'gian'"):
        bc.Constraints.from_dict({"dale": {"architecture": "abs_arch_test", "abs_arch_test": {"gian": 2.0}}})
    with pytest.raises(bc.ConfigError, match=r"dale.architecture: unknown Dale architecture.*abs_arch_test"):
        bc.Constraints.from_dict({"dale": {"architecture": "abs_arch_tset"}})
    with pytest.raises(bc.ConfigError, match=r"dale.abs_arch_tset: unknown key.*did you mean 'abs_arch_test'"):
        bc.Constraints.from_dict({"dale": {"abs_arch_tset": {}}})
    with pytest.raises(
        bc.ConfigError,
        match=r"dale.abs_arch_test: options for 'abs_arch_test', which this section "
        r"does not choose.*set architecture: abs_arch_test",
    ):
        bc.Constraints.from_dict({"dale": {"abs_arch_test": {"gain": 2.0}}})
    with pytest.raises(bc.ConfigError, match=r"feedback.overrides.2: abs_arch_test wants a feedback rule other than"):
        bc.Constraints.from_dict(
            {"feedback": {"rule": "fa", "overrides": {"2": "bp"}}, "dale": {"architecture": "abs_arch_test"}}
        )
    bc.Constraints.from_dict({"feedback": {"rule": "fa"}, "dale": {"architecture": "abs_arch_test"}})


def test_every_dale_class_is_reachable_by_name_with_declared_options():
    for name in (
        "project",
        "abs",
        "softplus",
        "exp_gradient",
        "dann",
        "signed_residual",
        "nonnegative_gamma",
        "population_norm",
    ):
        cls = DALE.get(name)
        assert issubclass(cls, DaleAttachment) and cls.slot == "dale" and issubclass(cls.Options, BaseModel)
    assert bc.ENFORCERS.names() == [n for n in DALE.names() if DALE.get(n).spec_key == "enforce"]
    assert SPEC_KEYS["norm_gamma"].get("nonnegative") is DALE.get("nonnegative_gamma")
    assert SPEC_KEYS["population_norm"].get("divisive") is DALE.get("population_norm")
    assert SPEC_KEYS["residual"].get("signed") is DALE.get("signed_residual")
    assert SPEC_KEYS["architecture"].get("column") is None and SPEC_KEYS["norm_gamma"].get("free") is None
    with pytest.raises(ValueError, match="not a Dale enforcer"):
        bc.ENFORCERS.register(AbsArchitecture)
    with pytest.raises(bc.ConfigError, match=r"init.*unknown Dale initialisation"):
        DALE.get("project")({"init": "balanced_x"}, sign=torch.ones(2))


@pytest.mark.parametrize(
    ("spec", "key", "why"),
    [
        (
            {"feedback": {"rule": "fa", "overrides": {"2": "kolen_pollack"}}, "dale": {"architecture": "dann"}},
            "feedback.overrides.2",
            "dann does not support kolen_pollack: B learns from W's update",
        ),
        (
            {"feedback": {"rule": "weight_mirror"}, "dale": {"architecture": "dann"}},
            "feedback.rule",
            "dann does not support weight_mirror: B learns from W's update",
        ),
        (
            {"dale": {"architecture": "dann", "enforce": "exp_gradient"}},
            "dale.enforce",
            "dann keeps its weights non-negative by projection",
        ),
        (
            {
                "feedback": {
                    "rule": "sign_symmetry",
                    "overrides": {"0": {"rule": "sign_symmetry", "options": {"centre": True}}},
                },
                "dale": {"enforce": "softplus"},
            },
            "feedback.overrides.0.options.centre",
            "centre leaves no feedback under column-sign Dale",
        ),
    ],
)
def test_cross_check_errors_name_the_key_and_say_why(spec, key, why):
    with pytest.raises(bc.ConfigError) as err:
        bc.Constraints.from_dict(spec)
    assert f"{key}: " in str(err.value) and why in str(err.value)


def test_cross_checks_ask_the_classes_not_their_names():
    """A rule registered under another name inherits what its class is: an exact-gradient alias of bp converts a
    model with an unconvertible module, and a learned-feedback rule is refused by DANN whatever it is called."""

    class ExactAlias(Backprop):
        name = "bp_alias_test"

    learned = type("LearnedTest", (RULES.get("fa"),), {"name": "learned_test", "learns_feedback": True})
    RULES.register(ExactAlias)
    RULES.register(learned)
    try:
        model = nn.Sequential(nn.Linear(3, 4), nn.ConvTranspose1d(1, 1, 1))
        bc.apply(model, {"feedback": {"rule": "bp_alias_test"}})
        with pytest.raises(bc.ConfigError, match="no feedback class"):
            bc.apply(nn.Sequential(nn.Linear(3, 4), nn.ConvTranspose1d(1, 1, 1)), {"feedback": {"rule": "fa"}})
        with pytest.raises(bc.ConfigError, match="feedback.rule: .*dann does not support learned_test"):
            bc.Constraints.from_dict({"feedback": {"rule": "learned_test"}, "dale": {"architecture": "dann"}})
        dann, fa = DALE.get("dann"), RULES.get("fa")
        DALE.get("dann").check_partner(
            Choice(dann, dann.Options(), "dale.architecture"), Choice(fa, fa.Options(), "feedback.rule")
        )  # fa: nothing refused
    finally:
        RULES.unregister("bp_alias_test")
        RULES.unregister("learned_test")
