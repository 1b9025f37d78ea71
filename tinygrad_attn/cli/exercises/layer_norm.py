"""Exercise `layer_norm`: the backward of LayerNorm, through the mean and the variance."""

from types import ModuleType

import numpy as np

from ... import functional as F
from ...tensor import Tensor
from .grading import UNBROADCAST, Mistake, Result, as_function, call, compare_each, gradcheck_part, vjp

NAME = "layer_norm"
GOAL = "LayerNorm backward: dx through the mean and the variance, dw and db summed over every row"
SOLUTION = '''\
"""Exercise `layer_norm`: the backward of LayerNorm over the last axis.

Forward (given below), for each row x of D numbers (x is (..., D); w and b are (D,)):
    mu   = mean(x)                     mean over the last axis
    var  = mean((x - mu)^2)            the population variance
    rstd = 1 / sqrt(var + eps)
    xhat = (x - mu) * rstd             the normalised row
    y    = xhat * w + b

Your job: layer_norm_backward(x, w, b, dy, eps) returns (dx, dw, db), given dy = dL/dy (..., D).
Derive it:
  1. db = dy summed over every row; dw = dy * xhat summed over every row: w and b were broadcast
     over all the leading axes, so their gradients are summed back to shape (D,).
  2. dxhat = dy * w. Then xhat depends on x directly, through mu, and through var (rstd). Carrying
     all three paths through and simplifying gives, per row (means over the last axis):
         dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
     The mean(dxhat) term is the path through mu, the xhat * mean(...) term the path through var.

Check it:  tinygrad-attn exercise check layer_norm [PATH]
Stuck?     tinygrad-attn exercise solution layer_norm
"""

import numpy as np


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """The forward (given): (x - mean) / sqrt(var + eps) * w + b over the last axis."""
    mu = x.mean(axis=-1, keepdims=True)                        # [..., 1]
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)  # [..., 1]
    return (x - mu) * rstd * w + b                             # [..., D]


def layer_norm_backward(x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray,
                        eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) for y = layer_norm(x, w, b, eps), from dy = dL/dy."""
    # >>> raise NotImplementedError("write dx, dw, db (see the docstring at the top)")
    mu = x.mean(axis=-1, keepdims=True)                        # the forward again: [..., 1]
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)  # [..., 1]
    xhat = (x - mu) * rstd                                     # [..., D]
    rows = tuple(range(x.ndim - 1))                            # every leading axis
    db = dy.sum(axis=rows)                                     # reverses "+ b": [D]
    dw = (dy * xhat).sum(axis=rows)                            # reverses "* w": [D]
    dxhat = dy * w                                             # [..., D]
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db
    # <<<
'''
NO_MEAN = "the path through the mean forgotten"
NO_VAR = "the path through the variance forgotten"
NO_RSTD = "the factor rstd forgotten"
NEEDS = ("layer_norm", "layer_norm_backward")
MISTAKES = (NO_MEAN, NO_VAR, NO_RSTD, UNBROADCAST)
EPS = 1e-5


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    dy = rng.standard_normal(x.shape)
    want = vjp(lambda x, w, b: F.layer_norm(x, w, b, EPS), [x, w, b], dy)
    rstd = 1 / np.sqrt(x.var(-1, keepdims=True) + EPS)
    xhat, g = (x - x.mean(-1, keepdims=True)) * rstd, dy * w
    mean_g, mean_gx = g.mean(-1, keepdims=True), (g * xhat).mean(-1, keepdims=True)
    dx_mistakes = [
        Mistake(NO_MEAN, "x - mu depends on x through mu too: subtract mean(dxhat)", rstd * (g - xhat * mean_gx)),
        Mistake(NO_VAR, "rstd depends on x through var too: subtract xhat * mean(dxhat * xhat)",
                rstd * (g - mean_g)),
        Mistake(NO_RSTD, "xhat = (x - mu) * rstd: the whole bracket is multiplied by rstd",
                g - mean_g - xhat * mean_gx),
        Mistake("only the direct path", "x reaches y three ways (directly, through mu, through var)", rstd * g),
    ]
    got = call("dx, dw, db", learner.layer_norm_backward, x.copy(), w.copy(), b.copy(), dy.copy(), EPS)
    results = compare_each(("dx", "dw", "db"), got, want, [dx_mistakes, [], []])
    op = as_function(lambda x, w, b: learner.layer_norm(x, w, b, EPS),
                     lambda ins, out, g: tuple(learner.layer_norm_backward(*ins, g, EPS)))
    inputs = [Tensor(a, requires_grad=True) for a in (x[0, :2], w, b)]
    results.append(gradcheck_part("gradcheck", lambda *t: op.apply(*t), inputs))
    return results
