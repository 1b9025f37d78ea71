"""The "numba" backend: the same functions as `reference.py`, running the Numba kernels.

Each wrapper checks that the inputs are float32/float64 (anything else goes to the numpy
reference), lays the data out the way the kernel wants it (C-contiguous rows; a copy only
when a view cannot be read that way), allocates the outputs, estimates the call's single-thread
time from its sizes (`*_NS` below: nanoseconds per element or per multiply-add, measured on one
core of an AVX-512 EPYC, float32; float64 counts double) and lets the thread policy
(`threads.run`) pick the single-thread (`*_serial`) or the multi-thread (`*_parallel`) kernel.
Each is compiled on its first call only, so a run whose calls are all small compiles no parallel
kernel. Adam and the embedding scatter are serial only (threads never pay at their sizes).
"""

import math
import threading

import numpy as np

from . import reference
from .attention import attention_backward, attention_forward  # noqa: F401  (the fused attention kernel)
from .elementwise import (
    gelu_backward_parallel,
    gelu_backward_serial,
    gelu_parallel,
    gelu_serial,
    layer_norm_backward_parallel,
    layer_norm_backward_serial,
    layer_norm_parallel,
    layer_norm_serial,
    multiply_parallel,
    scale_parallel,
)
from .embedding import scatter_add_rows
from .loss import (
    cross_entropy_backward_parallel,
    cross_entropy_backward_serial,
    cross_entropy_forward_parallel,
    cross_entropy_forward_serial,
)
from .matmul import MR, NVEC, VECTOR_BYTES, matmul_parallel, matmul_serial
from .optim import adam_update_flat
from .reduce import sum_blocks, sum_blocks_parallel
from .softmax import (
    log_softmax_backward_parallel,
    log_softmax_backward_serial,
    log_softmax_parallel,
    log_softmax_serial,
    softmax_backward_parallel,
    softmax_backward_serial,
    softmax_parallel,
    softmax_serial,
)
from .threads import num_threads, run

