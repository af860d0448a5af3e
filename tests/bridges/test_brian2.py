"""The Brian2 bridge against hand-computed references: held patterns (rate, spiking, Dale), streams (step, sine,
OU), the frequency response, the gated two-layer pathway, and the spike-noise calibration applied in torch."""

import cmath
import math
import sys

import numpy as np
import pytest
import torch

brian2 = pytest.importorskip("brian2")

from brian2 import Hz, ms, second  # noqa: E402

from biocircuits.bridges.brian2 import (  # noqa: E402
    ErrorRecorder,
    RateMode,
    Relays,
    SpikingMode,
    calibrate_spikes,
    check_chain,
    check_pathway,
    frequency_response,
    streams,  # noqa: E402
    track,
)


@pytest.fixture(scope="module")
def pathway():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(10, 40, generator=gen), torch.randn(4, 10, generator=gen)


def test_rate_mode_reproduces_switching_patterns(pathway):
    B, E = pathway
    prefs_before = brian2.prefs.codegen.target
    rep = check_pathway(B, E, "rate")
    assert len(rep.patterns) == 4 and all(p.cosine > 0.999 for p in rep.patterns)
    assert all(p.rel_l2 < 0.01 for p in rep.patterns)
    assert brian2.prefs.codegen.target == prefs_before
    assert np.allclose(rep.analytic, (E.double() @ B.double()).numpy())


def test_rate_sine_matches_the_analytic_low_pass(pathway):
    B, E = pathway
    tau = 10e-3
    for dale in (False, True):
        points = frequency_response(B, E[0], [25, 60] * Hz, RateMode(tau=10 * ms), dale=dale, cycles=3, min_fit=0.05)
        for p in points:
            w = 2 * math.pi * p.frequency
            h = 1 / complex(1, w * tau)  # hand: first-order low-pass
            if dale:  # direct path + relay path (tau_r = 2 ms, held one step: dt / 2 later), halved
                h *= (1 + cmath.exp(-0.5j * w * 1e-4) / complex(1, w * 2e-3)) / 2
            assert abs(p.gain / abs(h) - 1) < 0.02, (dale, p)
            assert abs(p.phase_deg - math.degrees(cmath.phase(h))) < 2, (dale, p)
    assert points[1].phase_deg < points[0].phase_deg < -50  # Dale at 25 Hz lags more than 1 / (1 + i w tau) alone


def test_step_input_is_the_analytic_exponential(pathway):
    B, E = pathway
    stream = streams.step(E.numpy(), onset=5 * ms, duration=60 * ms)
    trace = RateMode(tau=8 * ms).simulate(B.double().numpy(), stream)
    t = trace.times
    hand = np.where(t >= 5e-3, 1 - np.exp(-(t - 5e-3) / 8e-3), 0.0)[:, None] * (E[0].double() @ B.double()).numpy()
    assert np.abs(trace.values - hand).max() < 1e-6 * np.abs(hand).max()
    assert trace.values[int(5e-3 / 1e-4) + 80] == pytest.approx(hand[130], rel=1e-6)  # one tau in: 1 - 1/e


def test_ou_tracking_follows_the_low_pass_and_lags(pathway):
    B, E = pathway
    stream = streams.ou(E.numpy(), tau_corr=20 * ms, duration=0.4 * second, seed=1)
    assert stream.values.std(axis=0) == pytest.approx(E.numpy().std(axis=0), rel=0.6)
    rep = track(B, stream, "rate", bin=20 * ms)
    s = stream.values @ B.double().numpy()
    hand = np.zeros_like(s)  # exact solution of tau dr/dt = -r + s held over each step
    a = math.exp(-1e-4 / 10e-3)
    for n in range(len(s) - 1):
        hand[n + 1] = a * hand[n] + (1 - a) * s[n]
    assert np.abs(rep.trace.values - hand).max() < 1e-9 * np.abs(hand).max()
    assert rep.tracking.cosine == pytest.approx(rep.tracking.cosine_predicted, abs=1e-9)
    assert 0 < rep.tracking.lag_s <= 10e-3 and rep.tracking.lag_s == rep.tracking.lag_predicted_s
    assert rep.tracking.mean_gain < 1  # a low-pass attenuates


