"""A vectorisable exp(x) for float32 and float64 scalars.

Numba's `np.exp` calls libm one element at a time (no SVML here), which blocks LLVM from
vectorising a softmax loop. This version is plain arithmetic, so once inlined into a loop it
becomes AVX-512 code:

    exp(x) = 2^n * exp(r),   n = round(x / ln2),   r = x - n*ln2  in [-ln2/2, ln2/2]

* Range reduction (Cody-Waite): ln2 is split into a short `hi` part (few mantissa bits, so
  n*hi is exact) and a tiny `lo` correction, so r keeps full precision.
* exp(r) on the small interval is a polynomial: Cephes' minimax fit (degree 7) for float32,
  the Taylor series to r^12 for float64 (truncation error < 2e-16).
* 2^n is built directly from bits: (n + bias) << mantissa_bits is the float 2^n. Splitting it
  as 2^(n//2) * 2^(n - n//2) keeps both factors normal, so results that underflow to
  denormals or overflow to inf come out right.
* Special inputs: x is clamped before the integer step (so n cannot overflow); -inf and very
  negative x give 0 (or a denormal), large x gives inf, NaN is passed through.

Measured accuracy: float32 max error 1.01 ulp against the exact (float64) exp, over every 7th
float32 in [-104, 89] (3.2e8 inputs); float64 max 2 ulp against np.exp (2e6 random inputs).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .flags import ERROR_MODEL

# Fast-math without "reassoc": the order of the range reduction and of the 2^n1 * 2^n2 scaling
# matters (regrouping (er * s1) * s2 as er * (s1 * s2) would overflow near exp(88.7)).
_EXACT_ORDER = {"nsz", "arcp", "contract", "afn"}

_LOG2E_F32 = np.float32(1.4426950408889634)
_HALF_F32 = np.float32(0.5)
_ONE_F32 = np.float32(1.0)
_LN2_HI_F32 = np.float32(0.693359375)             # 9 significant bits: n * hi is exact for |n| < 2^15
_LN2_LO_F32 = np.float32(-2.12194440e-4)          # ln2 - hi
_LO_F32 = np.float32(-104.0)                      # exp(-104) < smallest denormal / 2: rounds to 0
_HI_F32 = np.float32(89.0)                        # exp(89) > max float32: inf
_BIAS_F32 = np.int32(127)
_SHIFT_F32 = np.int32(23)
# Cephes expf polynomial: exp(r) ~ 1 + r + r^2 * (P0 + P1 r + ... + P5 r^5) on [-ln2/2, ln2/2]
_P0 = np.float32(5.0000001201e-1)
_P1 = np.float32(1.6666665459e-1)
_P2 = np.float32(4.1665795894e-2)
_P3 = np.float32(8.3334519073e-3)
_P4 = np.float32(1.3981999507e-3)
_P5 = np.float32(1.9875691500e-4)

_LOG2E_F64 = np.float64(1.4426950408889634)
_LN2_HI_F64 = np.float64(6.93147180369123816490e-01)   # fdlibm split: 32 significant bits
_LN2_LO_F64 = np.float64(1.90821492927058770002e-10)
_LO_F64 = np.float64(-746.0)
_HI_F64 = np.float64(710.0)
_BIAS_F64 = np.int64(1023)
_SHIFT_F64 = np.int64(52)
# 1/k! for k = 12 .. 2 (Horner order)
_Q = tuple(np.float64(1.0 / np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(12, 1, -1))


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=_EXACT_ORDER)
def exp_reduced_f32(xc: np.float32):
    """(exp(r), n) with xc = n ln2 + r, |r| <= ln2/2: the Cody-Waite reduction and the Cephes polynomial."""
    n = np.floor(xc * _LOG2E_F32 + _HALF_F32)
    r = (xc - n * _LN2_HI_F32) - n * _LN2_LO_F32
    p = _P5 * r + _P4
    p = p * r + _P3
    p = p * r + _P2
    p = p * r + _P1
    p = p * r + _P0
    return p * (r * r) + r + _ONE_F32, np.int32(n)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=_EXACT_ORDER)
def exp_f32(x: np.float32) -> np.float32:
    """exp(x) for a float32 x, within 2 ulp; branch-free so it vectorises when inlined."""
    er, ni = exp_reduced_f32(min(max(x, _LO_F32), _HI_F32))
    n1 = ni >> np.int32(1)
    s1 = np.int32((n1 + _BIAS_F32) << _SHIFT_F32).view(np.float32)         # 2^n1
    s2 = np.int32((ni - n1 + _BIAS_F32) << _SHIFT_F32).view(np.float32)    # 2^(n - n1)
    y = er * s1 * s2
    return x if x != x else y                                                 # NaN in, NaN out


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=_EXACT_ORDER)
def exp_reduced_f64(xc: np.float64):
    """(exp(r), n) with xc = n ln2 + r, |r| <= ln2/2: fdlibm's split of ln2 and the Taylor series to r^12."""
    n = np.floor(xc * _LOG2E_F64 + 0.5)
    r = (xc - n * _LN2_HI_F64) - n * _LN2_LO_F64
    p = _Q[0]
    p = p * r + _Q[1]
    p = p * r + _Q[2]
    p = p * r + _Q[3]
    p = p * r + _Q[4]
    p = p * r + _Q[5]
    p = p * r + _Q[6]
    p = p * r + _Q[7]
    p = p * r + _Q[8]
    p = p * r + _Q[9]
    p = p * r + _Q[10]
    return p * (r * r) + r + 1.0, np.int64(n)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=_EXACT_ORDER)
