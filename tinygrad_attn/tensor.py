"""The graph engine: Tensor, `apply` (records an op in the graph), backward, `no_grad`, creators.

A Tensor holds a numpy array. When an op runs on tensors that require grad, the output remembers
the Function that made it (`_ctx`), and the Function remembers its inputs (`parents`): that chain
is the graph. `backward()` walks it once, outputs first, in topological order, with an explicit
list instead of recursion, so a chain of any length works.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np

from . import ops
from .function import Function
from .random import rng

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
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


class TensorIndexError(IndexError, ValueError):
    """An index that does not fit the tensor (an IndexError, and a ValueError as the contract asks)."""


def apply(fn: type[Function], *inputs: Tensor, **kwargs) -> Tensor:
    """Run op `fn` on the inputs' arrays; if any input requires grad, link the output into the graph."""
    ctx = fn()
    record = _grad_enabled and any(t.requires_grad for t in inputs)
    ctx.needs_input_grad = tuple(t.requires_grad for t in inputs) if record else (False,) * len(inputs)
    out = ctx.forward(*[t.data for t in inputs], **kwargs)
    if not record:
        return Tensor._make(out, False, None)
    ctx.parents = inputs
    return Tensor._make(out, True, ctx)


Function.apply = classmethod(apply)  # so a user-written op runs as `MyOp.apply(x, y)`


def _as_array(data, dtype) -> np.ndarray:
    """data as a new numpy array: float arrays keep float32/float64, bool stays bool, the rest float32."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=dtype)
    arr = np.array(data)
    if arr.dtype in FLOATS and isinstance(data, (np.ndarray, np.generic)) or arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: cannot make a tensor from data of dtype {arr.dtype}")
    return arr.astype(np.float32)


def _axes(op: str, ndim: int, axis, dim):
    """Normalise `axis=`/`dim=` to None, an int or a tuple of non-negative ints, or raise naming the op."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: give axis= or dim=, not both")
        axis = dim
    if axis is None:
        return None
    many = isinstance(axis, (tuple, list))
    out = []
    for a in axis if many else (axis,):
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(out) if many else out[0]


def index_array(op: str, value) -> np.ndarray:
    """An index-like argument (mask, indices, targets) as a numpy array carrying no gradient:
    bool stays bool, whole-number floats become int64, anything else non-integer is an error."""
    arr = np.asarray(value.data if isinstance(value, Tensor) else value)
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


