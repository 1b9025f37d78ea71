"""The graph engine: Tensor, `apply` (records an op in the graph), backward, hooks, `no_grad`, `detect_anomaly`.

A Tensor holds a numpy array. When an op runs on tensors that require grad, the output remembers
the Function that made it (`_ctx`), and the Function remembers its inputs (`parents`): that chain
is the graph. `backward()` walks it once, outputs first, in topological order, with an explicit
list instead of recursion, so a chain of any length works. Most methods below are one to three
lines composing the primitive Functions of `ops.py`; argument checks live in `validate.py`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Sequence

import numpy as np

from . import debug, ops
from .debug import detect_anomaly
from .function import Function
from .validate import (
    FLOATS,
    broadcast_shape,
    check_axis,
    check_dtype,
    check_int,
    check_keepdims,
    check_number,
    check_requires_grad,
    check_shape,
    index_array,
)

__all__ = ["FLOATS", "Tensor", "apply", "broadcast_shape", "cat", "detect_anomaly", "index_array", "matmul",
           "maximum", "minimum", "no_grad", "promote", "stack", "where"]
_grad_enabled = True


class no_grad(contextlib.ContextDecorator):
    """`with ta.no_grad():` (or as a decorator) runs ops without recording a graph."""

    def __enter__(self) -> None:
        global _grad_enabled
        self.previous, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc) -> None:
        global _grad_enabled
        _grad_enabled = self.previous


class _Freed:
    """Stands in for a Function whose graph `backward` has already released."""


def _keep(g: np.ndarray) -> np.ndarray:
    """g to store as a `.grad`: g itself if nothing else holds it, else a copy (a user may change `.grad` in place).

    Like PyTorch's AccumulateGrad, which steals a gradient whose use count says it is the only holder. Here:
    an array that owns its memory (not a view) and has no reference but `backward`'s local `g`, this
    function's argument and getrefcount's own (3). A gradient an op kept or passed to two inputs (Add gives
    the same g to both) has more, and is copied. This saves copying every parameter's gradient every step.
    """
    return g if g.base is None and sys.getrefcount(g) <= 3 else g.copy()


def _send_to_parents(ctx: Function, g: np.ndarray, grads: dict[int, np.ndarray]) -> None:
    """Run ctx's backward on g and add each input's gradient into `grads` (a function of its own, so that
    no reference to a gradient outlives it: see `_keep`)."""
    input_grads = ctx.backward(g)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(ctx.parents):
        raise RuntimeError(f"backward of {type(ctx).__name__} returned {len(input_grads)} gradients "
                           f"for {len(ctx.parents)} inputs")
    if debug.anomaly or ctx.site is not None:
        debug.check_anomaly(ctx, g, input_grads)
    for parent, pg, needed in zip(ctx.parents, input_grads, ctx.needs_input_grad):
        if not needed or pg is None:
            continue
        if np.shape(pg) != parent.shape:
            raise RuntimeError(f"backward of {type(ctx).__name__} gave a gradient of shape {np.shape(pg)} "
                               f"for an input of shape {parent.shape}")
        grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else pg


class TensorIndexError(IndexError, ValueError):
    """An index that does not fit the tensor (an IndexError, and a ValueError as the contract asks)."""


def apply(fn: type[Function], *inputs: Tensor, **kwargs) -> Tensor:
    """Run op `fn` on the inputs' arrays; if any input requires grad, link the output into the graph."""
    ctx = fn()
    needs = tuple([t.requires_grad for t in inputs]) if _grad_enabled else (False,) * len(inputs)
    record = True in needs
    ctx.needs_input_grad = needs
    out = ctx.forward(*[t.data for t in inputs], **kwargs)
    if not record:
        return Tensor._make(out, False, None)
    ctx.parents = inputs
    if debug.anomaly:
        ctx.site = debug.user_line()
    return Tensor._make(out, True, ctx)


Function.apply = classmethod(apply)  # so a user-written op runs as `MyOp.apply(x, y)`


