"""Fused GELU and LayerNorm kernels (forward and backward), the other hot spots of a transformer step,
and a two-thread elementwise product for large arrays.

GELU (tanh approximation) is rewritten with the identity 0.5 (1 + tanh(u)) = sigmoid(2u):

    gelu(x)  = x * s,                      s = 1 / (1 + exp(-2u)),  u = c (x + 0.044715 x^3), c = sqrt(2/pi)
    gelu'(x) = s + 2 x s (1 - s) c (1 + 3 * 0.044715 x^2)

which needs one (vectorised, `fexp`) exponential and has no cancellation for large |x|.

LayerNorm works on rows (R, D): mean, variance (two passes over the row while it is in
cache), y = (x - mean) * rstd * w + b. The backward pass needs sums over rows for dw and db;
each thread accumulates its own partial sums over a block of rows, added up at the end.
"""

import numpy as np
from numba import njit, prange

from .fastexp import fexp
from .flags import ERROR_MODEL, FASTMATH

_C = np.sqrt(2 / np.pi)
_A = 0.044715


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def gelu_block(x: np.ndarray, y: np.ndarray) -> None:
    """y[i] = gelu(x[i]) for 1-D arrays (callers pass slices, so every loop starts at 0 and vectorises)."""
    one = x.dtype.type(1)
    c = x.dtype.type(_C)
    a = x.dtype.type(_A)
    m2 = x.dtype.type(-2)                 # typed constants: an int or float64 literal would promote f32 math to f64
    # Two simple loops: LLVM vectorises each, but not the fused one (exp and divide in one body).
    for i in range(x.size):
        v = x[i]
        y[i] = fexp(m2 * c * (v + a * v * v * v))          # e^(-2u)
    for i in range(x.size):
        y[i] = x[i] / (one + y[i])                          # x * sigmoid(2u)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def gelu_backward_block(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    """dx[i] = dy[i] * gelu'(x[i]) for 1-D arrays."""
    one = x.dtype.type(1)
    c = x.dtype.type(_C)
    a = x.dtype.type(_A)
    a3 = x.dtype.type(3 * _A)
    two = x.dtype.type(2)
    m2 = -two
    for i in range(x.size):                                 # two loops, as in gelu_block
        v = x[i]
        dx[i] = fexp(m2 * c * (v + a * v * v * v))          # e^(-2u)
    for i in range(x.size):
        v = x[i]
        s = one / (one + dx[i])                             # sigmoid(2u)
        dx[i] = dy[i] * (s + two * v * s * (one - s) * c * (one + a3 * v * v))


# The serial twins take the parallel ones' arguments (block sizes unused), so `threads.run` can call either.