def test_spiking_above_poisson_bound_and_improves_with_time(pathway):
    B, E = pathway
    short = check_pathway(B, E, "spiking", duration=0.15 * second, seed=1)
    long = check_pathway(B, E, "spiking", duration=0.6 * second, seed=1)
    for rep in (short, long):
        for p in rep.patterns:
            assert p.cosine > p.poisson_bound, (p.cosine, p.poisson_bound)
    assert np.mean([1 - p.cosine for p in long.patterns]) < 0.6 * np.mean([1 - p.cosine for p in short.patterns])
    f = 1 - 5e-3 / 0.575 * (1 - math.exp(-0.575 / 5e-3))  # finite window of the 5 ms synaptic filter
    hand = [
        1
        / math.sqrt(
            1
            + f
            * 2
            * 200
            * float((B**2).sum())
            / 0.575
            / (2 * 200 / float(e.abs().max())) ** 2
            / float(((e @ B.double()) ** 2).sum())
        )
        for e in E.double()
    ]
    assert [p.poisson_cosine for p in long.patterns] == pytest.approx(hand, rel=1e-6)


@pytest.mark.parametrize("mode", ["rate", "spiking"])
def test_dale_mode_obeys_signs_and_its_cost_is_measured(pathway, mode):
    B, E = pathway[0], pathway[1][:2]
    duration = 0.3 * second if mode == "spiking" else 0.1 * second
    rep = check_pathway(B, E, mode, dale=True, duration=duration, seed=2)
    assert rep.sign_violations == 0 and rep.neurons["relay"] == 20
    plain = check_pathway(B, E, mode, dale=False, duration=duration, seed=2)
    assert plain.neurons["relay"] == 0
    if mode == "rate":
        assert all(p.cosine > 0.999 for p in rep.patterns)
        return
    for dale_p, plain_p in zip(rep.patterns, plain.patterns, strict=True):
        assert dale_p.cosine > dale_p.poisson_bound
        # relays are Poisson neurons of their own: noise power x (r+ + 2 r- ...)/(r+ + r-), about 1.5
        rho_dale, rho_plain = 1 / dale_p.poisson_cosine**2 - 1, 1 / plain_p.poisson_cosine**2 - 1
        assert 1.2 < rho_dale / rho_plain < 1.8


def test_noisy_relays_cost_rate_fidelity(pathway):
    B, E = pathway
    rep = check_pathway(B, E[:2], "rate", dale=Relays(tau=2 * ms, noise=0.5), duration=0.1 * second, seed=3)
    for p in rep.patterns:
        assert p.poisson_bound < p.cosine < 0.9999 and p.poisson_cosine < 1