def _as_array(data, dtype) -> np.ndarray:
    """data as a new numpy array: float arrays keep float32/float64, bool stays bool, the rest float32."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = check_dtype("Tensor", dtype)
    if isinstance(data, (str, bytes)):
        raise TypeError(f"Tensor: cannot make a tensor from a string, got {data!r}")
    try:
        arr = np.array(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"Tensor: data must form one rectangular numeric array (ragged nested lists?): {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: cannot make a tensor from data of dtype {arr.dtype}")
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype in FLOATS and isinstance(data, (np.ndarray, np.generic)) or arr.dtype == np.bool_:
        return arr
    return arr.astype(np.float32)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class Tensor:
    """An n-dimensional array that records the ops applied to it, so gradients can flow back.

    `Tensor(data, requires_grad=False, dtype=None)`: float numpy arrays keep float32/float64, bool
    data stays bool, anything else becomes float32 unless `dtype=` says otherwise.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "_hooks", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array * tensor -> Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self.requires_grad = check_requires_grad("Tensor", self.data.dtype, requires_grad)
        self.grad: np.ndarray | None = None
        self._ctx: Function | None = None
        self._retain, self._hooks = False, None

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool, ctx: Function | None) -> Tensor:
        t = cls.__new__(cls)
        data = data if type(data) is np.ndarray else np.asarray(data)   # a 0-d result stays an array
        t.data, t.grad, t.requires_grad, t._ctx, t._retain, t._hooks = data, None, requires_grad, ctx, False, None
        return t

    # ------------------------------------------------------------------ plain attributes
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._ctx is None)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float | bool:
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor has an item, this one has shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.data, False, None)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep theirs)."""
        self._retain = True

    def register_hook(self, fn: Callable[[np.ndarray], np.ndarray | None]) -> debug.HookHandle:
        """Call `fn(grad)` once per backward with this tensor's complete gradient; an array it returns
        replaces the gradient (for `.grad` and for everything upstream). Returns a handle with `.remove()`."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if not callable(fn):
            raise TypeError(f"register_hook: fn must be callable, got {fn!r}")
        if self._hooks is None:
            self._hooks = {}
        return debug.HookHandle(self._hooks, fn)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate dL/dx into `.grad` of every leaf x that requires grad, where L is this tensor
        (or sum(self * grad) when `grad` is given). Frees the graph unless `retain_graph=True`."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input had requires_grad=True)")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward: grad must be given for a non-scalar output of shape {self.shape}")
            grad = np.ones(self.shape, self.dtype)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
            if grad.dtype.kind not in "biuf":
                raise TypeError(f"backward: grad must be a numpy array or Tensor of numbers, got dtype {grad.dtype}")
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {self.shape}")
            grad = grad.astype(self.dtype, copy=False)
        grads = {id(self): grad}
        del grad                                                  # the seed's only holder is now `grads`
        for node in self._topological_order():
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if type(g) is not np.ndarray or g.dtype != node.dtype:   # an input of another float dtype
                g = np.asarray(g, node.dtype)
            if node._hooks:
                g = node._run_hooks(g)
            ctx = node._ctx
            if ctx is None or node._retain:
                node.grad = _keep(g) if node.grad is None else node.grad + g
            if ctx is None:
                continue
            if ctx is _Freed:
                raise RuntimeError("backward: this graph was freed by an earlier backward(); "
                                   "pass retain_graph=True to the first call to go through it twice")
            _send_to_parents(ctx, g, grads)
            if not retain_graph:
                node._ctx = _Freed                               # drop saved arrays and parents now
        return None

    def _run_hooks(self, g: np.ndarray) -> np.ndarray:
        for fn in list(self._hooks.values()):
            out = fn(g)
            if out is not None:
                out = np.asarray(out.data if isinstance(out, Tensor) else out, self.dtype)
                if out.shape != self.shape:
                    raise RuntimeError(f"register_hook: the hook returned a gradient of shape {out.shape} "
                                       f"for a tensor of shape {self.shape}")
                g = out
        return g

    def _topological_order(self) -> list[Tensor]:
        """Every tensor this one depends on (through tensors that require grad), outputs first."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            ctx = node._ctx
            if ctx is not None and ctx is not _Freed:
                stack.extend((p, False) for p in ctx.parents if p.requires_grad and id(p) not in visited)
        return order[::-1]

    # ------------------------------------------------------------------ operators
    def _operand(self, other) -> Tensor:
        """`other` as a Tensor: a Python or numpy scalar takes self's float dtype, arrays their own."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, np.number, np.bool_)) or (isinstance(other, np.ndarray) and other.ndim == 0):
            return Tensor._make(np.asarray(other, self.dtype if self.dtype in FLOATS else np.float32), False, None)
        return Tensor(other)

    def _binary(self, fn: type[Function], other, reflected: bool = False) -> Tensor:
        a, b = (self._operand(other), self) if reflected else (self, self._operand(other))
        if a.shape != b.shape:
            broadcast_shape(fn.__name__.lower(), a.shape, b.shape)
        if a.dtype not in FLOATS or b.dtype not in FLOATS:    # bool/int operands compute as float
            target = a.dtype if a.dtype in FLOATS else b.dtype if b.dtype in FLOATS else np.dtype(np.float32)
            a, b = (t if t.dtype in FLOATS else Tensor._make(t.data.astype(target), False, None) for t in (a, b))
        return apply(fn, a, b)

    def __add__(self, other): return self._binary(ops.Add, other)
    def __radd__(self, other): return self._binary(ops.Add, other, reflected=True)
    def __sub__(self, other): return self._binary(ops.Sub, other)
    def __rsub__(self, other): return self._binary(ops.Sub, other, reflected=True)
    def __mul__(self, other): return self._binary(ops.Mul, other)
    def __rmul__(self, other): return self._binary(ops.Mul, other, reflected=True)
    def __truediv__(self, other): return self._binary(ops.Div, other)
    def __rtruediv__(self, other): return self._binary(ops.Div, other, reflected=True)
    def __pow__(self, other): return self._binary(ops.Pow, other)
    def __rpow__(self, other): return self._binary(ops.Pow, other, reflected=True)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(self._operand(other), self)
    def __neg__(self): return apply(ops.Neg, self._float("neg"))
    add, sub, mul, div, pow, neg, matmul = __add__, __sub__, __mul__, __truediv__, __pow__, __neg__, __matmul__

    def _compare(self, op: str, other, numpy_op) -> Tensor:
        other = self._operand(other)
        broadcast_shape(op, self.shape, other.shape)
        return Tensor._make(numpy_op(self.data, other.data), False, None)

    def __lt__(self, other): return self._compare("lt", other, np.less)
    def __le__(self, other): return self._compare("le", other, np.less_equal)
    def __gt__(self, other): return self._compare("gt", other, np.greater)
    def __ge__(self, other): return self._compare("ge", other, np.greater_equal)
    def __eq__(self, other): return self._compare("eq", other, np.equal)
    def __ne__(self, other): return self._compare("ne", other, np.not_equal)

    # ------------------------------------------------------------------ casts
    def astype(self, dtype) -> Tensor:
        """A float-to-float cast is differentiable (the gradient comes back in self's dtype); a cast to bool
        or an integer dtype (or from one) carries no gradient."""
        dtype = check_dtype("astype", dtype)
        if dtype == self.dtype:
            return self
        if dtype in FLOATS and self.dtype in FLOATS:
            return apply(ops.Cast, self, dtype=dtype)
        return Tensor._make(self.data.astype(dtype), False, None)

    def float(self) -> Tensor: return self.astype(np.float32)
    def double(self) -> Tensor: return self.astype(np.float64)

    # ------------------------------------------------------------------ elementwise math
    def _float(self, op: str) -> Tensor:
        if self.dtype not in FLOATS:
            raise TypeError(f"{op}: expected a float32 or float64 tensor, got dtype {self.dtype} (shape {self.shape})")
        return self

    def exp(self) -> Tensor: return apply(ops.Exp, self._float("exp"))
    def log(self) -> Tensor: return apply(ops.Log, self._float("log"))
    def sqrt(self) -> Tensor: return apply(ops.Sqrt, self._float("sqrt"))
    def abs(self) -> Tensor: return apply(ops.Abs, self._float("abs"))
    def tanh(self) -> Tensor: return apply(ops.Tanh, self._float("tanh"))
    def sigmoid(self) -> Tensor: return apply(ops.Sigmoid, self._float("sigmoid"))
    def relu(self) -> Tensor: return apply(ops.Relu, self._float("relu"))
    def gelu(self) -> Tensor: return apply(ops.Gelu, self._float("gelu"))
    def sin(self) -> Tensor: return apply(ops.Sin, self._float("sin"))
    def cos(self) -> Tensor: return apply(ops.Cos, self._float("cos"))
    def softplus(self) -> Tensor: return apply(ops.Softplus, self._float("softplus"))
    def square(self) -> Tensor: return self._float("square") * self
    def silu(self) -> Tensor: return self._float("silu") * self.sigmoid()

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        """x where x > 0, else negative_slope * x."""
        slope = check_number("leaky_relu", "negative_slope", negative_slope)
        return where(self._float("leaky_relu").data > 0, self, self * slope)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
        """x limited to [min, max]; the gradient is 1 where min <= x <= max (boundaries included), else 0."""
        lo = -math.inf if min is None else check_number("clamp", "min", min)
        hi = math.inf if max is None else check_number("clamp", "max", max)
        x = self._float("clamp")
        return where((x.data >= lo) & (x.data <= hi), x, Tensor._make(np.clip(x.data, lo, hi), False, None))

    clip = clamp

    # ------------------------------------------------------------------ reductions
    def _reduce_args(self, op: str, axis, dim, keepdims, keepdim, single: bool = False):
        """(axis, keepdims) after `dim=`/`keepdim=` are folded in; a 0-d tensor reduces over nothing (axis None)."""
        axis = check_axis(op, axis, self.ndim, dim, single)
        return (None if self.ndim == 0 else axis), check_keepdims(op, keepdims, keepdim)

    def _count(self, axis) -> int:
        """How many elements each output of a reduction over `axis` combines."""
        return math.prod(self.shape if axis is None else [self.shape[i] for i in np.atleast_1d(axis)])

    def _nonempty(self, op: str, axis) -> None:
        if self._count(axis) == 0:
            raise ValueError(f"{op}: cannot reduce over an empty axis of a tensor of shape {self.shape}")

    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        """Sum over `axis`; on a bool tensor, the count of True values (float32, no gradient)."""
        axis, keepdims = self._reduce_args("sum", axis, dim, keepdims, keepdim)
        if self.dtype == np.bool_:
            return Tensor._make(np.asarray(self.data.sum(axis=axis, keepdims=keepdims), np.float32), False, None)
        return apply(ops.Sum, self._float("sum"), axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        axis, keepdims = self._reduce_args("mean", axis, dim, keepdims, keepdim)
        count = self._count(axis)
        return self.sum(axis, keepdims) * (1.0 / count if count else math.nan)

    def max(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        """Values only; ties share the gradient equally. On a bool tensor: `any`."""
        return self._extreme("max", ops.Max, self.any, axis, dim, keepdims, keepdim)

    def min(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        """Values only; ties share the gradient equally. On a bool tensor: `all`."""
        return self._extreme("min", ops.Min, self.all, axis, dim, keepdims, keepdim)

    def _extreme(self, op, fn, on_bool, axis, dim, keepdims, keepdim) -> Tensor:
        axis, keepdims = self._reduce_args(op, axis, dim, keepdims, keepdim)
        if self.dtype == np.bool_:
            return on_bool(axis, keepdims)
        self._nonempty(op, axis)
        return apply(fn, self._float(op), axis=axis, keepdims=keepdims)

    def logsumexp(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        """ln sum exp(x) over `axis`, computed stably at any magnitude (gradient: softmax(x))."""
        axis, keepdims = self._reduce_args("logsumexp", axis, dim, keepdims, keepdim)
        self._nonempty("logsumexp", axis)
        return apply(ops.LogSumExp, self._float("logsumexp"), axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims: bool = False, *, correction: float = 0, dim=None, keepdim=None) -> Tensor:
        """sum((x - mean(x))^2) / (N - correction): the population variance by default."""
        axis, keepdims = self._reduce_args("var", axis, dim, keepdims, keepdim)
        n = self._count(axis) - check_number("var", "correction", correction)
        centred = self - self.mean(axis, keepdims=True)
        return (centred * centred).sum(axis, keepdims) * (1.0 / n if n > 0 else math.nan)

    def std(self, axis=None, keepdims: bool = False, *, correction: float = 0, dim=None, keepdim=None) -> Tensor:
        """sqrt(var(...)), with the same `correction` (0: population)."""
        axis, keepdims = self._reduce_args("std", axis, dim, keepdims, keepdim)
        return self.var(axis, keepdims, correction=check_number("std", "correction", correction)).sqrt()

    def _no_grad_reduce(self, op, numpy_fn, axis, dim, keepdims, keepdim, single=False) -> Tensor:
        axis, keepdims = self._reduce_args(op, axis, dim, keepdims, keepdim, single)
        return Tensor._make(np.asarray(numpy_fn(self.data, axis=axis, keepdims=keepdims)), False, None)

    def any(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        return self._no_grad_reduce("any", np.any, axis, dim, keepdims, keepdim)

    def all(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        return self._no_grad_reduce("all", np.all, axis, dim, keepdims, keepdim)

    def argmax(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        """Index of the max along `axis` (of the flattened tensor when None): int64, no gradient."""
        self._nonempty("argmax", check_axis("argmax", axis, self.ndim, dim, single=True) if self.ndim else None)
        return self._no_grad_reduce("argmax", np.argmax, axis, dim, keepdims, keepdim, True).astype(np.int64)

    def argmin(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
        """Index of the min along `axis` (of the flattened tensor when None): int64, no gradient."""
        self._nonempty("argmin", check_axis("argmin", axis, self.ndim, dim, single=True) if self.ndim else None)
        return self._no_grad_reduce("argmin", np.argmin, axis, dim, keepdims, keepdim, True).astype(np.int64)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape) -> Tensor:
        shape = check_shape("reshape", shape, allow_minus_one=True)
        known = math.prod(n for n in shape if n != -1)
        free = sum(n == -1 for n in shape)
        fits = (known > 0 and self.size % known == 0) if free == 1 else (free == 0 and known == self.size)
        if not fits:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} ({self.size} elements) "
                             f"into {shape}")
        return apply(ops.Reshape, self, shape=shape)

    def expand(self, *shape) -> Tensor:
        """Broadcast to `shape` (-1 keeps a size; new axes go in front); the gradient is summed back."""
        shape = check_shape("expand", shape, allow_minus_one=True)
        lead = len(shape) - self.ndim
        target = tuple(self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        if lead < 0 or -1 in target or broadcast_shape("expand", self.shape, target) != target:
            raise ValueError(f"expand: cannot expand a tensor of shape {self.shape} to {shape}")
        return apply(ops.Expand, self, shape=target)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge axes start_dim..end_dim (inclusive) into one."""
        if self.ndim == 0:
            return self.reshape(1)
        s, e = check_axis("flatten", start_dim, self.ndim, single=True), check_axis("flatten", end_dim, self.ndim)
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {self.shape})")
        return self.reshape(*self.shape[:s], math.prod(self.shape[s:e + 1]), *self.shape[e + 1:])

    def squeeze(self, axis=None, *, dim=None) -> Tensor:
        """Drop the size-1 axes (only those in `axis`, when given; other sizes there are left alone)."""
        axes = np.atleast_1d(check_axis("squeeze", axis, self.ndim, dim) if axis is not None or dim is not None
                             else range(self.ndim))
        return self.reshape(*(n for i, n in enumerate(self.shape) if not (n == 1 and i in axes)))

    def unsqueeze(self, axis=None, *, dim=None) -> Tensor:
        """Insert a size-1 axis at `axis` (in [-ndim-1, ndim])."""
        a = check_axis("unsqueeze", axis, self.ndim + 1, dim, single=True)
        if a is None:
            raise TypeError("unsqueeze: give the axis to insert")
        return self.reshape(*self.shape[:a], 1, *self.shape[a:])

    def split(self, split_size_or_sections, axis=None, *, dim=None) -> tuple[Tensor, ...]:
        """Pieces along `axis` (default 0): each `split_size` long (the last may be shorter), or the sizes listed."""
        if self.ndim == 0:
            raise ValueError("split: cannot split a 0-d tensor")
        a = check_axis("split", axis, self.ndim, dim, single=True) or 0
        n = self.shape[a]
        if isinstance(split_size_or_sections, (list, tuple)):
            sizes = [check_int("split", "section size", k, min=0) for k in split_size_or_sections]
            if sum(sizes) != n:
                raise ValueError(f"split: sections {list(sizes)} do not add up to {n}, the size of axis {a} "
                                 f"of a tensor of shape {self.shape}")
        else:
            k = check_int("split", "split_size", split_size_or_sections, min=1)
            sizes = [k] * (n // k) + ([n % k] if n % k else []) or [0]
        bounds = np.cumsum([0, *sizes]).tolist()
        return tuple(self[(slice(None),) * a + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:]))

    def chunk(self, chunks: int, axis=None, *, dim=None) -> tuple[Tensor, ...]:
        """At most `chunks` pieces of size ceil(n / chunks) along `axis` (as PyTorch)."""
        chunks = check_int("chunk", "chunks", chunks, min=1)
        a = check_axis("chunk", axis, self.ndim, dim, single=True) or 0
        return self.split(max(1, -(-self.shape[a] // chunks)) if self.ndim else 1, a)

    def permute(self, *axes) -> Tensor:
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        order = check_axis("permute", tuple(axes), self.ndim)
        if len(order) != self.ndim:
            raise ValueError(f"permute: {axes} is not a permutation of the axes of a tensor of shape {self.shape}")
        return apply(ops.Permute, self, axes=order)

    def transpose(self, ax0: int = -2, ax1: int = -1) -> Tensor:
        order = list(range(self.ndim))
        a, b = (check_axis("transpose", ax, self.ndim, single=True) for ax in (ax0, ax1))
        order[a], order[b] = order[b], order[a]
        return self.permute(*order)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def tril(self, diagonal: int = 0) -> Tensor:
        """Zero above the `diagonal`-th diagonal of the last two axes (kept: j <= i + diagonal)."""
        return self.masked_fill(~self._tri("tril", diagonal), 0.0)

    def triu(self, diagonal: int = 0) -> Tensor:
        """Zero below the `diagonal`-th diagonal of the last two axes (kept: j >= i + diagonal)."""
        return self.masked_fill(self._tri("triu", diagonal, -1), 0.0)

    def _tri(self, op: str, diagonal: int, shift: int = 0) -> np.ndarray:
        if self.ndim < 2:
            raise ValueError(f"{op}: needs a tensor with at least 2 dimensions, got shape {self.shape}")
        return np.tri(*self.shape[-2:], check_int(op, "diagonal", diagonal) + shift, dtype=bool)

    # ------------------------------------------------------------------ softmax, masking, indexing
    def softmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """exp(x) / sum(exp(x)) along `axis` (default: the last); 1 for a 0-d tensor."""
        return self._softmax("softmax", ops.Softmax, axis, dim)

    def log_softmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """x - log(sum(exp(x))) along `axis` (default: the last); 0 for a 0-d tensor."""
        return self._softmax("log_softmax", ops.LogSoftmax, axis, dim)

    def _softmax(self, op: str, fn: type[Function], axis, dim) -> Tensor:
        axis = check_axis(op, axis, self.ndim, dim, single=True)
        if self.ndim == 0:                                      # a single value: softmax 1, log_softmax 0
            return apply(fn, self._float(op).reshape(1), axis=0).reshape(())
        return apply(fn, self._float(op), axis=self.ndim - 1 if axis is None else axis)

    def masked_fill(self, mask, value: float) -> Tensor:
        """value where mask is True, self elsewhere; mask must broadcast to self's shape."""
        mask = index_array("masked_fill", mask)
        value = check_number("masked_fill", "value", value)
        if mask.dtype != np.bool_:
            mask = mask.astype(bool)
        if broadcast_shape("masked_fill", self.shape, mask.shape) != self.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's {self.shape}")
        return apply(ops.MaskedFill, self._float("masked_fill"), mask=mask, value=value)

    def __getitem__(self, index) -> Tensor:
        """numpy indexing; a list, array, Tensor or tuple inside the index is an integer (or bool) array."""
        items = index if isinstance(index, tuple) else (index,)
        arrays = (Tensor, list, tuple, np.ndarray)
        items = tuple(index_array("getitem", i) if isinstance(i, arrays) else i for i in items)
        advanced = any(isinstance(i, np.ndarray) for i in items)
        try:                                                    # validate on a zero-stride stand-in before the op runs
            np.broadcast_to(np.bool_(False), self.shape)[items]
        except (IndexError, TypeError, ValueError) as e:
            raise TensorIndexError(f"getitem: index {index!r} does not fit a tensor of shape {self.shape}: {e}") \
                from None
        return apply(ops.GetItem, self, index=items, advanced=advanced)


# ---------------------------------------------------------------------------- module-level ops


def matmul(a, b) -> Tensor:
    """a @ b as numpy does it: vectors are lifted to matrices, batch axes broadcast."""
    a = _as_tensor(a)
    b = a._operand(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars are not allowed, got shapes {a.shape} and {b.shape}")
    a = a._float("matmul")
    b = b._float("matmul")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be broadcast: batch shapes "
                         f"{a.shape[:-2]} and {b.shape[:-2]}") from None
    a, b = promote(a, b)                                       # the kernels take one dtype
    if a.ndim == 1:                                            # [k] @ [..., k, n] -> [..., n]
        out = matmul(a.reshape(1, -1), b)
        return out.reshape(out.shape[:-2] + out.shape[-1:]) if b.ndim > 1 else out.reshape(())
    if b.ndim == 1:                                            # [..., m, k] @ [k] -> [..., m]
        return matmul(a, b.reshape(-1, 1)).reshape(a.shape[:-1])
    return apply(ops.MatMul, a, b)


def promote(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in one float dtype, float64 if any is float64 (as numpy promotes); the cast is differentiable."""
    if all(t.dtype == tensors[0].dtype for t in tensors):
        return tensors
    return tuple(t.astype(np.float64) for t in tensors)


def _tensor_list(op: str, tensors) -> list[Tensor]:
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise TypeError(f"{op}: expects a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    return [_as_tensor(t) for t in tensors]


def cat(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis; the gradient of each is its slice of the output's."""
    tensors = _tensor_list("cat", tensors)
    first = tensors[0]
    if any(t.ndim == 0 for t in tensors):
        raise ValueError(f"cat: zero-dimensional tensors cannot be concatenated (shapes {[t.shape for t in tensors]}); "
                         "use stack")
    axis = check_axis("cat", axis, first.ndim, dim, single=True) or 0
    for t in tensors:
        t._float("cat")
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ValueError(f"cat: shapes {[x.shape for x in tensors]} differ outside axis {axis}")
    return apply(ops.Cat, *tensors, axis=axis)


def stack(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = _tensor_list("stack", tensors)
    axis = check_axis("stack", axis, tensors[0].ndim + 1, dim, single=True) or 0
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: needs tensors of one shape, got {[t.shape for t in tensors]}")
    return cat([t.unsqueeze(axis) for t in tensors], axis=axis)


def where(cond, a, b) -> Tensor:
    """a where cond is True, else b (cond carries no gradient); all three broadcast together."""
    cond = index_array("where", cond).astype(bool, copy=False)
    if not isinstance(a, Tensor):
        a = b._operand(a) if isinstance(b, Tensor) else Tensor(a)
    b = a._operand(b)
    broadcast_shape("where", cond.shape, a.shape, b.shape)
    return apply(ops.Where, a._float("where"), b._float("where"), cond=cond)


def _elementwise(fn: type[Function], a, b) -> Tensor:
    if isinstance(a, Tensor):
        return a._binary(fn, b)
    return b._binary(fn, a, reflected=True) if isinstance(b, Tensor) else Tensor(a)._binary(fn, b)


def maximum(a, b) -> Tensor:
    """Elementwise max(a, b), broadcast; at ties each input gets half the gradient (as PyTorch)."""
    return _elementwise(ops.Maximum, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise min(a, b), broadcast; at ties each input gets half the gradient (as PyTorch)."""
    return _elementwise(ops.Minimum, a, b)
