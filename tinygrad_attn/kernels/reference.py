"""Numpy reference kernels: the "numpy" backend, and the ground truth the Numba kernels are tested against.

Every function here has a twin of the same name and signature in `fast.py`. Inputs are plain numpy
arrays whose shapes and dtypes the ops layer has already checked: same float dtype (float32 or
float64) for all float operands, any strides. Softmax-like kernels work over the last axis.
"""

import numpy as np

from .attention_reference import attention_backward, attention_forward  # noqa: F401  (fused attention)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A @ B for a (..., m, k) and b (..., k, n); batch axes broadcast as in numpy."""
    return np.matmul(a, b)


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b elementwise, with numpy's broadcasting."""
    return a * b


def sum_all(x: np.ndarray) -> np.ndarray:
    """The sum of every element of x, as a 0-d array of x's dtype."""
    return np.asarray(x.sum())


def softmax(x: np.ndarray) -> np.ndarray:
    """y = exp(x - max) / sum(exp(x - max)) over the last axis; a row that is all -inf gives zeros
    (a fully masked attention row attends to nothing), not NaN."""
    m = np.max(x, axis=-1, keepdims=True, initial=-np.inf)   # `initial`: rows of length 0 are fine
    m = np.where(np.isneginf(m), 0, m)                     # fully masked row: exp(-inf) = 0 everywhere
    e = np.exp(x - m)
    s = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(s == 0, 1, s)


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = y * (dy - sum(y * dy)) over the last axis (the softmax Jacobian applied to dy)."""
    return y * (dy - np.sum(y * dy, axis=-1, keepdims=True))


def _shift_logsum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, x - m, log s) over the last axis, keepdims: m = max (0 where not finite), s = sum(exp(x - m))."""
    m = np.max(x, axis=-1, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    shifted = x - m
    with np.errstate(divide="ignore"):                      # a row of all -inf: log 0 = -inf
        return m, shifted, np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """y = (x - max) - log(sum(exp(x - max))) over the last axis (a row that is all -inf gives NaN, as in
    PyTorch). Never x - (max + log s): a large max rounds log s away (float32 [10000, 9994])."""
    _, shifted, logsum = _shift_logsum(x)
    return shifted - logsum


def log_softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy - exp(y) * sum(dy) over the last axis, where y = log_softmax(x)."""
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int):
    """Per-row loss_i = -log softmax(logits_i)[t_i] = logsum_i - (logits[i, t_i] - m_i) (0 where t_i ==
    ignore_index), with m_i the row max and logsum_i = log sum_j exp(logits_ij - m_i).

    logits (N, C) float; targets (N,) int64, each in [0, C) or equal to ignore_index.
    Returns (loss (N,), logsum (N,)), both of the logits' dtype; logsum (the log-sum-exp less the max,
    kept apart so a large max cannot round it away) is what `cross_entropy_backward` takes.
    """
    _, shifted, logsum = _shift_logsum(logits)
    keep = targets != ignore_index
    picked = shifted[np.arange(len(targets)), np.where(keep, targets, 0)]
    return np.where(keep, logsum[:, 0] - picked, 0).astype(logits.dtype), logsum[:, 0].astype(logits.dtype)


def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray, logsum: np.ndarray,
                           ignore_index: int, scale: float) -> np.ndarray:
    """dlogits_ij = scale * (softmax(logits_i)_j - [j == t_i]) = scale * (exp((logits_ij - m_i) - logsum_i)
    - [j == t_i]) with m_i the row max, and 0 on ignored rows."""
    m = np.max(logits, axis=-1, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0).astype(logits.dtype)
    d = np.exp((logits - m) - logsum[:, None])
    keep = targets != ignore_index
    rows = np.nonzero(keep)[0]
    d[rows, targets[rows]] -= 1
    d[~keep] = 0
    return (d * scale).astype(logits.dtype)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    c = np.sqrt(2 / np.pi).astype(x.dtype)
    return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x * x * x)))


def gelu_backward(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy * d/dx gelu(x) = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)), t = tanh(...)."""
    c = np.sqrt(2 / np.pi).astype(x.dtype)
    t = np.tanh(c * (x + 0.044715 * x * x * x))
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float):
    """y = (x - mean) * rstd * w + b over the last axis, rstd = 1/sqrt(var + eps).

    Returns (y, mean, rstd) with mean and rstd of shape x.shape[:-1].
    """
    mean = x.mean(axis=-1)
    xc = x - mean[..., None]
    rstd = 1 / np.sqrt((xc * xc).mean(axis=-1) + eps)
    return xc * rstd[..., None] * w + b, mean, rstd


def layer_norm_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, mean: np.ndarray, rstd: np.ndarray):
    """With xhat = (x - mean) * rstd and g = dy * w:
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dw = sum over rows of dy * xhat, db = sum of dy.
    """
    xhat = (x - mean[..., None]) * rstd[..., None]
    g = dy * w
    dx = rstd[..., None] * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def embedding_backward(ids: np.ndarray, dy: np.ndarray, num: int) -> np.ndarray:
    """dW (num, D) of the row lookup y[..., :] = W[ids[...], :]: row ids[i] of dW is the sum of the
    rows dy[i] that looked it up (an id used twice gets both). ids int, each in [0, num); dy (..., D)."""
    dw = np.zeros((num, dy.shape[-1]), dy.dtype)
    np.add.at(dw, ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))   # add.at: repeated ids accumulate
    return dw


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, beta1: float, beta2: float,
                step_size: float, bias2_root: float, eps: float, l2: float, shrink: float) -> None:
    """One Adam step on p in place (m, v updated in place too), in p's dtype:

        p = p * shrink                            (AdamW's decoupled decay; shrink = 1 for Adam)
        g = g + l2 * p_old                        (Adam's L2 penalty; l2 = 0 for AdamW)
        m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
        p = p - step_size * m / (sqrt(v) / bias2_root + eps)
    with step_size = lr / (1 - beta1^t) and bias2_root = sqrt(1 - beta2^t)."""
    if l2:
        g = g + l2 * p
    if shrink != 1.0:
        p *= shrink
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * g * g
    p -= step_size * m / (np.sqrt(v) / bias2_root + eps)