@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def gelu_parallel(x, y, block) -> None:
    for k in prange((x.size + block - 1) // block):
        lo, hi = k * block, min(x.size, (k + 1) * block)
        gelu_block(x[lo:hi], y[lo:hi])


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def gelu_serial(x, y, block) -> None:
    gelu_block(x, y)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def gelu_backward_parallel(x, dy, dx, block) -> None:
    for k in prange((x.size + block - 1) // block):
        lo, hi = k * block, min(x.size, (k + 1) * block)
        gelu_backward_block(x[lo:hi], dy[lo:hi], dx[lo:hi])


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def gelu_backward_serial(x, dy, dx, block) -> None:
    gelu_backward_block(x, dy, dx)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def multiply_block(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[i] = a[i] * b[i] for 1-D arrays (slices, so the loop starts at 0 and vectorises)."""
    for i in range(out.size):
        out[i] = a[i] * b[i]


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def multiply_parallel(a, b, out, block) -> None:
    """The product of two large arrays on every thread. Its serial twin is numpy's own multiply (fast.py):
    one core streams a product no faster in Numba; two did it 1.4-1.7x as fast at 131,072-1,048,576 float32."""
    for k in prange((out.size + block - 1) // block):
        lo, hi = k * block, min(out.size, (k + 1) * block)
        multiply_block(a[lo:hi], b[lo:hi], out[lo:hi])


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def scale_block(a: np.ndarray, s, out: np.ndarray) -> None:
    """out[i] = a[i] * s for a 1-D array a and a scalar s of its dtype."""
    for i in range(out.size):
        out[i] = a[i] * s


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def scale_parallel(a, s, out, block) -> None:
    """An array times one number on every thread (the gradient a sum sends back, times the other factor);
    its serial twin is numpy's multiply."""
    for k in prange((out.size + block - 1) // block):
        lo, hi = k * block, min(out.size, (k + 1) * block)
        scale_block(a[lo:hi], s, out[lo:hi])


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def layer_norm_row(x, w, b, eps, y, mean, rstd, i) -> None:
    """Normalise row x (length D) into y, storing its mean and rstd at index i (eps has x's dtype)."""
    d = x.dtype.type(x.size)
    s = x.dtype.type(0)
    for j in range(x.size):
        s += x[j]
    mu = s / d
    v = x.dtype.type(0)
    for j in range(x.size):
        xc = x[j] - mu
        v += xc * xc
    r = x.dtype.type(1) / np.sqrt(v / d + eps)
    for j in range(x.size):
        y[j] = (x[j] - mu) * r * w[j] + b[j]
    mean[i] = mu
    rstd[i] = r


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def layer_norm_backward_rows(dy, x, w, mean, rstd, dx, dw, db) -> None:
    """dx for the rows given (callers pass row slices); adds their dy * xhat and dy into dw and db.

    With g = dy * w and xhat = (x - mean) * rstd:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
    """
    d = x.shape[1]
    inv_d = x.dtype.type(1) / x.dtype.type(d)
    for i in range(x.shape[0]):
        mu = mean[i]
        r = rstd[i]
        sg = x.dtype.type(0)
        sgx = x.dtype.type(0)
        for j in range(d):
            xhat = (x[i, j] - mu) * r
            g = dy[i, j] * w[j]
            sg += g
            sgx += g * xhat
            dw[j] += dy[i, j] * xhat
            db[j] += dy[i, j]
        sg *= inv_d
        sgx *= inv_d
        for j in range(d):
            xhat = (x[i, j] - mu) * r
            dx[i, j] = r * (dy[i, j] * w[j] - sg - xhat * sgx)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def layer_norm_parallel(x, w, b, eps, y, mean, rstd) -> None:
    for i in prange(x.shape[0]):
        layer_norm_row(x[i], w, b, eps, y[i], mean, rstd, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def layer_norm_serial(x, w, b, eps, y, mean, rstd) -> None:
    for i in range(x.shape[0]):
        layer_norm_row(x[i], w, b, eps, y[i], mean, rstd, i)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def layer_norm_backward_parallel(dy, x, w, mean, rstd, dx, nblocks):
    """Rows split into `nblocks` blocks; block k accumulates dw/db into its own row of the partials."""
    rows, d = x.shape
    dw_parts = np.zeros((nblocks, d), x.dtype)
    db_parts = np.zeros((nblocks, d), x.dtype)
    per = (rows + nblocks - 1) // nblocks
    for k in prange(nblocks):
        lo, hi = k * per, min(rows, (k + 1) * per)
        layer_norm_backward_rows(dy[lo:hi], x[lo:hi], w, mean[lo:hi], rstd[lo:hi], dx[lo:hi],
                                 dw_parts[k], db_parts[k])
    return dw_parts.sum(axis=0), db_parts.sum(axis=0)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def layer_norm_backward_serial(dy, x, w, mean, rstd, dx, nblocks):
    d = x.shape[1]
    dw = np.zeros(d, x.dtype)
    db = np.zeros(d, x.dtype)
    layer_norm_backward_rows(dy, x, w, mean, rstd, dx, dw, db)
    return dw, db
