"""A vectorised max over a 1-D float array, through integer keys.

LLVM will not vectorise a floating-point max reduction coming from Numba (it would need
"no NaNs" guarantees on the compare), so the loop stays scalar: ~1.5 cycles per element,
slower than the exp that follows it in softmax. Integer max reductions do vectorise. The
trick: the IEEE bits of a float, read as a signed integer i, sort like the floats for
non-negative values and backwards for negative ones; flipping all but the sign bit of the
negative ones,

    key(i) = i ^ ((i >> (bits - 1)) & 0x7F..F)

gives integers that sort exactly like the floats (-inf < ... < -0 <= 0 < ... < inf < NaN).
key is its own inverse, so the largest key maps straight back to the largest float.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .flags import ERROR_MODEL


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def row_max_f32(x: np.ndarray) -> np.float32:
    """max(x) of a 1-D C-contiguous float32 array (-inf if empty)."""
    bits = x.view(np.int32)
    low = np.int32(0x7FFFFFFF)
    sign = np.int32(31)
    best = np.int32(-(2 ** 31))                   # key of nothing: below every float's key
    for j in range(bits.size):
        i = bits[j]
        key = i ^ ((i >> sign) & low)
        best = key if key > best else best
    if bits.size == 0:
        return np.float32(-np.inf)
    b = np.int32(best)
    return np.int32(b ^ ((b >> sign) & low)).view(np.float32)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def row_max_f64(x: np.ndarray) -> np.float64:
    """max(x) of a 1-D C-contiguous float64 array (-inf if empty)."""
    bits = x.view(np.int64)
    low = np.int64(0x7FFFFFFFFFFFFFFF)
    sign = np.int64(63)
    best = np.int64(-(2 ** 63))
    for j in range(bits.size):
        i = bits[j]
        key = i ^ ((i >> sign) & low)
        best = key if key > best else best
    if bits.size == 0:
        return -np.inf
    b = np.int64(best)
    return np.int64(b ^ ((b >> sign) & low)).view(np.float64)


def row_max(x: np.ndarray):
    """max of a 1-D float array: `row_max_f32`/`row_max_f64` inside Numba, np.max in plain Python."""
    return np.max(x, initial=-np.inf)


@overload(row_max, inline="always")
def _row_max_numba(x):
    if isinstance(x, types.Array) and x.dtype == types.float32:
        return lambda x: row_max_f32(x)
    if isinstance(x, types.Array) and x.dtype == types.float64:
        return lambda x: row_max_f64(x)
    return None
