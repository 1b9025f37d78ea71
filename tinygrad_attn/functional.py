"""Stateless functions of Tensors: losses, attention, and the pieces the `nn` layers are made of.

`import tinygrad_attn.functional as F`. Everything here is built from Tensor ops (so backward comes
for free), except `cross_entropy` and `layer_norm`, which call one fused op each from `ops.py`.
Inputs are checked first, and a bad one raises a ValueError/TypeError naming the function and shapes.

Attention comes in pieces: `causal_mask` and `attention_mask` build the boolean "may attend" mask;
`attention` writes attention out op by op and returns the output and the weights (for teaching and
for layers asked to keep every step); `attention_weights` recomputes the weights outside the graph;
`scaled_dot_product_attention` is the SPEC's function, the output alone, as one fused op.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import ops
from .random import rng
from .tensor import FLOATS, Tensor, apply, broadcast_shape, index_array, no_grad, promote
from .validate import check_int, check_number


def _float_tensor(op: str, x, name: str = "input") -> Tensor:
    """x as a Tensor, which must hold float32 or float64."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.dtype not in FLOATS:
        raise TypeError(f"{op}: {name} must be a float32 or float64 tensor, got dtype {x.dtype} (shape {x.shape})")
    return x


# ----------------------------------------------------------------------------- activations and normalisation


def softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """softmax(x)_i = exp(x_i) / sum_j exp(x_j) along `axis`; a row that is all -inf gives zeros."""
    return _float_tensor("softmax", x).softmax(axis if dim is None else dim)


def log_softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """log_softmax(x)_i = x_i - log sum_j exp(x_j) along `axis` (computed stably, not as log(softmax))."""
    return _float_tensor("log_softmax", x).log_softmax(axis if dim is None else dim)


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return _float_tensor("gelu", x).gelu()


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return _float_tensor("relu", x).relu()


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return _float_tensor("silu", x).silu()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return _float_tensor("leaky_relu", x).leaky_relu(negative_slope)


def softplus(x: Tensor) -> Tensor:
    """ln(1 + e^x), stable for large |x|."""
    return _float_tensor("softplus", x).softplus()


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias over the last axis (population variance).

    One fused op (`ops.LayerNorm`); weight and bias have shape (D,) where D = x.shape[-1].
    """
    x = _float_tensor("layer_norm", x)
    weight, bias = _float_tensor("layer_norm", weight, "weight"), _float_tensor("layer_norm", bias, "bias")
    if x.ndim == 0 or weight.shape != (x.shape[-1],) or bias.shape != (x.shape[-1],):
        raise ValueError(f"layer_norm: input of shape {x.shape} needs weight and bias of shape "
                         f"({x.shape[-1] if x.ndim else '?'},), got {weight.shape} and {bias.shape}")
    x, weight, bias = promote(x, weight, bias)
    return apply(ops.LayerNorm, x, weight, bias, eps=float(eps))


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), so E[output] = x.

    Identity when `training` is False or p == 0. The mask is drawn from the package generator.
    """
    p = check_number("dropout", "p", p, min=0.0, max=1.0)
    x = _float_tensor("dropout", x)
    if not training or p == 0.0:
        return x
    keep = rng().random(x.shape) >= p                          # [x.shape] bool, True with probability 1-p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return x * (keep * scale).astype(x.dtype)


# ----------------------------------------------------------------------------- linear maps and lookups


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W + b with W of shape (in, out): the row-vector convention, q = x W_q."""
    x = _float_tensor("linear", x)
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
                         f"(the input's last axis must equal the weight's first)")
    if bias is not None and bias.shape == weight.shape[1:] and x.ndim > 1:   # the usual case: one fused op
        x, weight, bias = promote(x, _float_tensor("linear", weight, "weight"), _float_tensor("linear", bias, "bias"))
        return apply(ops.Linear, x, weight, bias)              # [..., in] @ [in, out] + [out] -> [..., out]
    y = x @ weight                                             # [..., in] @ [in, out] -> [..., out]
    return y if bias is None else y + bias                     # [..., out] + broadcast bias


def embedding(indices, weight: Tensor) -> Tensor:
    """Row lookup: out[..., :] = weight[indices[...], :]. Backward adds each row's gradient into
    weight's row, so an index used twice gets the sum of both gradients."""
    idx = index_array("embedding", indices)
    if idx.dtype == np.bool_:
        raise TypeError(f"embedding: indices must be integers, got a boolean array of shape {idx.shape}")
    num = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = idx[(idx < 0) | (idx >= num)].flat[0]
        raise ValueError(f"embedding: index {bad} is out of range for a table of {num} rows "
                         f"(weight shape {weight.shape}, indices shape {idx.shape})")
    return apply(ops.Embedding, weight, ids=idx)               # [...] -> [..., dim]


