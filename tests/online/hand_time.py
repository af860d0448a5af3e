"""Hand recursions of the phases in time (biocircuits/recurrent/phases.py), written out with explicit loops: the
transforms of one population's signal over the steps of a trial, and the rate network's per-step error, activity
and learning signal that they act on."""

import math

import torch

from .hand import softmax_error


def rate_signals(m, x, y, feedback):
    """Per step t and sample b of the tanh rate network (see ``hand.rate_hand``): r[t][b] the readout's activity,
    err[t][b] = dE/dz_t, L[t][b][j] = sum_k B[k, j] err[t][b][k]."""
    a, n = m.alpha, m.n_hidden
    w_in, w_rec, b_rec = m.input.weight, m.recurrent.weight, m.recurrent.bias
    w_out, b_out = m.readout.weight, m.readout.bias
    steps, batch = x.shape[1], x.shape[0]
    r, err, sig = ([[None] * batch for _ in range(steps)] for _ in range(3))
    for b in range(batch):
        state = torch.zeros(n)
        for t in range(steps):
            state = (1 - a) * state + a * (w_rec @ torch.tanh(state) + w_in @ x[b, t] + b_rec)
            r[t][b] = torch.tanh(state)
            err[t][b] = softmax_error(w_out @ r[t][b] + b_out, int(y[b, t]), batch * int((y[b] >= 0).sum()))
            sig[t][b] = torch.tensor([sum(feedback[k, j] * err[t][b][k] for k in range(len(b_out))) for j in range(n)])
    return r, err, sig


def arriving(signal, delay=0, sigma=0.0, tau=0.0, generator=None, spikes=0):
    """What arrives at each step: signal[t][b] (a list over steps of lists over samples) delayed by ``delay`` steps
    (zero before), plus sigma rms xi_t (rms over the step's samples and units, xi_t one [B, n] draw per step), coded
    by at most ``spikes`` spikes per unit (m = max |s|, c = N |s| / m, s <- sign(s) m / N (floor(c) + [u < c -
    floor(c)]), u one [B, n] uniform draw per step with m > 0), then low-passed f_t = a f_(t-1) + (1 - a) s_t,
    a = exp(-1 / tau)."""
    steps, batch = len(signal), len(signal[0])
    out, f = [], [torch.zeros_like(signal[0][b]) for b in range(batch)]
    for t in range(steps):
        s = [signal[t - delay][b].clone() if t >= delay else torch.zeros_like(signal[0][b]) for b in range(batch)]
        if sigma:
            values = [float(v) ** 2 for b in range(batch) for v in s[b]]
            rms = math.sqrt(sum(values) / len(values))
            xi = torch.randn(batch, len(s[0]), generator=generator)
            s = [s[b] + sigma * rms * xi[b] for b in range(batch)]
        if spikes:
            m = max(abs(float(v)) for b in range(batch) for v in s[b])
            if m > 0:
                u = torch.rand(batch, len(s[0]), generator=generator)
                coded = []
                for b in range(batch):
                    row = []
                    for i, v in enumerate(s[b]):
                        c = spikes * abs(float(v)) / m
                        row.append(math.copysign(m / spikes * (math.floor(c) + float(u[b, i] < c - math.floor(c))), v))
                    coded.append(torch.tensor(row))
                s = coded
        if tau:
            c = math.exp(-1.0 / tau)
            f = [c * f[b] + (1 - c) * s[b] for b in range(batch)]
            s = [f[b].clone() for b in range(batch)]
        out.append(s)
    return out


def met(trace, delay=0, state="current", lam=0.0):
    """What the signal arriving at step t meets, trace[t][b]: e_(t-d) (stored; e_t before the queue fills, where the
    signal is zero), e_t (current), or ebar_t = lam ebar_(t-1) + (1 - lam) e_t (trace)."""
    steps, batch = len(trace), len(trace[0])
    out, bar = [], [torch.zeros_like(trace[0][b]) for b in range(batch)]
    for t in range(steps):
        if state == "trace":
            bar = [lam * bar[b] + (1 - lam) * trace[t][b] for b in range(batch)]
            out.append([bar[b].clone() for b in range(batch)])
        elif state == "stored" and t >= delay:
            out.append(trace[t - delay])
        else:
            out.append(trace[t])
    return out


