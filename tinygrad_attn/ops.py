"""Every differentiable op: forward and backward side by side, on numpy arrays.

Read each class as the chain rule for one line of math. `g` is dL/d(output); `backward` returns
dL/d(input) for each input, in order, passing through `unbroadcast` wherever numpy broadcasting
may have stretched an input. Hot ops call kernels through `K`, which is Numba or numpy depending
on the backend (see `backend.py`). Inputs have been checked by the engine before they get here.
"""

import numpy as np

from .backend import K
from .function import Function, unbroadcast

# ----------------------------------------------------------------------------- elementwise, two inputs


class Add(Function):
    """out = a + b;  da = g,  db = g."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    """out = a - b;  da = g,  db = -g."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1]) if self.needs_input_grad[1] else None


class Mul(Function):
    """out = a * b;  da = g * b,  db = g * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return K.multiply(a, b)

    def backward(self, g):
        da = unbroadcast(K.multiply(g, self.b), self.a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(K.multiply(g, self.a), self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """out = a / b;  da = g / b,  db = -g * a / b^2 = -g * out / b."""

    def forward(self, a, b):
        self.b, self.out, self.a_shape = b, a / b, a.shape
        return self.out

    def backward(self, g):
        da = unbroadcast(g / self.b, self.a_shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-g * self.out / self.b, self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    """out = a ** b;  da = g * b * a^(b-1) (0 where b = 0),  db = g * out * ln(a) (0 where a = 0 and b >= 0).

    The two masks are PyTorch's: d/da a^0 = 0 even at a = 0, and d/db 0^b = 0 for b >= 0 (0^b is flat there);
    elsewhere the formula stands, so d/db 0^b = -inf for b < 0 and a negative base gives NaN.
    """

    def forward(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):   # 0^-1 = inf, (-2)^0.5 = nan, silently as PyTorch
            self.a, self.b, self.out = a, b, a**b
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                da = unbroadcast(np.where(b == 0, 0, g * b * a ** (b - 1)).astype(g.dtype, copy=False), a.shape)
            if self.needs_input_grad[1]:
                flat = (a == 0) & (b >= 0)
                db = unbroadcast(np.where(flat, 0, g * self.out * np.log(a)).astype(g.dtype, copy=False), b.shape)
        return da, db


class Maximum(Function):
    """out = max(a, b) elementwise;  da = g where a > b, db = g where b > a, g/2 each where a = b (as PyTorch)."""

    pick, beats = staticmethod(np.maximum), staticmethod(np.greater)

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.pick(a, b)

    def backward(self, g):
        share = np.where(self.beats(self.a, self.b), 1.0, np.where(self.a == self.b, 0.5, 0.0)).astype(g.dtype)
        da = unbroadcast(g * share, self.a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(g * (1 - share), self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    """out = min(a, b) elementwise; the gradient goes to the smaller input, halved at ties."""

    pick, beats = staticmethod(np.minimum), staticmethod(np.less)


class Where(Function):
    """out = cond ? a : b;  da = g where cond (else 0),  db = g where not cond."""

    def forward(self, a, b, cond):
        self.cond, self.shapes = cond, (a.shape, b.shape)
        return np.where(cond, a, b)

    def backward(self, g):
        zero = np.zeros((), g.dtype)
        da = unbroadcast(np.where(self.cond, g, zero), self.shapes[0]) if self.needs_input_grad[0] else None
        db = unbroadcast(np.where(self.cond, zero, g), self.shapes[1]) if self.needs_input_grad[1] else None
        return da, db


# ----------------------------------------------------------------------------- elementwise, one input


class Neg(Function):
    """out = -a;  da = -g."""

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    """out = e^a;  da = g * out."""

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    """out = ln a;  da = g / a."""

    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    """out = sqrt(a);  da = g / (2 out)."""

    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    """out = |a|;  da = g * sign(a)  (0 at a = 0, as PyTorch)."""

    def forward(self, a):
        self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, g):
        return g * self.sign


class Tanh(Function):
    """out = tanh a;  da = g * (1 - out^2)."""

    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Sin(Function):
    """out = sin a;  da = g * cos a."""

    def forward(self, a):
        self.a = a
        return np.sin(a)

    def backward(self, g):
        return g * np.cos(self.a)


class Cos(Function):
    """out = cos a;  da = -g * sin a."""

    def forward(self, a):
        self.a = a
        return np.cos(a)

    def backward(self, g):
        return -g * np.sin(self.a)


class Softplus(Function):
    """out = ln(1 + e^a) = logaddexp(0, a) (no overflow at any a);  da = g * sigmoid(a)."""

    def forward(self, a):
        self.a = a
        return np.logaddexp(0, a).astype(a.dtype, copy=False)

    def backward(self, g):
        e = np.exp(-np.abs(self.a))                            # sigmoid(a), stable for large |a|
        return g * np.where(self.a >= 0, 1 / (1 + e), e / (1 + e))


class Cast(Function):
    """out = a converted to another float dtype;  da = g converted back to a's dtype."""

    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


