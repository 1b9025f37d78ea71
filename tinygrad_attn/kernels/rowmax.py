"""A vectorised max over a row of a 2-D float array, through integer keys.

LLVM will not vectorise a floating-point max reduction coming from Numba (it would need
"no NaNs" guarantees on the compare), so the loop stays scalar: ~1.5 cycles per element,
slower than the exp that follows it in softmax. Integer max reductions do vectorise. The
trick: the IEEE bits of a float, read as a signed integer i, sort like the floats for
non-negative values and backwards for negative ones; flipping all but the sign bit of the
negative ones,

    key(i) = i ^ ((i >> (bits - 1)) & 0x7F..F)

gives integers that sort exactly like the floats (-inf < ... < -0 <= 0 < ... < inf < NaN).
key is its own inverse, so the largest key maps straight back to the largest float.

The functions take the whole 2-D array and a row index, not a row slice: a slice (and its integer view)
per row cost as much as the row's work at 64 columns (softmax (2048, 64): 182 -> 92 us).
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from .flags import ERROR_MODEL


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float32/float64 scalar as an int32/int64 (a bitcast, no memory access)."""
    if not isinstance(x, types.Float):
        return None
    int_type = types.int32 if x.bitwidth == 32 else types.int64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(int_type))
    return int_type(x), codegen


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def row_max_f32(x: np.ndarray, i: int) -> np.float32:
    """max(x[i]) of a 2-D float32 array (-inf if the rows are empty)."""
    low = np.int32(0x7FFFFFFF)
    sign = np.int32(31)
    best = np.int32(-(2 ** 31))                   # key of nothing: below every float's key
    for j in range(x.shape[1]):
        b = _bits(x[i, j])                        # no integer view of the array: a view per row costs
        key = b ^ ((b >> sign) & low)
        best = key if key > best else best
    if x.shape[1] == 0:
        return np.float32(-np.inf)
    return np.int32(best ^ ((best >> sign) & low)).view(np.float32)


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def row_max_f64(x: np.ndarray, i: int) -> np.float64:
    """max(x[i]) of a 2-D float64 array (-inf if the rows are empty)."""
    low = np.int64(0x7FFFFFFFFFFFFFFF)
    sign = np.int64(63)
    best = np.int64(-(2 ** 63))
    for j in range(x.shape[1]):
        b = _bits(x[i, j])
        key = b ^ ((b >> sign) & low)
        best = key if key > best else best
    if x.shape[1] == 0:
        return -np.inf
    return np.int64(best ^ ((best >> sign) & low)).view(np.float64)


def row_max(x: np.ndarray, i: int):
    """max of row i of a 2-D float array: `row_max_f32`/`row_max_f64` inside Numba, np.max in plain Python."""
    return np.max(x[i], initial=-np.inf)


@overload(row_max, inline="always")
def _row_max_numba(x, i):
    if isinstance(x, types.Array) and x.dtype == types.float32:
        return lambda x, i: row_max_f32(x, i)
    if isinstance(x, types.Array) and x.dtype == types.float64:
        return lambda x, i: row_max_f64(x, i)
    return None