def update(signal, trace):
    """sum_t sum_b signal[t][b][j] trace[t][b][j, i] (a readout's trace is its activity: outer product)."""
    total = None
    for t in range(len(signal)):
        for b in range(len(signal[t])):
            e = trace[t][b]
            term = torch.outer(signal[t][b], e) if e.dim() == 1 else signal[t][b][:, None] * e
            total = term if total is None else total + term
    return total


def _rms(v):
    return math.sqrt(sum(float(c) ** 2 for c in v) / len(v))


def _added(y, s, gamma, scale, batch):
    """gamma rms(y) / rms(s) s (activity; 0 when s = 0) or gamma B s (error), one sample."""
    if scale == "error":
        return gamma * batch * s
    return gamma * _rms(y) / _rms(s) * s if _rms(s) > 0 else torch.zeros_like(s)


def rate_interfering(m, x, y, feedback, rule, gamma, scale="activity", delay=0):
    """The tanh rate network of ``hand.rate_hand`` whose state x_t and logits z_t get the arrived signals of step
    t - 1 added (``_added``); signals late by ``delay`` steps, meeting the current trace. Every sample, step, unit
    and synapse in explicit loops; returns the update of each parameter."""
    a, n, n_in = m.alpha, m.n_hidden, m.n_in
    w_in, w_rec, b_rec = m.input.weight, m.recurrent.weight, m.recurrent.bias
    w_out, b_out = m.readout.weight, m.readout.bias
    batch, steps = x.shape[0], x.shape[1]
    g = {"in": torch.zeros(n, n_in), "rec": torch.zeros(n, n + 1), "out": torch.zeros_like(w_out)}
    g_bias = torch.zeros_like(b_out)
    state = [torch.zeros(n) for _ in range(batch)]
    p_in, p_rec = [torch.zeros(n, n_in) for _ in range(batch)], [torch.zeros(n, n + 1) for _ in range(batch)]
    sent_err, sent_sig, left_err, left_sig = [], [], None, None
    for t in range(steps):
        errs, sigs, es = [], [], []
        for b in range(batch):
            r_prev = torch.tanh(state[b])
            state[b] = (1 - a) * state[b] + a * (w_rec @ r_prev + w_in @ x[b, t] + b_rec)
            if left_sig is not None:
                state[b] = state[b] + _added(state[b], left_sig[b], gamma, scale, batch)
            r = torch.tanh(state[b])
            d = 1 - r**2
            z = w_out @ r + b_out
            if left_err is not None:
                z = z + _added(z, left_err[b], gamma, scale, batch)
            pre_rec = torch.cat([r_prev, torch.ones(1)])
            e_in, e_rec = torch.zeros(n, n_in), torch.zeros(n, n + 1)
            for j in range(n):
                for p, e, pre in ((p_in[b], e_in, x[b, t]), (p_rec[b], e_rec, pre_rec)):
                    for i in range(len(pre)):
                        if rule == "eprop":
                            p[j, i] = (1 - a) * p[j, i] + a * pre[i]
                            e[j, i] = d[j] * p[j, i]
                        else:
                            p[j, i] = (1 - a) * p[j, i] + a * d[j] * pre[i]
                            e[j, i] = p[j, i]
            err = softmax_error(z, int(y[b, t]), batch * int((y[b] >= 0).sum()))
            errs.append(err)
            sigs.append(torch.tensor([sum(feedback[k, j] * err[k] for k in range(len(err))) for j in range(n)]))
            es.append((e_in, e_rec, r))
        sent_err.append(errs)
        sent_sig.append(sigs)
        left_err = sent_err[t - delay] if t >= delay else [torch.zeros_like(e) for e in errs]
        left_sig = sent_sig[t - delay] if t >= delay else [torch.zeros_like(s) for s in sigs]
        for b in range(batch):
            e_in, e_rec, r = es[b]
            g["in"] += left_sig[b][:, None] * e_in
            g["rec"] += left_sig[b][:, None] * e_rec
            g["out"] += torch.outer(left_err[b], r)
            g_bias += left_err[b]
    return {
        "input.weight": g["in"],
        "recurrent.weight": g["rec"][:, :n],
        "recurrent.bias": g["rec"][:, n],
        "readout.weight": g["out"],
        "readout.bias": g_bias,
    }