def exp_f64(x: np.float64) -> np.float64:
    """exp(x) for a float64 x, within 2 ulp; branch-free so it vectorises when inlined."""
    er, ni = exp_reduced_f64(min(max(x, _LO_F64), _HI_F64))
    n1 = ni >> np.int64(1)
    s1 = np.int64((n1 + _BIAS_F64) << _SHIFT_F64).view(np.float64)
    s2 = np.int64((ni - n1 + _BIAS_F64) << _SHIFT_F64).view(np.float64)
    y = er * s1 * s2
    return x if x != x else y


# exp(x) for x <= 0 only, as softmax needs it (x - max <= 0): the inputs where every result is a normal float
# or 0, so that 2^n is one factor and needs no upper clamp (5-7 fewer vector instructions of about 30).
_LO_NONPOS_F32 = np.float32(-87.0)                # exp(-87) = 1.6e-38, just above float32's smallest normal
_LO_NONPOS_F64 = np.float64(-708.0)               # exp(-708) = 3.3e-308, float64's
_ZERO_F32 = np.float32(0.0)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=_EXACT_ORDER)
def exp_nonpositive_f32(x: np.float32) -> np.float32:
    """exp(x) for a float32 x <= 0 (or -inf, NaN), as `exp_f32` but 0 below -87 (where the exact result is
    below 1.6e-38: a denormal, or 0); NaN passes through (the clamp keeps it, since NaN < lo is false)."""
    er, n = exp_reduced_f32(_LO_NONPOS_F32 if x < _LO_NONPOS_F32 else x)      # -126 <= n <= 0
    y = er * np.int32((n + _BIAS_F32) << _SHIFT_F32).view(np.float32)          # exp(r) * 2^n
    return _ZERO_F32 if x < _LO_NONPOS_F32 else y


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=_EXACT_ORDER)
def exp_nonpositive_f64(x: np.float64) -> np.float64:
    """exp(x) for a float64 x <= 0 (or -inf, NaN), as `exp_f64` but 0 below -708."""
    er, n = exp_reduced_f64(_LO_NONPOS_F64 if x < _LO_NONPOS_F64 else x)      # -1022 <= n <= 0
    y = er * np.int64((n + _BIAS_F64) << _SHIFT_F64).view(np.float64)
    return 0.0 if x < _LO_NONPOS_F64 else y


def _by_dtype(exp32, exp64):
    """An @overload implementation that picks the float32 or the float64 scalar function by x's type."""
    def implementation(x):
        if x == types.float32:
            return lambda x: exp32(x)
        if x == types.float64:
            return lambda x: exp64(x)
        return None
    return implementation


def fexp(x):
    """exp(x) for a float32/float64 scalar: `exp_f32` or `exp_f64` inside Numba, np.exp in plain Python."""
    return np.exp(x)


def fexp_nonpositive(x):
    """exp(x) for a float32/float64 scalar x <= 0: `exp_nonpositive_f32`/`_f64` inside Numba, np.exp in Python."""
    return np.exp(x)


overload(fexp, inline="always")(_by_dtype(exp_f32, exp_f64))
overload(fexp_nonpositive, inline="always")(_by_dtype(exp_nonpositive_f32, exp_nonpositive_f64))