__all__ = [
    "matmul", "multiply", "sum_all", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy_forward", "cross_entropy_backward", "gelu", "gelu_backward",
    "layer_norm", "layer_norm_backward", "embedding_backward", "adam_update",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# How `precompile` shares kernels out between processes: the wrappers of one group compile in one process,
# one after the other, because their kernels share compiled helpers (two processes would each compile them);
# the groups slowest first, so that the processes finish together; any other wrapper is a group of its own.
# From an empty cache, float32, the default run's calls in one process: attention 4.4-4.9 s (forward and
# backward share the tile products and copies), matmul 1.6-1.8 s, cross-entropy 1.2-1.4 s; every other
# wrapper 0.4 s or less.
COMPILE_GROUPS = (("attention_forward", "attention_backward"), ("matmul",),
                  ("cross_entropy_forward", "cross_entropy_backward"))
MATMUL_MAX_ROWS_PER_TASK = 64      # rows of A per parallel task (rounded to whole MR-row tiles)
MATMUL_TASKS_PER_THREAD = 2        # split rows of A finer until there are this many tasks per thread
ELEMENTWISE_BLOCK = 1 << 14        # elements per parallel task in gelu and the products
MULTIPLY_MIN_SIZE = 1 << 16        # elements: below, two threads saved nothing (3.8 us either way at 32,768)
SUM_MIN_SIZE = 1 << 12             # elements: below this numpy's sum costs about what a kernel call does
SUM_BLOCK = 1 << 15                # elements per block of the whole-array sum, on one thread or several
PACK_SCRATCH_MAX = 1 << 20         # elements: matmul reuses one packing buffer per thread up to this size

# Single-thread cost estimates, ns per element (per multiply-add for matmul), float32.
MATMUL_NS = 0.012
SOFTMAX_NS, SOFTMAX_BACKWARD_NS = 1.0, 0.2   # softmax: 64-wide rows (attention) cost ~1 ns an element
LOG_SOFTMAX_NS, LOG_SOFTMAX_BACKWARD_NS = 0.7, 0.4
CROSS_ENTROPY_NS, CROSS_ENTROPY_BACKWARD_NS = 0.6, 0.5
GELU_NS, GELU_BACKWARD_NS = 0.4, 0.4
SUM_NS = 0.07                      # the float64-accumulated sum, 131,072-1,048,576 float32
MULTIPLY_NS = 0.15                 # numpy's product streams 131,072-1,048,576 float32 at 0.13-0.17 ns each
LAYER_NORM_NS, LAYER_NORM_BACKWARD_NS = 0.3, 0.26


def _covered(*arrays: np.ndarray) -> bool:
    """True if all arrays share one float dtype the kernels are compiled for."""
    dt = arrays[0].dtype
    return dt in _FLOATS and all(x.dtype == dt for x in arrays)


def _rows(x: np.ndarray) -> np.ndarray:
    """x (..., C) as a C-contiguous (rows, C) array: a view when possible, else one copy."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _work(x: np.ndarray, units: int, ns_per_unit: float) -> float:
    """Estimated single-thread ns of a call doing `units` units of work on x's dtype."""
    return units * ns_per_unit * (x.itemsize / 4)


_scratch = threading.local()


def _pack_buffer(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array for matmul's packed B: a view of this thread's reused buffer when small
    enough (a step's matmuls then pack into the same pages every time), else a fresh array."""
    size = math.prod(shape)
    if size > PACK_SCRATCH_MAX:
        return np.empty(shape, dtype)
    buffers = _scratch.__dict__.setdefault("pack", {})
    buf = buffers.get(dtype)
    if buf is None or buf.size < size:
        buf = buffers[dtype] = np.empty(max(size, 1 << 14), dtype)
    return buf[:size].reshape(shape)


# ----------------------------------------------------------------------------- matmul


def _as_matrices(x: np.ndarray, batch: tuple[int, ...]) -> tuple[np.ndarray, bool, np.ndarray]:
    """The distinct matrices of x (..., r, c) as one C-contiguous 3-D array, and for each of the
    prod(batch) output matrices the index of its x matrix.

    Returns (x3, transposed, index): x3 is (nx, r, c), or (nx, c, r) with transposed=True when x
    is a transposed view (then no copy is made). A zero-stride batch axis (np.broadcast_to)
    holds one distinct matrix.
    """
    if x.ndim == 2:                   # fast path (a few us matter at these sizes): one matrix
        index = np.zeros(math.prod(batch), np.intp)
        if x.flags.c_contiguous:
            return x[None], False, index
        if x.flags.f_contiguous:
            return x.T[None], True, index
    if 0 in x.strides[:-2]:
        x = x[tuple(slice(0, 1) if st == 0 else slice(None) for st in x.strides[:-2])]
    nx = math.prod(x.shape[:-2])
    if x.shape[:-2] == batch:
        index = np.arange(nx)
    else:
        index = np.ascontiguousarray(np.broadcast_to(np.arange(nx).reshape(x.shape[:-2]), batch).ravel())
    x3 = x.reshape((nx,) + x.shape[-2:])
    if x3.flags.c_contiguous:
        return x3, False, index
    if x3.swapaxes(1, 2).flags.c_contiguous:
        return x3.swapaxes(1, 2), True, index
    return np.ascontiguousarray(x3), False, index


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A @ B for a (..., m, k) and b (..., k, n); batch axes broadcast as in numpy."""
    if not _covered(a, b) or a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        return reference.matmul(a, b)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous:   # x @ W for a batch of x: one (rows, k) matrix
        return matmul(a.reshape(-1, k), b).reshape(*a.shape[:-1], n)
    batch = a.shape[:-2] if a.shape[:-2] == b.shape[:-2] else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty(batch + (m, n), a.dtype)
    if out.size == 0:
        return out
    if k == 0:
        out[...] = 0
        return out
    a3, a_trans, a_idx = _as_matrices(a, batch)
    b3, b_trans, b_idx = _as_matrices(b, batch)
    out3 = out.reshape(-1, m, n)
    lanes = VECTOR_BYTES // out.itemsize
    nr = lanes if n <= lanes else NVEC * lanes            # columns per packed panel of B (`panel_width`)
    bp = _pack_buffer((b3.shape[0], math.ceil(n / nr), k, nr), out.dtype)
    # rows of A per task: at most 64, in whole MR-row tiles, spread evenly over the blocks; in
    # parallel also enough blocks to give every thread work (64 x 1024 . 1024 x 64 is one matrix)
    blocks = max(math.ceil(m / MATMUL_MAX_ROWS_PER_TASK),
                 math.ceil(MATMUL_TASKS_PER_THREAD * num_threads() / out3.shape[0]))
    mc = math.ceil(math.ceil(m / blocks) / MR) * MR
    run(matmul_serial, matmul_parallel, _work(out, out.size * k, MATMUL_NS),
        a3, a_trans, a_idx, b3, b_trans, b_idx, bp, out3, mc)
    return out


# ----------------------------------------------------------------------------- product, sum


def _numpy_multiply(a: np.ndarray, b, out: np.ndarray, block: int) -> None:
    """The serial twin of `multiply_parallel` and `scale_parallel` (same arguments): numpy's product, which
    one core cannot beat."""
    np.multiply(a, b, out=out)


def _one_value(x: np.ndarray) -> bool:
    """True if x holds a single value, maybe broadcast (the gradient `Sum` sends back is a zero-stride view)."""
    return x.size == 1 or not any(x.strides)


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b elementwise, with numpy's broadcasting. A large C-contiguous array times another of its shape, or
    times a single value (broadcast or not), goes to the thread policy (two threads, or numpy on one);
    anything else is numpy's product."""
    if max(a.size, b.size) < MULTIPLY_MIN_SIZE or not _covered(a, b):
        return reference.multiply(a, b)
    shape = a.shape if a.shape == b.shape else np.broadcast_shapes(a.shape, b.shape)
    if a.shape == b.shape and a.flags.c_contiguous and b.flags.c_contiguous:
        kernel, x, y = multiply_parallel, a.reshape(-1), b.reshape(-1)
    elif a.shape == shape and a.flags.c_contiguous and _one_value(b):
        kernel, x, y = scale_parallel, a.reshape(-1), b[(0,) * b.ndim]          # an array times one number
    elif b.shape == shape and b.flags.c_contiguous and _one_value(a):
        kernel, x, y = scale_parallel, b.reshape(-1), a[(0,) * a.ndim]
    else:
        return reference.multiply(a, b)
    out = np.empty(shape, a.dtype)
    run(_numpy_multiply, kernel, _work(out, out.size, MULTIPLY_NS), x, y, out.reshape(-1), ELEMENTWISE_BLOCK)
    return out


def sum_all(x: np.ndarray) -> np.ndarray:
    """The sum of every element of x, as a 0-d array of x's dtype (accumulated in float64). A view that is
    not contiguous is summed by numpy: copying it would cost more than the kernel saves."""
    if not _covered(x) or x.size < SUM_MIN_SIZE or not x.flags.c_contiguous:
        return reference.sum_all(x)
    return np.asarray(run(sum_blocks, sum_blocks_parallel, _work(x, x.size, SUM_NS), x.reshape(-1), SUM_BLOCK),
                      x.dtype)


# ----------------------------------------------------------------------------- softmax family


def _rowwise(serial, parallel, ns_per_element: float, *arrays: np.ndarray) -> np.ndarray:
    """Run a per-row kernel over the last axis of same-shaped arrays, into a new array of that shape."""
    out = np.empty(arrays[0].shape, arrays[0].dtype)            # returned whole, not as a view of the rows
    run(serial, parallel, _work(out, out.size, ns_per_element), *[_rows(a) for a in arrays], _rows(out))
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """y = exp(x - max) / sum(exp(x - max)) over the last axis; a row that is all -inf gives zeros."""
    if not _covered(x) or x.ndim == 0 or x.size == 0:
        return reference.softmax(x)
    return _rowwise(softmax_serial, softmax_parallel, SOFTMAX_NS, x)


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = y * (dy - sum(y * dy)) over the last axis."""
    if not _covered(y, dy) or y.ndim == 0 or y.size == 0 or y.shape != dy.shape:
        return reference.softmax_backward(y, dy)
    return _rowwise(softmax_backward_serial, softmax_backward_parallel, SOFTMAX_BACKWARD_NS, y, dy)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """y = (x - max) - log(sum(exp(x - max))) over the last axis."""
    if not _covered(x) or x.ndim == 0 or x.size == 0:
        return reference.log_softmax(x)
    return _rowwise(log_softmax_serial, log_softmax_parallel, LOG_SOFTMAX_NS, x)


def log_softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy - exp(y) * sum(dy) over the last axis, where y = log_softmax(x)."""
    if not _covered(y, dy) or y.ndim == 0 or y.size == 0 or y.shape != dy.shape:
        return reference.log_softmax_backward(y, dy)
    return _rowwise(log_softmax_backward_serial, log_softmax_backward_parallel, LOG_SOFTMAX_BACKWARD_NS, y, dy)


# ----------------------------------------------------------------------------- cross-entropy


def _ce_inputs(logits: np.ndarray, targets, ignore_index):
    """(targets as contiguous int64, ignore_index as an int) if the kernel can take them, else None."""
    if not _covered(logits) or logits.ndim != 2 or logits.shape[1] == 0:
        return None
    t = np.ascontiguousarray(targets, dtype=np.int64)
    if t.shape != logits.shape[:1]:
        return None
    ignore = np.iinfo(np.int64).min if ignore_index is None else int(ignore_index)
    kept = t[t != ignore]
    if kept.size and (kept.min() < 0 or kept.max() >= logits.shape[1]):
        return None                                  # out-of-range target: the reference raises IndexError
    return t, ignore


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int):
    """Per-row (loss (N,), logsum (N,)): logsum_i = log sum_j exp(logits_ij - m_i), m_i the row max, and
    loss_i = logsum_i - (logits[i, t_i] - m_i) (0 where t_i == ignore_index); see reference.py."""
    prepared = _ce_inputs(logits, targets, ignore_index)
    if prepared is None:
        return reference.cross_entropy_forward(logits, targets, ignore_index)
    t, ignore = prepared
    x = np.ascontiguousarray(logits)
    loss = np.empty(x.shape[0], x.dtype)
    logsum = np.empty(x.shape[0], x.dtype)
    run(cross_entropy_forward_serial, cross_entropy_forward_parallel, _work(x, x.size, CROSS_ENTROPY_NS),
        x, t, ignore, loss, logsum)
    return loss, logsum


def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray, logsum: np.ndarray,
                           ignore_index: int, scale: float) -> np.ndarray:
    """dlogits_ij = scale * (exp((logits_ij - m_i) - logsum_i) - [j == t_i]), and 0 on ignored rows."""
    prepared = _ce_inputs(logits, targets, ignore_index)
    if prepared is None or np.shape(logsum) != logits.shape[:1]:
        return reference.cross_entropy_backward(logits, targets, logsum, ignore_index, scale)
    t, ignore = prepared
    x = np.ascontiguousarray(logits)
    lse = np.ascontiguousarray(logsum, dtype=x.dtype)
    d = np.empty_like(x)
    s = x.dtype.type(scale)
    run(cross_entropy_backward_serial, cross_entropy_backward_parallel, _work(x, x.size, CROSS_ENTROPY_BACKWARD_NS),
        x, t, lse, ignore, s, d)
    return d


# ----------------------------------------------------------------------------- gelu, layer norm


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if not _covered(x):
        return reference.gelu(x)
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    run(gelu_serial, gelu_parallel, _work(flat, flat.size, GELU_NS), flat, y, ELEMENTWISE_BLOCK)
    return y.reshape(x.shape)


def gelu_backward(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy * gelu'(x)."""
    if not _covered(x, dy) or x.shape != dy.shape:
        return reference.gelu_backward(x, dy)
    flat = np.ascontiguousarray(x).reshape(-1)
    dflat = np.ascontiguousarray(dy).reshape(-1)
    dx = np.empty_like(flat)
    run(gelu_backward_serial, gelu_backward_parallel, _work(flat, flat.size, GELU_BACKWARD_NS),
        flat, dflat, dx, ELEMENTWISE_BLOCK)
    return dx.reshape(x.shape)


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float):
    """y = (x - mean) * rstd * w + b over the last axis, rstd = 1/sqrt(var + eps); returns (y, mean, rstd)."""
    if not _covered(x, w, b) or x.ndim == 0 or x.shape[-1] == 0 or w.shape != x.shape[-1:] or b.shape != w.shape:
        return reference.layer_norm(x, w, b, eps)
    x2 = _rows(x)
    y = np.empty_like(x2)
    mean = np.empty(x2.shape[0], x.dtype)
    rstd = np.empty(x2.shape[0], x.dtype)
    args = (x2, np.ascontiguousarray(w), np.ascontiguousarray(b), x.dtype.type(eps), y, mean, rstd)
    run(layer_norm_serial, layer_norm_parallel, _work(x2, x2.size, LAYER_NORM_NS), *args)
    return y.reshape(x.shape), mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])


