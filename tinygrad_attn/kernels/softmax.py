"""Fused row kernels for softmax and log-softmax, forward and backward, over the last axis.

Each kernel takes C-contiguous 2-D arrays (rows, C) and handles one row at a time, entirely in
cache: `row_max` (a vectorised max, see rowmax.py), then one loop that computes exp, stores it and sums it,
then one scaling loop. Rows are independent, so the `*_parallel` drivers split them over
threads with `prange`; the `*_serial` twins skip the thread pool for small inputs.

Stability: subtracting the row max m keeps every exp(x - m) <= 1. A row that is entirely -inf
(a fully masked attention row) has m = -inf; softmax returns zeros for it instead of NaN.
log-softmax is (x - m) - log s, never x - (m + log s): m + log s rounds log s away when m is large.
"""

import numpy as np
from numba import njit, prange

from .fastexp import fexp, fexp_nonpositive
from .flags import ERROR_MODEL, FASTMATH, FASTMATH_ORDERED
from .rowmax import row_max


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def softmax_row(x: np.ndarray, y: np.ndarray, i: int) -> None:
    """y[i] = exp(x[i] - m) / sum(exp(x[i] - m)) with m = max(x[i]); zeros if x[i] is all -inf. The row
    kernels index the 2-D arrays (x[i, j]) instead of taking row slices: a slice object per row cost
    as much as the row's work at 64 columns (2x on (2048, 64)); so does `row_max`."""
    m = row_max(x, i)
    n = x.shape[1]
    if m == -np.inf:
        y[i, :] = 0
        return
    s = x.dtype.type(0)
    for j in range(n):
        e = fexp_nonpositive(x[i, j] - m)                    # x - m <= 0
        y[i, j] = e
        s += e
    inv = x.dtype.type(1) / s
    for j in range(n):
        y[i, j] *= inv


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def softmax_backward_row(y: np.ndarray, dy: np.ndarray, dx: np.ndarray, i: int) -> None:
    """dx[i] = y[i] * (dy[i] - sum(y[i] * dy[i]))."""
    s = y.dtype.type(0)
    n = y.shape[1]
    for j in range(n):
        s += y[i, j] * dy[i, j]
    for j in range(n):
        dx[i, j] = y[i, j] * (dy[i, j] - s)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def row_shift_logsum(x: np.ndarray, i: int):
    """(m, log s) of row i, with m = max(x[i]) (0 if m is not finite) and s = sum(exp(x[i] - m)).

    Kept apart, never added: x - logsumexp(x) is computed as (x - m) - log s, so a large m does not
    swallow log s (in float32, 10000 + 0.0024757 rounds to 10000.0029; 1e30 + ln 3 to 1e30).
    """
    m = row_max(x, i)
    if not np.isfinite(m):
        m = x.dtype.type(0)
    s = x.dtype.type(0)
    for j in range(x.shape[1]):
        s += fexp(x[i, j] - m)
    return m, np.log(s)


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH_ORDERED)
def log_softmax_row(x: np.ndarray, y: np.ndarray, i: int) -> None:
    """y[i] = (x[i] - m) - log(sum(exp(x[i] - m))) (a row of all -inf gives NaN, like numpy and PyTorch)."""
    m, logsum = row_shift_logsum(x, i)
    for j in range(x.shape[1]):
        y[i, j] = (x[i, j] - m) - logsum


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def log_softmax_backward_row(y: np.ndarray, dy: np.ndarray, dx: np.ndarray, i: int) -> None:
    """dx[i] = dy[i] - exp(y[i]) * sum(dy[i]), where y = log_softmax(x) so exp(y) = softmax(x)."""
    s = dy.dtype.type(0)
    for j in range(dy.shape[1]):
        s += dy[i, j]
    for j in range(dy.shape[1]):
        dx[i, j] = dy[i, j] - fexp(y[i, j]) * s


# Drivers: one row per iteration; `prange` hands contiguous blocks of rows to each thread. The row functions
# are inlined (a call per row passes its arrays with reference counting: 40 ns a row, as much as a 64-wide
# row's work), so each driver carries its row function's fast-math flags.

@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH, parallel=True)
def softmax_parallel(x: np.ndarray, y: np.ndarray) -> None:
    for i in prange(x.shape[0]):
        softmax_row(x, y, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def softmax_serial(x: np.ndarray, y: np.ndarray) -> None:
    for i in range(x.shape[0]):
        softmax_row(x, y, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH, parallel=True)
def softmax_backward_parallel(y: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    for i in prange(y.shape[0]):
        softmax_backward_row(y, dy, dx, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def softmax_backward_serial(y: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    for i in range(y.shape[0]):
        softmax_backward_row(y, dy, dx, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH_ORDERED, parallel=True)
def log_softmax_parallel(x: np.ndarray, y: np.ndarray) -> None:
    for i in prange(x.shape[0]):
        log_softmax_row(x, y, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH_ORDERED)
def log_softmax_serial(x: np.ndarray, y: np.ndarray) -> None:
    for i in range(x.shape[0]):
        log_softmax_row(x, y, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH, parallel=True)
def log_softmax_backward_parallel(y: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    for i in prange(y.shape[0]):
        log_softmax_backward_row(y, dy, dx, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def log_softmax_backward_serial(y: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    for i in range(y.shape[0]):
        log_softmax_backward_row(y, dy, dx, i)
