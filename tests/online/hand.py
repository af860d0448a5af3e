"""Hand recursions of the online rules, one sample, one synapse and one step at a time (explicit loops over plain
float64 tensors), for the tests of biocircuits/recurrent/. Each returns the weight update (the gradient that the
learner accumulates) and, per step, every synapse's eligibility trace e_t[b, j, i]."""

import math

import torch


def softmax_error(z, y, n_valid):
    """dE/dz for one sample and step of the sequence loss, E = mean over trials of each trial's mean cross-entropy
    over its target steps: (softmax(z) - onehot(y)) / (B n_b) (``n_valid`` = B n_b), 0 if y < 0."""
    if y < 0:
        return torch.zeros_like(z)
    p = torch.exp(z - z.max())
    p = p / p.sum()
    p[y] -= 1.0
    return p / n_valid


def sequence_loss(logits, y):
    """E = (1/B) sum_b (1/n_b) sum_{t: y_bt >= 0} CE(logits_bt, y_bt), written out."""
    total = 0.0
    for b in range(y.shape[0]):
        steps = [t for t in range(y.shape[1]) if y[b, t] >= 0]
        for t in steps:
            total = total + (torch.logsumexp(logits[b, t], 0) - logits[b, t, y[b, t]]) / len(steps)
    return total / y.shape[0]


def rate_hand(m, x, y, feedback, rule):
    """The rate RNN x_t = (1-a) x_{t-1} + a (W_rec tanh(x_{t-1}) + W_in u_t + b_rec), z_t = W_out tanh(x_t) + b_out,
    with e-prop's trace e = phi'(x_t) eps_t, eps_t = (1-a) eps_{t-1} + a pre_t, or RFLO's
    p_t = (1-a) p_{t-1} + a phi'(x_t) pre_t; the bias of W_rec is a presynaptic unit of activity 1."""
    a = m.alpha
    w_in, w_rec, b_rec = m.input.weight, m.recurrent.weight, m.recurrent.bias
    w_out, b_out = m.readout.weight, m.readout.bias
    n, n_in = w_rec.shape[0], w_in.shape[1]
    g_in, g_rec, g_out, g_bout = (
        torch.zeros(n, n_in),
        torch.zeros(n, n + 1),
        torch.zeros_like(w_out),
        torch.zeros_like(b_out),
    )
    traces = {"input": [], "recurrent": []}
    for b in range(x.shape[0]):
        state = torch.zeros(n)
        p_in, p_rec = torch.zeros(n, n_in), torch.zeros(n, n + 1)  # eps (e-prop) or p (RFLO), per synapse
        for t in range(x.shape[1]):
            r_prev = torch.tanh(state)
            u = x[b, t]
            state = (1 - a) * state + a * (w_rec @ r_prev + w_in @ u + b_rec)
            r = torch.tanh(state)
            d = 1 - r**2
            pre_rec = torch.cat([r_prev, torch.ones(1)])
            e_in, e_rec = torch.zeros(n, n_in), torch.zeros(n, n + 1)
            for j in range(n):
                for i in range(n_in):
                    if rule == "eprop":
                        p_in[j, i] = (1 - a) * p_in[j, i] + a * u[i]
                        e_in[j, i] = d[j] * p_in[j, i]
                    else:
                        p_in[j, i] = (1 - a) * p_in[j, i] + a * d[j] * u[i]
                        e_in[j, i] = p_in[j, i]
                for i in range(n + 1):
                    if rule == "eprop":
                        p_rec[j, i] = (1 - a) * p_rec[j, i] + a * pre_rec[i]
                        e_rec[j, i] = d[j] * p_rec[j, i]
                    else:
                        p_rec[j, i] = (1 - a) * p_rec[j, i] + a * d[j] * pre_rec[i]
                        e_rec[j, i] = p_rec[j, i]
            traces["input"].append((b, t, e_in.clone()))
            traces["recurrent"].append((b, t, e_rec.clone()))
            err = softmax_error(w_out @ r + b_out, int(y[b, t]), x.shape[0] * int((y[b] >= 0).sum()))
            signal = torch.tensor([sum(feedback[k, j] * err[k] for k in range(len(err))) for j in range(n)])
            for j in range(n):
                g_in[j] += signal[j] * e_in[j]
                g_rec[j] += signal[j] * e_rec[j]
            g_out += torch.outer(err, r)
            g_bout += err
    grads = {
        "input.weight": g_in,
        "recurrent.weight": g_rec[:, :n],
        "recurrent.bias": g_rec[:, n],
        "readout.weight": g_out,
        "readout.bias": g_bout,
    }
    return grads, traces


