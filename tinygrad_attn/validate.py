"""Argument checks shared by every op, so each error names the op and the offending value the same way.

Every function takes the op's name first (as the user would call it: "sum", "reshape", "zeros", "SGD") and
either returns the argument in a normal form or raises a ValueError/TypeError whose message starts with
"{op}: " and shows the bad value. Nothing here knows Tensor; a tensor-like argument is read through `.data`.

    check_axis(op, axis, ndim, dim=None, single=False) -> None | int | tuple[int, ...]
        `axis=` or its PyTorch spelling `dim=` (not both), ints in [-ndim, ndim), made non-negative;
        a tuple/list gives a tuple (no repeats); `single=True` refuses a tuple. A 0-d tensor has axes -1 and 0.
    check_keepdims(op, keepdims, keepdim=None) -> bool          `keepdims=` or `keepdim=`
    check_shape(op, shape, allow_minus_one=False) -> tuple[int, ...]
        `f(2, 3)` or `f((2, 3))` style sizes: ints (numpy ints too) >= 0 (or -1, for reshape/expand to resolve).
    check_int(op, name, value, min=None) -> int                 an int (not bool, not float), >= min
    check_number(op, name, value, min=None, max=None, min_open=False) -> float
        a real number (not bool, not str; a 0-d array or Tensor is read as its value), min <= value <= max
        (value > min with `min_open=True`).
    check_dtype(op, dtype) -> np.dtype                          a bool, integer or float dtype (not object/str/complex)
    check_requires_grad(op, dtype, requires_grad) -> bool       only float32/float64 may require grad
    index_array(op, value) -> np.ndarray                        a mask or integer indices (no gradient)
    broadcast_shape(op, *shapes) -> tuple[int, ...]             numpy broadcasting, or an error naming the shapes

Example: `lr = check_number("SGD", "lr", lr, min=0)` raises `TypeError: SGD: lr must be a number, got '0.1'`.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_axis(op: str, axis, ndim: int, dim=None, single: bool = False):
    """`axis` (or `dim`) as None, a non-negative int, or a tuple of them; raise naming the op otherwise."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: give axis= or dim=, not both")
        axis = dim
    if axis is None:
        return None
    many = isinstance(axis, (tuple, list))
    if many and single:
        raise TypeError(f"{op}: axis must be a single int, got {axis!r}")
    out = []
    for a in axis if many else (axis,):
        if not _is_int(a):
            raise TypeError(f"{op}: axis must be an int{'' if single else ' or a tuple of ints'}, got {axis!r}")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(out) if many else out[0]


def check_keepdims(op: str, keepdims, keepdim=None) -> bool:
    """`keepdims=` or its PyTorch spelling `keepdim=`, as a bool."""
    if keepdim is not None:
        if keepdims:
            raise TypeError(f"{op}: give keepdims= or keepdim=, not both")
        keepdims = keepdim
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"{op}: keepdims must be True or False, got {keepdims!r}")
    return bool(keepdims)


def check_shape(op: str, shape, allow_minus_one: bool = False) -> tuple[int, ...]:
    """Sizes given as `f(2, 3)` or `f((2, 3))` as a tuple of ints >= 0 (-1 allowed where one size is inferred)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(shape)
    if not all(_is_int(n) for n in shape):
        raise TypeError(f"{op}: sizes must be ints, got {shape!r}")
    low = -1 if allow_minus_one else 0
    if any(n < low for n in shape):
        raise ValueError(f"{op}: negative size in shape {shape}")
    return tuple(int(n) for n in shape)


def check_int(op: str, name: str, value, min: int | None = None) -> int:
    """`value` as an int (a bool or a float is refused), at least `min`."""
    if not _is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {value!r} ({type(value).__name__})")
    if min is not None and value < min:
        raise ValueError(f"{op}: {name} must be >= {min}, got {name}={value}")
    return int(value)


def check_number(op: str, name: str, value, min: float | None = None, max: float | None = None,
                 min_open: bool = False) -> float:
    """`value` as a float: a real number (int, float, numpy number, a one-element array or Tensor; not bool or
    str) in [min, max]."""
    data = value.data if isinstance(getattr(value, "data", None), np.ndarray) else value
    if isinstance(data, np.ndarray) and data.shape == () and data.dtype.kind in "iuf":
        value = data.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {value!r} ({type(value).__name__})")
    given, value = value, float(value)
    below = min is not None and not (value > min if min_open else value >= min)   # NaN is out of any range
    if below or max is not None and not value <= max:
        low = None if min is None else f"{'>' if min_open else '>='} {min:g}"
        high = None if max is None else f"<= {max:g}"
        bounds = f"in [{min:g}, {max:g}]" if low and high and not min_open else " and ".join(filter(None, (low, high)))
        raise ValueError(f"{op}: {name} must be {bounds}, got {given!r}")
    return value


def check_dtype(op: str, dtype) -> np.dtype:
    """`dtype` as a numpy dtype that a tensor can hold: bool, an integer or a float (no object, str, complex)."""
    try:
        out = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: {dtype!r} is not a dtype") from None
    if out.kind not in "biuf":
        raise TypeError(f"{op}: dtype must be bool, an integer or a float dtype, got {out}")
    return out


def check_requires_grad(op: str, dtype: np.dtype, requires_grad) -> bool:
    """Only float32/float64 tensors can require grad."""
    if requires_grad and np.dtype(dtype) not in FLOATS:
        raise TypeError(f"{op}: only float32/float64 tensors can require grad, got dtype {np.dtype(dtype)}")
    return bool(requires_grad)


def index_array(op: str, value) -> np.ndarray:
    """An index-like argument (mask, indices, targets: numpy array, list, Tensor) as a numpy array with no
    gradient: bool stays bool, integers become int64 where unsigned, whole-number floats become int64."""
    data = value.data if isinstance(getattr(value, "data", None), np.ndarray) else value
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{op}: expected integer or boolean indices, got {value!r}")
    try:
        arr = np.asarray(data)
    except ValueError:
        raise ValueError(f"{op}: indices must form a rectangular array, got {value!r}") from None
    if arr.dtype == np.bool_ or arr.dtype.kind in "iu":
        return arr.astype(np.int64) if arr.dtype.kind == "u" else arr
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise TypeError(f"{op}: expected integer or boolean indices, got dtype {arr.dtype} with shape {arr.shape}")


def broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape numpy broadcasting gives, or a ValueError naming the op and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None