class Tensor:
    """An n-dimensional array that records the ops applied to it, so gradients can flow back.

    `Tensor(data, requires_grad=False, dtype=None)`: float numpy arrays keep float32/float64, bool
    data stays bool, anything else becomes float32 unless `dtype=` says otherwise.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array * tensor -> Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype not in FLOATS:
            raise TypeError(f"Tensor: only float32/float64 tensors can require grad, got {self.data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None
        self._retain = False

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool, ctx: Function | None) -> Tensor:
        t = cls.__new__(cls)
        t.data, t.grad, t.requires_grad, t._ctx, t._retain = data, None, requires_grad, ctx, False
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
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {self.shape}")
        grads = {id(self): grad}
        for node in self._topological_order():
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if g.dtype != node.dtype:                           # an input of another float dtype
                g = g.astype(node.dtype)
            ctx = node._ctx
            if ctx is None or node._retain:
                node.grad = np.array(g) if node.grad is None else node.grad + g
            if ctx is None:
                continue
            if ctx is _Freed:
                raise RuntimeError("backward: this graph was freed by an earlier backward(); "
                                   "pass retain_graph=True to the first call to go through it twice")
            input_grads = ctx.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(ctx.parents):
                raise RuntimeError(f"backward of {type(ctx).__name__} returned {len(input_grads)} gradients "
                                   f"for {len(ctx.parents)} inputs")
            for parent, pg, needed in zip(ctx.parents, input_grads, ctx.needs_input_grad):
                if not needed or pg is None:
                    continue
                if pg.shape != parent.shape:
                    raise RuntimeError(f"backward of {type(ctx).__name__} gave a gradient of shape {pg.shape} "
                                       f"for an input of shape {parent.shape}")
                grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else pg
            if not retain_graph:
                node._ctx = _Freed                               # drop saved arrays and parents now
        return None

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

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
        axis = _axes("sum", self.ndim, axis, dim)
        return apply(ops.Sum, self._float("sum"), axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
        axis = _axes("mean", self.ndim, axis, dim)
        total = self.sum(axis, keepdims)
        count = self.size // total.size if total.size else 0   # how many elements each output averages
        return total * (1.0 / count if count else math.nan)

    def max(self, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
        axis = _axes("max", self.ndim, axis, dim)
        if self.size == 0:
            raise ValueError(f"max: cannot take the max of an empty tensor of shape {self.shape}")
        return apply(ops.Max, self._float("max"), axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
        """Population variance: mean((x - mean(x))^2)."""
        axis = _axes("var", self.ndim, axis, dim)
        centred = self - self.mean(axis, keepdims=True)
        return (centred * centred).mean(axis, keepdims)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape) -> Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        known = math.prod(n for n in shape if n != -1)
        free = sum(n == -1 for n in shape)
        fits = (known > 0 and self.size % known == 0) if free == 1 else (free == 0 and known == self.size)
        if not fits or any(n < -1 for n in shape):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} ({self.size} elements) "
                             f"into {shape}")
        return apply(ops.Reshape, self, shape=shape)

    def permute(self, *axes) -> Tensor:
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        if sorted(int(a) % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the axes of a tensor of shape {self.shape}")
        return apply(ops.Permute, self, axes=tuple(int(a) % self.ndim for a in axes))

    def transpose(self, ax0: int = -2, ax1: int = -1) -> Tensor:
        order = list(range(self.ndim))
        a, b = _axes("transpose", self.ndim, ax0, None), _axes("transpose", self.ndim, ax1, None)
        order[a], order[b] = order[b], order[a]
        return self.permute(*order)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    # ------------------------------------------------------------------ softmax, masking, indexing
    def softmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """exp(x) / sum(exp(x)) along `axis` (default: the last)."""
        return apply(ops.Softmax, self._float("softmax"), axis=self._softmax_axis("softmax", axis, dim))

    def log_softmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """x - log(sum(exp(x))) along `axis` (default: the last)."""
        return apply(ops.LogSoftmax, self._float("log_softmax"), axis=self._softmax_axis("log_softmax", axis, dim))

    def _softmax_axis(self, op: str, axis, dim) -> int:
        if self.ndim == 0:
            raise ValueError(f"{op}: needs at least one axis, got a 0-d tensor")
        axis = _axes(op, self.ndim, axis, dim)
        if isinstance(axis, tuple):
            raise TypeError(f"{op}: axis must be a single int, got {axis}")
        return self.ndim - 1 if axis is None else axis

    def masked_fill(self, mask, value: float) -> Tensor:
        """value where mask is True, self elsewhere; mask must broadcast to self's shape."""
        mask = index_array("masked_fill", mask)
        if mask.dtype != np.bool_:
            mask = mask.astype(bool)
        if broadcast_shape("masked_fill", self.shape, mask.shape) != self.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's {self.shape}")
        return apply(ops.MaskedFill, self._float("masked_fill"), mask=mask, value=float(value))

    def __getitem__(self, index) -> Tensor:
        items = index if isinstance(index, tuple) else (index,)
        items = tuple(index_array("getitem", i) if isinstance(i, (Tensor, list, np.ndarray)) else i for i in items)
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
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = a._operand(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars are not allowed, got shapes {a.shape} and {b.shape}")
    a = a._float("matmul")
    b = b._float("matmul")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
    broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
    a, b = promote(a, b)                                       # the kernels take one dtype
    if a.ndim == 1:                                            # [k] @ [..., k, n] -> [..., n]
        out = matmul(a.reshape(1, -1), b)
        return out.reshape(out.shape[:-2] + out.shape[-1:]) if b.ndim > 1 else out.reshape(())
    if b.ndim == 1:                                            # [..., m, k] @ [k] -> [..., m]
        return matmul(a, b.reshape(-1, 1)).reshape(a.shape[:-1])
    return apply(ops.MatMul, a, b)


def promote(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in one float dtype, float64 if any is float64 (as numpy promotes). A cast is an
    Add of a float64 zero, so the gradient flows back unchanged (the engine casts it to each input's dtype)."""
    if all(t.dtype == tensors[0].dtype for t in tensors):
        return tensors
    zero = Tensor._make(np.zeros((), np.float64), False, None)
    return tuple(t if t.dtype == np.float64 else t + zero for t in tensors)


def cat(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis; the gradient of each is its slice of the output's."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    first = tensors[0]
    axis = _axes("cat", first.ndim, axis, dim) or 0
    for t in tensors:
        t._float("cat")
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ValueError(f"cat: shapes {[x.shape for x in tensors]} differ outside axis {axis}")
    return apply(ops.Cat, *tensors, axis=axis)


def stack(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors or any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: needs one or more tensors of one shape, got {[t.shape for t in tensors]}")
    axis = _axes("stack", tensors[0].ndim + 1, axis, dim) or 0
    shape = tensors[0].shape
    return cat([t.reshape(*shape[:axis], 1, *shape[axis:]) for t in tensors], axis=axis)


def where(cond, a, b) -> Tensor:
    """a where cond is True, else b (cond carries no gradient); all three broadcast together."""
    cond = index_array("where", cond).astype(bool, copy=False)
    if not isinstance(a, Tensor):
        a = b._operand(a) if isinstance(b, Tensor) else Tensor(a)
    b = a._operand(b)
    broadcast_shape("where", cond.shape, a.shape, b.shape)
    return apply(ops.Where, a._float("where"), b._float("where"), cond=cond)


def _shape(shape) -> tuple[int, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def zeros(*shape, requires_grad: bool = False, dtype=np.float32) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype), requires_grad=requires_grad)


def ones(*shape, requires_grad: bool = False, dtype=np.float32) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype), requires_grad=requires_grad)


def randn(*shape, requires_grad: bool = False, dtype=np.float32) -> Tensor:
    """Standard normal samples from the package generator (`ta.manual_seed` makes them repeatable)."""
    return Tensor(rng().standard_normal(_shape(shape)).astype(dtype), requires_grad=requires_grad)


def arange(n: int, requires_grad: bool = False, dtype=np.float32) -> Tensor:
    return Tensor(np.arange(n, dtype=dtype), requires_grad=requires_grad)