# ----------------------------------------------------------------------------- losses


def _class_targets(op: str, name: str, scores: Tensor, targets, ignore_index) -> tuple[np.ndarray, int]:
    """Checked class-index targets for scores (N, C) or (B, T, C): (flat int64 targets [N * T], ignore value).

    Each target must be in [0, C) or equal `ignore_index`; the ignore value returned is -1 when there is none
    (no valid target equals it)."""
    t = index_array(op, targets)
    if t.dtype == np.bool_:
        raise TypeError(f"{op}: targets must be integer class indices, got booleans of shape {t.shape}")
    if scores.ndim not in (2, 3):
        raise ValueError(f"{op}: {name} must be (N, C) or (B, T, C), got shape {scores.shape}")
    if t.shape != scores.shape[:-1]:
        raise ValueError(f"{op}: {name} of shape {scores.shape} need targets of shape {scores.shape[:-1]}, "
                         f"got {t.shape}")
    if ignore_index is not None:
        check_int(op, "ignore_index", ignore_index)
    n_classes = scores.shape[-1]
    bad = (t < 0) | (t >= n_classes)
    if ignore_index is not None:
        bad &= t != ignore_index
    if np.any(bad):
        raise ValueError(f"{op}: target {t[bad].flat[0]} is out of range for {n_classes} classes "
                         f"({name} shape {scores.shape}, targets shape {t.shape})")
    ignore = -1 if ignore_index is None else int(ignore_index)
    return np.ascontiguousarray(t.reshape(-1), dtype=np.int64), ignore


def _mean_over(total: Tensor, n_kept: int) -> Tensor:
    """total / n_kept; with nothing kept, nan (as PyTorch) and no gradient anywhere (total is an empty sum)."""
    return total * (1.0 / n_kept if n_kept else math.nan)