def layer_norm_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, mean: np.ndarray, rstd: np.ndarray):
    """dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; dw = sum dy * xhat; db = sum dy."""
    if (not _covered(dy, x, w, mean, rstd) or x.ndim == 0 or x.shape[-1] == 0 or dy.shape != x.shape
            or w.shape != x.shape[-1:] or mean.shape != x.shape[:-1] or rstd.shape != x.shape[:-1]):
        return reference.layer_norm_backward(dy, x, w, mean, rstd)
    x2, dy2 = _rows(x), _rows(dy)
    w1 = np.ascontiguousarray(w)
    m1 = np.ascontiguousarray(mean).reshape(-1)
    r1 = np.ascontiguousarray(rstd).reshape(-1)
    dx = np.empty_like(x2)
    nblocks = max(1, min(x2.shape[0] // 16, 4 * num_threads()))
    dw, db = run(layer_norm_backward_serial, layer_norm_backward_parallel,
                 _work(x2, x2.size, LAYER_NORM_BACKWARD_NS), dy2, x2, w1, m1, r1, dx, nblocks)
    return dx.reshape(x.shape), dw, db


# ----------------------------------------------------------------------------- embedding


def embedding_backward(ids: np.ndarray, dy: np.ndarray, num: int) -> np.ndarray:
    """dW (num, D) of y[..., :] = W[ids[...], :]: the rows of dy summed into the rows they looked up."""
    if (not _covered(dy) or dy.ndim == 0 or ids.dtype.kind not in "iu" or ids.shape != dy.shape[:-1]
            or (ids.size and not 0 <= ids.min() <= ids.max() < num)):   # the kernel does no bounds checks
        return reference.embedding_backward(ids, dy, num)
    dw = np.zeros((num, dy.shape[-1]), dy.dtype)
    scatter_add_rows(np.ascontiguousarray(ids, np.intp).reshape(-1), _rows(dy), dw)
    return dw


# ----------------------------------------------------------------------------- optimizer


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, beta1: float, beta2: float,
                step_size: float, bias2_root: float, eps: float, l2: float, shrink: float) -> None:
    """One Adam step on p, m, v in place (see reference.adam_update for the math)."""
    if not _covered(p, g, m, v) or not all(x.flags.c_contiguous for x in (p, m, v)) or g.shape != p.shape:
        return reference.adam_update(p, g, m, v, beta1, beta2, step_size, bias2_root, eps, l2, shrink)
    adam_update_flat(p.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1),
                     beta1, beta2, step_size, bias2_root, eps, l2, shrink)