def test_two_layer_gated_pathway_matches_torch():
    gen = torch.Generator().manual_seed(4)
    B3, B2, e = torch.randn(6, 12, generator=gen), torch.randn(12, 16, generator=gen), torch.randn(2, 6, generator=gen)
    a = torch.randn(2, 12, generator=gen)
    gate = (a > 0).double()  # ReLU'(a), one row per pattern
    hand = torch.stack([B2.double().T @ (gate[p] * (B3.double().T @ e[p].double())) for p in range(2)]).numpy()
    rate = check_chain([B3, B2], e, [gate], "rate", duration=0.25 * second)
    assert np.allclose(rate.simulated, hand, rtol=0, atol=2e-3 * np.abs(hand).max())
    spk = check_chain([B3, B2], e, [gate], SpikingMode(rate=400 * Hz), duration=0.4 * second, seed=5)
    assert np.allclose(spk.reference, hand)
    for p in spk.patterns:
        assert p.cosine > p.poisson_bound, (p.cosine, p.poisson_bound)
    with pytest.raises(ValueError, match="need 1 gates"):
        check_chain([B3, B2], e, [], "rate")
    # a time-varying gate (steps, n): held at gate[0] for the first half of the window, then switched to gate[1]
    steps = 2000
    varying = np.repeat(gate.numpy(), steps // 2, axis=0)
    switched = check_chain([B3, B2], e[:1], [varying], "rate", duration=0.2 * second, settle=0.15 * second)
    hand_switched = (B2.double().T @ (gate[1] * (B3.double().T @ e[0].double()))).numpy()
    assert np.allclose(switched.simulated[0], hand_switched, atol=2e-3 * np.abs(hand_switched).max())
    # the reference averages the gate over the measuring window only (steps 1500..2000: all gate[1])
    assert np.allclose(switched.reference[0], hand_switched, rtol=1e-12, atol=0)
    assert switched.patterns[0].cosine > 0.9999


def test_chain_reference_averages_a_time_varying_gate_over_the_measuring_window():
    gen = torch.Generator().manual_seed(8)
    B3, B2, e = (
        torch.randn(4, 6, generator=gen).double(),
        torch.randn(6, 5, generator=gen).double(),
        torch.randn(1, 4, generator=gen).double(),
    )
    g0, g1 = torch.tensor([1.0, 0, 1, 0, 1, 1]).double(), torch.tensor([0.0, 1, 1, 1, 0, 0]).double()
    # 0.2 s at dt 0.1 ms = 2000 steps; settle 0.1 s skips steps 0..999; the gate switches at step 1500
    varying = np.concatenate([np.tile(g0.numpy(), (1500, 1)), np.tile(g1.numpy(), (500, 1))])
    rep = check_chain([B3, B2], e, [varying], "rate", duration=0.2 * second, settle=0.1 * second)
    hand = B2.T @ ((g0 + g1) / 2 * (B3.T @ e[0]))  # the measuring window holds g0 and g1 500 steps each
    assert np.allclose(rep.reference[0], hand.numpy(), rtol=1e-12, atol=0)


def test_calibrated_noise_reproduces_the_bridge_cosine_in_torch():
    import biocircuits as bc

    gen = torch.Generator().manual_seed(6)
    B = torch.randn(8, 30, generator=gen)
    E = torch.sign(torch.randn(6, 8, generator=gen)) * (0.5 + torch.rand(6, 8, generator=gen))
    cal = calibrate_spikes(B, E, rate=200 * Hz, window=40 * ms, repeats=4, seed=7)
    rms = float(E.double().pow(2).mean().sqrt())
    f = 1 - 0.125 * (1 - math.exp(-8))  # finite window (40 ms) of the 5 ms synaptic filter
    hand_sigma = math.sqrt(f * np.mean([float(e.abs().max()) ** 2 for e in E.double()]) / (2 * 200 * 0.04)) / rms
    assert cal.sigma_analytic == pytest.approx(hand_sigma, rel=1e-3)
    assert cal.sigma == pytest.approx(hand_sigma, rel=0.25)  # 24 windows of a chi-square: a few % spread
    layer = torch.nn.Linear(30, 8, bias=False)
    with torch.no_grad():
        layer.weight.copy_(B)
    bc.apply(layer, cal.spec(feedback={"rule": "bp"}))
    cosines = []
    for _ in range(50):
        x = torch.zeros(6, 30, requires_grad=True)
        layer(x).backward(E)
        cosines += torch.nn.functional.cosine_similarity(x.grad.double(), E.double() @ B.double()).tolist()
    # tolerance: the bridge's mean over 24 windows has a standard error of about 0.01 at this noise level
    assert np.mean(cosines) == pytest.approx(cal.cosine, abs=0.03)
    assert cal.phases("quantization")["error_quantization"]["spikes"] == cal.spikes >= 1


def test_non_square_one_hot_lands_on_the_right_neurons():
    B = torch.zeros(3, 7)
    B[1] = torch.tensor([0.0, 2.0, 0.0, -1.0, 0.0, 0.5, 0.0])
    B[0, 6] = 5.0  # must not show up for a one-hot error on unit 1
    rep = check_pathway(B, torch.tensor([[0.0, 1.0, 0.0]]), "rate")
    assert np.allclose(rep.simulated[0], B[1].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="3 rows"):
        check_pathway(B, torch.ones(1, 7), "rate")


def test_modes_take_units_brian2_style():
    with pytest.raises(brian2.DimensionMismatchError):
        RateMode(tau=0.01)
    with pytest.raises(brian2.DimensionMismatchError):
        SpikingMode(rate=200 * ms)
    assert SpikingMode(rate=100 * Hz).r0 == 100


def test_layer_input_backprop_angle_and_recorded_errors():
    from biocircuits.app.check_pathway import layer_errors
    from biocircuits.nn import FeedbackConv2d, FeedbackLinear

    torch.manual_seed(0)
    fa = FeedbackLinear(20, 8, rule="fa")
    rep = check_pathway(fa, torch.randn(2, 8), "rate")
    assert rep.shape == (8, 20) and 45 < rep.patterns[0].backprop_angle_deg < 135
    conv = FeedbackConv2d(3, 5, 3, rule="fa")
    assert check_pathway(conv, torch.randn(1, 5), "rate").shape == (5, 27)  # patch unrolled
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    with ErrorRecorder(model[0]) as rec:
        for _ in range(3):
            torch.nn.functional.cross_entropy(model(x), y, reduction="sum").backward()
    assert rec.stream().shape == (3, 6)
    assert torch.allclose(rec.stream()[0].float(), layer_errors(model, model[0], x, y)[0], atol=1e-6)


def test_without_brian2_one_clear_message(monkeypatch):
    import biocircuits.bridges.brian2 as bridge

    monkeypatch.setattr(bridge, "b2", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[spiking\]"'):
        bridge.check_pathway(torch.ones(2, 2), torch.ones(1, 2), "rate")


def test_biocircuits_imports_without_brian2():
    import subprocess

    code = (
        "import sys; sys.modules['brian2'] = None; import biocircuits, biocircuits.bridges.brian2 as b; "
        "print(b.b2 is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr


def test_relay_rectification_surplus_and_bias_by_hand():
    """delta(r) = E[(S + Z)^-], S ~ Gamma(mean r, var v) and Z ~ N(0, s^2), by quadrature of the density here; the
    readout bias b = -(B-^T delta(r+) + B+^T delta(r-)) / (2 k) by explicit loops."""
    stats = pytest.importorskip("scipy.stats")
    from scipy.integrate import quad

    from biocircuits.bridges.brian2.relays import rectification_surplus, relay_bias

    relays, r0, dt = Relays(tau=2 * ms, noise=0.5), 200.0, 1e-4
    a = dt / 2e-3
    s = 0.5 * r0 / math.sqrt(1 - a / 2)  # Euler OU: variance sigma^2 2a / (1 - (1 - a)^2)
    c, J = 1 - a, a / (1 - a) / dt  # Euler decay, and the jump that keeps E[rho] = r

    def hand(r):
        g = lambda x: s * stats.norm.pdf(x / s) - x * stats.norm.cdf(-x / s)  # noqa: E731
        if r == 0:
            return g(0.0)
        v = c**2 * J**2 * r * dt * (1 - r * dt) / (1 - c**2)
        return quad(lambda x: g(x) * stats.gamma.pdf(x, r**2 / v, scale=v / r), 0, np.inf, limit=400)[0]

    rates = np.array([0.0, 20.0, 100.0, 200.0, 400.0])
    got = rectification_surplus(rates, relays, r0, dt)
    assert got[0] == pytest.approx(s / math.sqrt(2 * math.pi), rel=1e-12)
    assert got == pytest.approx([hand(r) for r in rates], rel=2e-3)
    assert np.all(np.diff(got) < 0)  # a higher input rate keeps the relay's rate off zero
    assert np.all(rectification_surplus(rates, Relays(tau=2 * ms), r0, dt) == 0)  # no noise, no rectification
    B = np.array([[1.0, -2.0, 0.0], [-0.5, 0.5, 3.0]])
    e = np.array([0.4, -1.0])
    k = r0 / 1.0
    b = np.zeros(3)
    for o in range(2):
        for i in range(3):
            b[i] -= (max(-B[o, i], 0) * hand(r0 + k * e[o]) + max(B[o, i], 0) * hand(r0 - k * e[o])) / (2 * k)
    assert relay_bias(B, e, relays, r0, dt) == pytest.approx(b, rel=2e-3)


def test_noisy_spiking_relays_bias_is_in_the_bound():
    """Softmax-like errors through 30 excitatory/inhibitory pairs: the relays' rectified noise shifts the readout
    along b (not noise: no averaging removes it) and the bound that includes it holds where the noise-only bound
    1 / sqrt(1 + 3 rho) did not."""
    gen = torch.Generator().manual_seed(0)
    B = torch.randn(30, 16, generator=gen).double()
    logits = 4 * torch.randn(4, 30, generator=gen).double()
    E = torch.softmax(logits, 1) - torch.nn.functional.one_hot(torch.tensor([0, 3, 5, 7]), 30).double()
    relays = Relays(tau=2 * ms, noise=0.5)
    rep = check_pathway(B, E, "spiking", dale=relays, duration=0.5 * second, seed=3)
    assert all(p.cosine > p.poisson_bound for p in rep.patterns), [(p.cosine, p.poisson_bound) for p in rep.patterns]
    mode = SpikingMode()
    for p, e, sim, ana in zip(rep.patterns, E.numpy(), rep.simulated, rep.analytic, strict=True):
        b = mode.bias(B.numpy(), e, relays)
        d = np.asarray(sim) - np.asarray(ana)
        assert d @ b / np.linalg.norm(d) / np.linalg.norm(b) > 0.6  # the deviation is mostly the bias
        assert 0.5 < d @ b / (b @ b) < 2
        assert p.bias_cosine == pytest.approx(float(ana @ (ana + b)) / np.linalg.norm(ana) / np.linalg.norm(ana + b))
        assert p.bias_cosine < 0.95


def test_calibration_forms_one_at_a_time():
    from biocircuits.bridges.brian2 import Calibration

    cal = Calibration(200.0, 0.05, False, 0.5, 0.45, 3, 20.0, 0.9, 0.9, report=None)
    assert cal.phases("noise") == {"seed": 0, "error_noise": {"sigma": 0.5}}
    assert cal.phases("noise", measured=False)["error_noise"] == {"sigma": 0.45}
    assert cal.phases("quantization") == {"seed": 0, "error_quantization": {"spikes": 3}}
    with pytest.raises(ValueError, match="whole spiking variance"):
        cal.phases("both")  # each form alone carries the whole variance: both would count it twice
