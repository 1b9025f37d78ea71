"""Creators: new tensors from a shape, a value or a range, as PyTorch names them.

Each takes `requires_grad=` and `dtype=` as keywords only (float32 by default; `randint` int64,
`zeros_like`/`ones_like` the input's dtype). Shapes may be given as `zeros(2, 3)` or `zeros((2, 3))`.
Random draws come from the package generator, so `ta.manual_seed` makes them repeatable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .random import rng
from .tensor import FLOATS, Tensor
from .validate import check_dtype, check_int, check_number, check_requires_grad, check_shape


def _new(op: str, make: Callable[[np.dtype], np.ndarray], requires_grad: bool, dtype, floats_only=False) -> Tensor:
    """make(dtype) wrapped as a leaf, after checking dtype and requires_grad in the creator's name."""
    dtype = check_dtype(op, np.float32 if dtype is None else dtype)
    if floats_only and dtype not in FLOATS:
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    requires_grad = check_requires_grad(op, dtype, requires_grad)
    return Tensor._make(np.asarray(make(dtype), dtype), requires_grad, None)


def zeros(*shape, requires_grad: bool = False, dtype=None) -> Tensor:
    shape = check_shape("zeros", shape)
    return _new("zeros", lambda d: np.zeros(shape, d), requires_grad, dtype)


def ones(*shape, requires_grad: bool = False, dtype=None) -> Tensor:
    shape = check_shape("ones", shape)
    return _new("ones", lambda d: np.ones(shape, d), requires_grad, dtype)


def full(shape, value: float, *, requires_grad: bool = False, dtype=None) -> Tensor:
    """Every element `value`."""
    shape, value = check_shape("full", (shape,)), check_number("full", "value", value)
    return _new("full", lambda d: np.full(shape, value, d), requires_grad, dtype)


def eye(n: int, m: int | None = None, *, requires_grad: bool = False, dtype=None) -> Tensor:
    """The (n, m) identity matrix (m defaults to n)."""
    n = check_int("eye", "n", n, min=0)
    m = n if m is None else check_int("eye", "m", m, min=0)
    return _new("eye", lambda d: np.eye(n, m, dtype=d), requires_grad, dtype)


def zeros_like(t, *, requires_grad: bool = False, dtype=None) -> Tensor:
    """Zeros of t's shape, in t's dtype unless `dtype=` says otherwise."""
    arr = t.data if isinstance(t, Tensor) else np.asarray(t)
    return _new("zeros_like", lambda d: np.zeros(arr.shape, d), requires_grad, arr.dtype if dtype is None else dtype)


def ones_like(t, *, requires_grad: bool = False, dtype=None) -> Tensor:
    """Ones of t's shape, in t's dtype unless `dtype=` says otherwise."""
    arr = t.data if isinstance(t, Tensor) else np.asarray(t)
    return _new("ones_like", lambda d: np.ones(arr.shape, d), requires_grad, arr.dtype if dtype is None else dtype)


def randn(*shape, requires_grad: bool = False, dtype=None) -> Tensor:
    """Standard normal samples N(0, 1)."""
    shape = check_shape("randn", shape)
    return _new("randn", lambda d: rng().standard_normal(shape).astype(d), requires_grad, dtype, floats_only=True)


def rand(*shape, requires_grad: bool = False, dtype=None) -> Tensor:
    """Uniform samples on [0, 1)."""
    shape = check_shape("rand", shape)
    return _new("rand", lambda d: rng().random(shape).astype(d), requires_grad, dtype, floats_only=True)


def randint(low: int, high: int, shape=None, *, requires_grad: bool = False, dtype=np.int64) -> Tensor:
    """Integers drawn uniformly from [low, high); `randint(high, shape)` means low = 0, as PyTorch."""
    if shape is None:
        low, high, shape = 0, low, high
    low, high = check_int("randint", "low", low), check_int("randint", "high", high)
    if high <= low:
        raise ValueError(f"randint: high must be greater than low, got low={low}, high={high}")
    shape = check_shape("randint", (shape,))
    return _new("randint", lambda d: rng().integers(low, high, size=shape).astype(d), requires_grad, dtype)


def arange(start: float, stop: float | None = None, step: float = 1, *, requires_grad: bool = False,
           dtype=None) -> Tensor:
    """start, start + step, ... up to (not including) stop, as `range`; `arange(n)` is 0 .. n-1."""
    start, step = check_number("arange", "start", start), check_number("arange", "step", step)
    if stop is None:
        start, stop = 0.0, start
    stop = check_number("arange", "stop", stop)
    if step == 0:
        raise ValueError("arange: step must not be 0")
    return _new("arange", lambda d: np.arange(start, stop, step).astype(d), requires_grad, dtype)
