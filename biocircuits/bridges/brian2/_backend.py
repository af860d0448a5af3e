"""What every module of the Brian2 bridge shares: the optional Brian2 import, units, the simulation session
(code-generation target, seeds, restored afterwards), feedback matrices and angles."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from biocircuits.errors import ConfigError

try:
    import brian2 as b2
except ImportError:  # the rest of biocircuits works without Brian2
    b2 = None

INSTALL_HINT = 'the Brian2 bridge needs Brian2: pip install -e ".[spiking]" (brian2 2.9 needs numpy < 2.4)'


def require_brian2() -> Any:
    """The brian2 module, or an ImportError saying what to install (reads the package's ``b2``, so a test can
    hide Brian2 by patching ``biocircuits.bridges.brian2.b2``)."""
    package = sys.modules.get("biocircuits.bridges.brian2")
    module = getattr(package, "b2", b2) if package is not None else b2
    if module is None:
        raise ImportError(INSTALL_HINT)
    return module


def check_units(**units: Any) -> Callable:
    """Brian2's ``check_units`` (arguments named here must carry these units); a no-op without Brian2, whose
    absence is then reported by [`require_brian2`][biocircuits.bridges.brian2._backend.require_brian2] when a simulation
    is asked for."""
    if b2 is None:
        return lambda f: f
    return b2.check_units(**units)


def seconds(value: Any) -> float:
    """A Brian2 time (or ``None`` passed through) as a float in seconds."""
    return float(value / b2.second) if value is not None else None


def hertz(value: Any) -> float:
    return float(value / b2.Hz)


@contextlib.contextmanager
def session(codegen_target: str, seed: int) -> Iterator[Any]:
    """Brian2 with ``codegen_target`` and ``seed``; its preferences and numpy's global random state (which
    ``brian2.seed`` reseeds) are restored afterwards."""
    bb = require_brian2()
    saved, np_state = bb.prefs.codegen.target, np.random.get_state()
    try:
        bb.prefs.codegen.target = codegen_target
        bb.seed(seed)
        yield bb
    finally:
        bb.prefs.codegen.target = saved
        np.random.set_state(np_state)


def feedback_matrix(layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(B, W) as (out, in) float64 arrays from a converted layer (B = its backward weight) or a matrix (W None).
    Conv weights (C_out, C_in/g, kh, kw) are unrolled over one output location's patch: (C_out, C_in/g kh kw)."""
    if isinstance(layer_or_b, torch.nn.Module):
        B = layer_or_b.backward_weight() if hasattr(layer_or_b, "backward_weight") else layer_or_b.weight
        if B is None:
            raise ConfigError(
                "this layer's rule has no layer-local feedback matrix to simulate",
                given=layer_or_b.rule.name,
                suggestion="check a layer trained with bp, fa, sign_symmetry, kolen_pollack or weight_mirror",
            )
        return as_matrix(B), as_matrix(layer_or_b.weight)
    return as_matrix(layer_or_b), None


def as_matrix(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """A tensor or array as a float64 numpy matrix, trailing dimensions flattened."""
    t = torch.as_tensor(t).detach().double().cpu()
    return t.reshape(t.shape[0], -1).numpy()


def as_errors(errors: torch.Tensor | np.ndarray, n_out: int, what: str = "errors") -> np.ndarray:
    """Error patterns as a float64 (patterns, n_out) array; a ConfigError if the width is not ``n_out``."""
    E = np.atleast_2d(torch.as_tensor(errors).detach().double().cpu().numpy())
    if E.ndim != 2 or E.shape[1] != n_out:
        raise ConfigError(
            f"{what} have {E.shape[-1]} units per pattern but B has {n_out} rows (outputs)",
            key=what,
            expected=f"shape (patterns, {n_out})",
            given=tuple(E.shape),
            suggestion="pass the errors at the layer's output, one row per pattern",
        )
    return E


def angle(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(cosine, angle in degrees) between two vectors; NaN if either is zero."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return math.nan, math.nan
    cos = float(np.clip(a.ravel() @ b.ravel() / (na * nb), -1, 1))
    return cos, math.degrees(math.acos(cos))


def lowpass(signal: np.ndarray, decay: float, initial: np.ndarray | float = 0.0) -> np.ndarray:
    """The first-order section every stage of the simulated pathway implements on the dt grid:
    y_0 = initial, y_{n+1} = a y_n + (1 - a) s_n with a = ``decay`` = exp(-dt / tau) (signal (steps, ...))."""
    y = np.empty_like(signal, dtype=float)
    y[0] = initial
    for n in range(len(signal) - 1):
        y[n + 1] = decay * y[n] + (1 - decay) * signal[n]
    return y