class Sigmoid(Function):
    """out = 1 / (1 + e^-a);  da = g * out * (1 - out)."""

    def forward(self, a):
        e = np.exp(-np.abs(a))                                 # stable for large |a|
        self.out = np.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Relu(Function):
    """out = max(a, 0);  da = g where a > 0, else 0."""

    def forward(self, a):
        self.positive = a > 0
        return np.where(self.positive, a, 0).astype(a.dtype, copy=False)

    def backward(self, g):
        return np.where(self.positive, g, 0).astype(g.dtype, copy=False)


class Gelu(Function):
    """out = 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)));  da = g * gelu'(a) (kernels.gelu_backward)."""

    def forward(self, a):
        self.a = a
        return K.gelu(a)

    def backward(self, g):
        return K.gelu_backward(self.a, g)


# ----------------------------------------------------------------------------- reductions


class Sum(Function):
    """out = sum of a over `axis`;  da = g copied back along the summed axes."""

    def forward(self, a, axis, keepdims):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        if axis is None:                                        # every element: the kernels' whole-array sum
            out = K.sum_all(a)                                  # [...] -> []
            return out.reshape((1,) * a.ndim) if keepdims else out
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        if self.axis is None:                                   # one value: [] -> [...], every stride 0
            return _spread(g, self.shape)
        if not self.keepdims:
            g = np.expand_dims(g, self.axis)
        return np.broadcast_to(g, self.shape)