def _arrive(kept, s, late, tau):
    """One sample's signal as it arrives (phases in time, per sample): s_(t-late) (0 before), low-passed with
    a = exp(-1 / tau); ``kept`` holds the sample's queue and filter state."""
    kept["queue"].append(s)
    s = kept["queue"].pop(0) if len(kept["queue"]) > late else torch.zeros_like(s)
    if tau:
        c = math.exp(-1.0 / tau)
        kept["f"] = c * kept.get("f", torch.zeros_like(s)) + (1 - c) * s
        s = kept["f"].clone()
    return s


def lif_hand(m, x, y, feedback, late=0, tau=0.0):
    """The LIF/ALIF network of Bellec et al. 2020 with e-prop, one synapse at a time:
    v_t = alpha v_{t-1} + W_in u_t + W_rec z_{t-1} - v_th z_{t-1}, a_t = rho a_{t-1} + z_{t-1},
    z_t = H(v_t - v_th - beta a_t), psi_t = gamma/v_th max(0, 1 - |v_t - v_th - beta a_t| / v_th),
    out_t = kappa out_{t-1} + W_out z_t; traces ev (potential), ea (threshold), e = psi (ev - beta ea), filtered
    fe_t = kappa fe_{t-1} + e_t; grad W += L_t fe_t, grad W_out += err_t (x) (kappa-filtered z). With ``late`` or
    ``tau`` (phases in time, ``backward_state: current``) L_t and err_t are what arrives at step t (``_arrive``)."""
    al, rho, kappa, beta, v_th, gamma = m.alpha, m.rho, m.kappa, m.beta, m.v_th, m.gamma
    mask = getattr(m, "self_mask", torch.ones_like(m.recurrent.weight))
    w_in, w_rec, w_out, b_out = m.input.weight, m.recurrent.weight * mask, m.readout.weight, m.readout.bias
    n, n_in = w_rec.shape[0], w_in.shape[1]
    grads = {
        "input.weight": torch.zeros(n, n_in),
        "recurrent.weight": torch.zeros(n, n),
        "readout.weight": torch.zeros_like(w_out),
        "readout.bias": torch.zeros_like(b_out),
    }
    traces = {"input": [], "recurrent": []}
    spikes = 0.0
    for b in range(x.shape[0]):
        v, adapt, z, out, fz = torch.zeros(n), torch.zeros(n), torch.zeros(n), torch.zeros(len(b_out)), torch.zeros(n)
        state = {
            k: {"ev": torch.zeros(n, c), "ea": torch.zeros(n, c), "fe": torch.zeros(n, c)}
            for k, c in (("input", n_in), ("recurrent", n))
        }
        psi_prev = torch.zeros(n)
        kept_err, kept_sig = {"queue": []}, {"queue": []}
        for t in range(x.shape[1]):
            z_prev, u = z, x[b, t]
            v = al * v + w_in @ u + w_rec @ z_prev - v_th * z_prev
            adapt = rho * adapt + z_prev
            dist = v - v_th - beta * adapt
            z = (dist > 0).double()
            psi = gamma / v_th * torch.clamp(1 - dist.abs() / v_th, min=0)
            out = kappa * out + w_out @ z
            err = softmax_error(out + b_out, int(y[b, t]), x.shape[0] * int((y[b] >= 0).sum()))
            signal = [sum(feedback[k, j] * err[k] for k in range(len(err))) for j in range(n)]
            if late or tau:
                err = _arrive(kept_err, err, late, tau)
                signal = _arrive(kept_sig, torch.stack([torch.as_tensor(v) for v in signal]), late, tau)
            for name, pre in (("input", u), ("recurrent", z_prev)):
                s = state[name]
                e = torch.zeros(n, len(pre))
                for j in range(n):
                    for i in range(len(pre)):
                        s["ea"][j, i] = psi_prev[j] * s["ev"][j, i] + (rho - psi_prev[j] * beta) * s["ea"][j, i]
                        s["ev"][j, i] = al * s["ev"][j, i] + pre[i]
                        e[j, i] = psi[j] * (s["ev"][j, i] - beta * s["ea"][j, i])
                        s["fe"][j, i] = kappa * s["fe"][j, i] + e[j, i]
                        grads[f"{name}.weight"][j, i] += signal[j] * s["fe"][j, i]
                traces[name].append((b, t, e))
            psi_prev = psi
            fz = kappa * fz + z
            grads["readout.weight"] += torch.outer(err, fz)
            grads["readout.bias"] += err
            spikes += float(z.sum())
    grads["recurrent.weight"] *= mask
    return grads, traces, spikes


def near(a, b, tol=1e-10):
    return math.isclose(0.0, float((a - b).abs().max()), abs_tol=tol)
