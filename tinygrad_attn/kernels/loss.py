"""Fused cross-entropy over rows of logits (N, C) with integer targets (N,).

Forward, per row i, in one visit of the row: m = max, s = sum exp(x - m), lse = m + log s,
loss = lse - x[t_i] (0 if t_i is `ignore_index`).
Backward, per row, one pass: dlogits = scale * (exp(x - lse) - onehot(t_i)), the softmax
rebuilt from the saved lse instead of stored; ignored rows are zero.
"""

import numpy as np
from numba import njit, prange

from .fastexp import fexp
from .flags import ERROR_MODEL, FASTMATH
from .softmax import row_logsumexp


@njit(cache=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def cross_entropy_row(x: np.ndarray, t: int, ignore_index: int) -> tuple:
    """(loss, lse) for one row of logits x and its target t."""
    lse = row_logsumexp(x)
    loss = x.dtype.type(0) if t == ignore_index else lse - x[t]
    return loss, lse


@njit(cache=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def cross_entropy_backward_row(x: np.ndarray, t: int, lse, ignore_index: int, scale, d: np.ndarray) -> None:
    """d = scale * (exp(x - lse) - onehot(t)), or zeros if t == ignore_index."""
    if t == ignore_index:
        d[:] = 0
        return
    for j in range(x.size):
        d[j] = scale * fexp(x[j] - lse)
    d[t] -= scale


@njit(cache=True, error_model=ERROR_MODEL, parallel=True)
def cross_entropy_forward_parallel(x, targets, ignore_index, loss, lse) -> None:
    for i in prange(x.shape[0]):
        loss[i], lse[i] = cross_entropy_row(x[i], targets[i], ignore_index)


@njit(cache=True, error_model=ERROR_MODEL)
def cross_entropy_forward_serial(x, targets, ignore_index, loss, lse) -> None:
    for i in range(x.shape[0]):
        loss[i], lse[i] = cross_entropy_row(x[i], targets[i], ignore_index)


@njit(cache=True, error_model=ERROR_MODEL, parallel=True)
def cross_entropy_backward_parallel(x, targets, lse, ignore_index, scale, d) -> None:
    for i in prange(x.shape[0]):
        cross_entropy_backward_row(x[i], targets[i], lse[i], ignore_index, scale, d[i])


@njit(cache=True, error_model=ERROR_MODEL)
def cross_entropy_backward_serial(x, targets, lse, ignore_index, scale, d) -> None:
    for i in range(x.shape[0]):
        cross_entropy_backward_row(x[i], targets[i], lse[i], ignore_index, scale, d[i])