def _spread(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A one-element array as a read-only view of `shape` with every stride 0: np.broadcast_to(value, shape),
    in 0.7 us instead of 2.7 (numpy builds an iterator to check the shapes; a sum's gradient needs no check)."""
    out = np.ndarray(shape, value.dtype, value, 0, (0,) * len(shape))
    out.flags.writeable = False
    return out


class Max(Function):
    """out = max of a over `axis`;  da = g at the places that hold the max, shared equally between ties."""

    reduce = staticmethod(np.max)

    def forward(self, a, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        out = self.reduce(a, axis=axis, keepdims=True)
        self.winners = a == out                                 # [a.shape] bool: where the max sits
        return out if keepdims else np.asarray(np.squeeze(out, axis=axis))

    def backward(self, g):
        if not self.keepdims:
            g = np.expand_dims(g, self.axis) if self.axis is not None else np.reshape(g, (1,) * self.winners.ndim)
        count = self.winners.sum(axis=self.axis, keepdims=True)
        return np.where(self.winners, g / np.maximum(count, 1), 0).astype(g.dtype, copy=False)


class Min(Max):
    """out = min of a over `axis`;  da = g at the places that hold the min, shared equally between ties."""

    reduce = staticmethod(np.min)


class LogSumExp(Function):
    """out = m + ln s, s = sum exp(a - m) over `axis`, m the max (0 where m is infinite), so no exp overflows;
    da = g * softmax(a) = g * exp((a - m) - ln s), from the shifted values (exp(a - out) would lose ln s when
    |m| >> 1), and 0 in a row of -inf."""

    def forward(self, a, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        m = a.max(axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0).astype(a.dtype, copy=False)
        self.shifted = a - m
        with np.errstate(divide="ignore"):                      # a row of -inf: ln 0 = -inf, as it should be
            self.log_s = np.log(np.exp(self.shifted).sum(axis=axis, keepdims=True))
        out = self.log_s + m
        return out if keepdims else np.asarray(np.squeeze(out, axis=axis))

    def backward(self, g):
        if not self.keepdims:
            g = np.expand_dims(g, self.axis) if self.axis is not None else np.reshape(g, (1,) * self.shifted.ndim)
        with np.errstate(invalid="ignore"):
            p = np.exp(self.shifted - self.log_s)
        return np.where(np.isneginf(self.log_s), 0, g * p).astype(g.dtype, copy=False)


# ----------------------------------------------------------------------------- movement and indexing


class Reshape(Function):
    """out = a viewed with a new shape;  da = g viewed with a's shape."""

    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Expand(Function):
    """out = a broadcast to `shape` (numpy rules: new leading axes, size-1 axes stretched);
    da = g summed over the copies (unbroadcast)."""

    def forward(self, a, shape):
        self.in_shape = a.shape
        return np.broadcast_to(a, shape).copy()

    def backward(self, g):
        return unbroadcast(g, self.in_shape)


class Permute(Function):
    """out = a with its axes reordered by `axes`;  da = g with the inverse order."""

    def forward(self, a, axes):
        self.inverse = tuple(np.argsort(axes))
        return a.transpose(axes)

    def backward(self, g):
        return g.transpose(self.inverse)


class GetItem(Function):
    """out = a[index] (numpy semantics);  da = zeros with g added at `index` (repeats accumulate)."""

    def forward(self, a, index, advanced):
        self.shape, self.dtype, self.index, self.advanced = a.shape, a.dtype, index, advanced
        return a[index]

    def backward(self, g):
        da = np.zeros(self.shape, self.dtype)
        if self.advanced:
            np.add.at(da, self.index, g)                       # an index may repeat: add, don't overwrite
        else:
            da[self.index] = g
        return da


class Cat(Function):
    """out = concatenate(inputs, axis);  d(input i) = the slice of g that input i filled."""

    def forward(self, *arrays, axis):
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


class MaskedFill(Function):
    """out = value where mask, else a;  da = g where not mask (filled places did not depend on a)."""

    def forward(self, a, mask, value):
        self.mask = mask
        return np.where(mask, np.asarray(value, a.dtype), a)

    def backward(self, g):
        return np.where(self.mask, np.zeros((), g.dtype), g)


# ----------------------------------------------------------------------------- matmul


class MatMul(Function):
    """out = a @ b over the last two axes, batch axes broadcast;  da = g @ b^T,  db = a^T @ g.

    Both inputs are at least 2-D (the engine lifts vectors). The transposes are views: the
    kernels read them with strides instead of copying.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return K.matmul(a, b)                                   # [..., m, k] @ [..., k, n] -> [..., m, n]

    def backward(self, g):
        a, b = self.a, self.b
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(K.matmul(g, b.swapaxes(-1, -2)), a.shape)  # [..., m, n] @ [..., n, k]
        if self.needs_input_grad[1]:
            if b.ndim == 2 and a.ndim > 2:                      # x @ W with a batch of x: one big matmul
                k, n = b.shape
                db = K.matmul(a.reshape(-1, k).T, g.reshape(-1, n))   # [k, B*m] @ [B*m, n] -> [k, n]
            else:
                db = unbroadcast(K.matmul(a.swapaxes(-1, -2), g), b.shape)
        return da, db


class Linear(Function):
    """out = x W + b, x [..., in], W [in, out], b [out]: one matmul over all rows of x, b added in place.

    dx = g W^T,  dW = x^T g (every row of x, whatever its batch axes),  db = g summed over rows.
    One node instead of MatMul + Add: no second [..., out] array in the forward, no unbroadcast of g.
    """

    def forward(self, x, w, b):
        self.x, self.w = x, w
        out = K.matmul(x, w)                                    # [..., in] @ [in, out] -> [..., out]
        out += b                                                # [..., out] + [out], in place
        return out

    def backward(self, g):
        x, w = self.x, self.w
        g2 = g.reshape(-1, g.shape[-1])                         # [..., out] -> [N, out]
        dx = dw = db = None
        if self.needs_input_grad[0]:                            # reverses x @ W
            dx = K.matmul(g, w.T)                               # [..., out] @ [out, in] -> [..., in]
        if self.needs_input_grad[1]:
            dw = K.matmul(x.reshape(-1, w.shape[0]).T, g2)      # [in, N] @ [N, out] -> [in, out]
        if self.needs_input_grad[2]:                            # reverses += b: b fed every row
            db = g2.sum(axis=0)                                 # [N, out] -> [out]
        return dx, dw, db


class Embedding(Function):
    """out[..., :] = W[ids[...], :], a row lookup;  dW = each row of g added into the row it came from
    (an id used twice gets both rows: kernels.embedding_backward)."""

    def forward(self, w, ids):
        self.ids, self.num = ids, w.shape[0]
        return w[ids]                                           # [num, D] at [...] -> [..., D]

    def backward(self, g):
        return K.embedding_backward(self.ids, g, self.num)     # [..., D] -> [num, D]


# -------------------------------------------------------------- softmax family (along the last axis)


def _axis_last(a, axis):
    """a with `axis` (non-negative) swapped with the last axis, for the kernels, which work along the last axis:
    a view, and its own inverse; a itself when `axis` is last already."""
    return a if axis == a.ndim - 1 else a.swapaxes(axis, -1)


class Softmax(Function):
    """y = exp(a - max) / sum exp(a - max) along `axis`;  da = y * (g - sum(g * y)) (the Jacobian-vector product)."""

    def forward(self, a, axis):
        self.axis = axis
        self.y = K.softmax(_axis_last(a, axis))
        return _axis_last(self.y, axis)

    def backward(self, g):
        return _axis_last(K.softmax_backward(self.y, _axis_last(g, self.axis)), self.axis)


class LogSoftmax(Function):
    """y = a - max - log sum exp(a - max) along `axis`;  da = g - exp(y) * sum(g)."""

    def forward(self, a, axis):
        self.axis = axis
        self.y = K.log_softmax(_axis_last(a, axis))
        return _axis_last(self.y, axis)

    def backward(self, g):
        return _axis_last(K.log_softmax_backward(self.y, _axis_last(g, self.axis)), self.axis)


class CrossEntropy(Function):
    """out = mean over kept rows i of (logsumexp(a_i) - a[i, t_i]);  da_i = g/n_kept * (softmax(a_i) - onehot(t_i)).

    a is (N, C), targets (N,) integers; rows whose target is `ignore_index` add nothing.
    """

    def forward(self, a, targets, ignore_index):
        self.a, self.targets, self.ignore_index = a, targets, ignore_index
        loss_rows, self.lse = K.cross_entropy_forward(a, targets, ignore_index)   # [N], [N]
        self.n_kept = int(np.count_nonzero(targets != ignore_index))
        with np.errstate(invalid="ignore", divide="ignore"):    # nothing kept: nan, as PyTorch
            return np.asarray(loss_rows.sum() / self.n_kept, a.dtype)

    def backward(self, g):
        scale = float(g) / self.n_kept if self.n_kept else 0.0
        return K.cross_entropy_backward(self.a, self.targets, self.lse, self.ignore_index, scale)


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b over the last axis.

    With xhat = (x - mean) * rstd and gw = g * w:  dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)),
    dw = sum of g * xhat over all rows,  db = sum of g over all rows (kernels.layer_norm_backward).
    """

    def forward(self, x, w, b, eps):
        self.x, self.w = x, w
        y, self.mean, self.rstd = K.layer_norm(x, w, b, eps)   # [..., D], [...], [...]
        return y

    def backward(self, g):
        return K.layer_norm_backward(g, self.x, self.w, self.mean, self.rstd)


class Attention(Function):
    """out = softmax(scale * q k^T, masked) v in one fused kernel that never stores the (T_q, T_k) weights.

    q (B, H, T_q, d), k (B, H, T_k, d), v (B, H, T_k, d_v), any strides; `mask` None or bool broadcastable
    to (B, H, T_q, T_k), True = may attend. The output and the gradients are laid out in memory like the
    inputs (a head-split view in, a head-split view out). Forward keeps only each row's log-sum-exp; backward
    recomputes the weights P = exp(S - lse) block by block and, with D_i = sum_c dO_ic O_ic,
    gives dV = P^T dO,  dS = P * (dO V^T - D),  dQ = scale dS K,  dK = scale dS^T Q
    (kernels.attention_backward; the derivation is in docs/kernels.md).
    """

    def forward(self, q, k, v, mask, causal, scale):
        self.q, self.k, self.v, self.mask, self.causal, self.scale = q, k, v, mask, causal, scale
        self.out, self.lse = K.attention_forward(q, k, v, mask, causal, scale)   # [B, H, T_q, d_v], [B, H, T_q]
        return self.out

    def backward(self, g):
        return K.attention_backward(self.q, self.k, self.v, self.out, g, self.lse, self.mask, self.causal,
                                    self.scale)