def cross_entropy(logits: Tensor, targets, ignore_index: int | None = None, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the kept positions of -log softmax(logits)[target].

    logits: (N, C) or (B, T, C) (classes on the last axis); targets: integers of shape (N,) or
    (B, T), each in [0, C) or equal to `ignore_index` (those positions add nothing and are not
    counted in the mean). With nothing kept the result is nan, as in PyTorch. One fused op
    (`ops.CrossEntropy`): dlogits = (softmax(logits) - onehot(targets)) / n_kept.

    `label_smoothing` = e in [0, 1], as PyTorch: the target is (1 - e) onehot(t) + e / C everywhere, so
    loss = (1 - e) * (the loss above) + e * mean over kept positions of -(1/C) sum_c log softmax(logits)_c.
    """
    logits = _float_tensor("cross_entropy", logits, "logits")
    flat, ignore = _class_targets("cross_entropy", "logits", logits, targets, ignore_index)   # [N]
    label_smoothing = check_number("cross_entropy", "label_smoothing", label_smoothing, min=0.0, max=1.0)
    n_classes = logits.shape[-1]
    loss = apply(ops.CrossEntropy, logits.reshape(-1, n_classes), targets=flat, ignore_index=ignore)
    if not label_smoothing:
        return loss
    rows = np.flatnonzero(flat != ignore)                      # [n_kept]: the positions that count
    logp = logits.reshape(-1, n_classes).log_softmax(-1)       # [N, C]
    uniform = _mean_over(-logp[rows].sum() * (1.0 / n_classes), len(rows))   # cross-entropy against e / C
    return loss * (1.0 - float(label_smoothing)) + uniform * float(label_smoothing)


def nll_loss(log_probs: Tensor, targets, ignore_index: int | None = None) -> Tensor:
    """Mean over the kept positions of -log_probs[target]: `cross_entropy` after a `log_softmax` of your own.

    log_probs: (N, C) or (B, T, C), classes on the last axis; targets and `ignore_index` as in
    `cross_entropy` (nothing kept: nan, as PyTorch). The gradient is -1/n_kept at each kept target, 0 elsewhere.
    """
    log_probs = _float_tensor("nll_loss", log_probs, "log_probs")
    flat, ignore = _class_targets("nll_loss", "log_probs", log_probs, targets, ignore_index)     # [N]
    rows = np.flatnonzero(flat != ignore)                      # [n_kept]
    picked = log_probs.reshape(-1, log_probs.shape[-1])[rows, flat[rows]]   # [N, C] -> [n_kept]
    return _mean_over(-picked.sum(), len(rows))


def one_hot(indices, num_classes: int) -> Tensor:
    """out[..., c] = 1.0 where indices[...] == c, else 0.0: float32 of shape (*indices.shape, num_classes),
    carrying no gradient. Indices must lie in [0, num_classes)."""
    idx = index_array("one_hot", indices)
    if idx.dtype == np.bool_:
        raise TypeError(f"one_hot: indices must be integers, got a boolean array of shape {idx.shape}")
    num_classes = check_int("one_hot", "num_classes", num_classes, min=1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)].flat[0]
        raise ValueError(f"one_hot: index {bad} is out of range for num_classes={num_classes} "
                         f"(indices shape {idx.shape})")
    return Tensor(idx[..., None] == np.arange(num_classes), dtype=np.float32)   # [...] -> [..., num_classes]


def mse_loss(a: Tensor, b) -> Tensor:
    """mean((a - b)^2). Shapes broadcast as in PyTorch, which also warns when they differ."""
    a = _float_tensor("mse_loss", a)
    b = _float_tensor("mse_loss", b if isinstance(b, Tensor) else np.asarray(b, a.dtype), "target")
    if a.shape != b.shape:
        shape = broadcast_shape("mse_loss", a.shape, b.shape)
        warnings.warn(f"mse_loss: input shape {a.shape} and target shape {b.shape} differ; they broadcast to "
                      f"{shape}, which is rarely what was meant", UserWarning, stacklevel=2)
    diff = a - b
    return (diff * diff).mean()


# ----------------------------------------------------------------------------- attention


def causal_mask(t_q: int, t_k: int) -> np.ndarray:
    """(t_q, t_k) bool, True where query i may attend key j: j <= i (top-left aligned, as PyTorch)."""
    return np.tril(np.ones((t_q, t_k), dtype=bool))


def attention_mask(mask, causal: bool, scores_shape: tuple[int, ...], op: str = "attention") -> np.ndarray | None:
    """The boolean "may attend" mask for scores of shape (..., T_q, T_k): `mask` AND the causal mask.

    `mask` (True = may attend) must broadcast to `scores_shape`; None when nothing is masked.
    """
    allowed = None
    if mask is not None:
        allowed = index_array(op, mask)
        if allowed.dtype != np.bool_:
            if not np.all((allowed == 0) | (allowed == 1)):
                raise TypeError(f"{op}: mask must be boolean (True = may attend), got values other than 0/1 "
                                f"in an array of dtype {allowed.dtype} and shape {allowed.shape}")
            allowed = allowed.astype(bool)
        try:
            fits = np.broadcast_shapes(allowed.shape, scores_shape) == tuple(scores_shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{op}: mask of shape {allowed.shape} does not broadcast to the attention "
                             f"scores' shape {tuple(scores_shape)}")
    if causal:
        tri = causal_mask(*scores_shape[-2:])
        allowed = tri if allowed is None else allowed & tri
    return allowed


def _check_qkv(op: str, q, k, v) -> tuple[Tensor, Tensor, Tensor]:
    q, k, v = (_float_tensor(op, t, name) for t, name in ((q, "q"), (k, "k"), (v, "v")))
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"{op}: q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise ValueError(f"{op}: q, k, v must be at least 2-D (..., T, d), got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{op}: q (..., T_q, d_k), k (..., T_k, d_k) and v (..., T_k, d_v) do not fit: "
                         f"got shapes {q.shape}, {k.shape} and {v.shape}")
    broadcast_shape(op, q.shape[:-2], k.shape[:-2], v.shape[:-2])
    return q, k, v


def _scores_scale(q: Tensor, scale: float | None) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def _weights(q: Tensor, k: Tensor, mask, causal: bool, scale: float | None, op: str) -> Tensor:
    """P = softmax(q k^T * scale, masked) over keys, as a graph of Tensor ops: (..., T_q, T_k)."""
    S = q @ k.transpose(-2, -1) * _scores_scale(q, scale)     # [..., T_q, d_k] @ [..., d_k, T_k] -> [..., T_q, T_k]
    allowed = attention_mask(mask, causal, S.shape, op)
    if allowed is not None:
        S = S.masked_fill(~allowed, -math.inf)                 # exp(-inf) = 0: no weight on masked keys
    return S.softmax(-1)                                       # [..., T_q, T_k], each row sums to 1 (or is all 0)


def attention(q: Tensor, k: Tensor, v: Tensor, mask=None, causal: bool = False,
              scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention written out op by op, returning the output and the weights: (out, P).

    S = q k^T * scale (scale defaults to 1/sqrt(d_k)), masked positions set to -inf;  P = softmax(S)
    over keys;  out = P v. Every step is a node of the graph, so P (and S, through P's graph) can
    `retain_grad()`. Shapes: q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v) -> out
    (..., T_q, d_v), P (..., T_q, T_k). `scaled_dot_product_attention` computes the same output
    with one fused op instead.
    """
    op = "scaled_dot_product_attention"
    q, k, v = _check_qkv(op, q, k, v)
    P = _weights(q, k, mask, causal, scale, op)                # [..., T_q, T_k]
    return P @ v, P                                            # [..., T_q, T_k] @ [..., T_k, d_v] -> [..., T_q, d_v]


def attention_weights(q, k, mask=None, causal: bool = False, scale: float | None = None) -> np.ndarray:
    """The weights softmax(q k^T * scale, masked) as a numpy array, computed outside the graph."""
    with no_grad():
        q, k = _float_tensor("attention_weights", q, "q"), _float_tensor("attention_weights", k, "k")
        return _weights(q, k, mask, causal, scale, "attention_weights").data


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask=None, causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d_k) + masking) v, as one fused op (`ops.Attention`).

    q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v) -> (..., T_q, d_v); batch axes broadcast.
    `mask`: boolean, True = may attend (the PyTorch convention), broadcast against (..., T_q, T_k).
    `causal=True`: query i attends keys j <= i (top-left aligned when T_q != T_k, as PyTorch); it is
    combined with `mask` by AND. A masked score becomes -inf, so its weight is exactly 0 and no
    gradient flows through it. A query whose every key is masked gets all-zero weights (the softmax
    of an all -inf row is defined as 0 here), so a zero output row and zero gradients, never NaN;
    current PyTorch does the same (older versions gave NaN). `scale` replaces 1/sqrt(d_k) (as in
    PyTorch). On the "numba" backend the kernel streams over keys with an online softmax and never
    stores the (T_q, T_k) weights; on "numpy" the reference kernel does store them.
    """
    op = "scaled_dot_product_attention"
    q, k, v = _check_qkv(op, q, k, v)
    batch = broadcast_shape(op, q.shape[:-2], k.shape[:-2], v.shape[:-2])
    t_q, (t_k, d_v) = q.shape[-2], v.shape[-2:]
    allowed = attention_mask(mask, False, (*batch, t_q, t_k), op)
    # The kernel takes [B, H, T, d] with any strides, so a multi-head layer's head-split views of its
    # [B, T, H*d_h] projections go in, and their gradients come out, without a copy.
    heads = (1,) * (2 - len(batch)) + batch if len(batch) <= 2 else (math.prod(batch[:-1]), batch[-1])
    if allowed is not None:                                    # [..., T_q, T_k] -> [B, H, T_q, T_k], a view
        allowed = np.broadcast_to(allowed, (*batch, t_q, t_k)).reshape(*heads, t_q, t_k)
    q4, k4, v4 = (_as_heads(t, batch, heads) for t in (q, k, v))
    out = apply(ops.Attention, q4, k4, v4, mask=allowed, causal=bool(causal), scale=_scores_scale(q, scale))
    return out if len(batch) == 2 else out.reshape(*batch, t_q, d_v)   # [B, H, T_q, d_v] -> [..., T_q, d_v]


def _as_heads(t: Tensor, batch: tuple[int, ...], heads: tuple[int, int]) -> Tensor:
    """t [..., T, d] as [B, H, T, d] (`heads` = (B, H)), broadcast to the joint batch shape first."""
    if t.shape[:-2] != batch:                                  # a broadcast batch axis: materialise it
        t = t + np.zeros((*batch, 1, 1), t.dtype)
    return t if len(batch) == 2 else t.reshape(*heads, *t.shape[-2:])
