"""Numpy reference for scaled-dot-product attention: the "numpy" backend and the ground truth of the fused kernels.

Same names, signatures and semantics as `attention.py`, but every step materialises the full (Tq, Tk) score
matrix, so memory grows as O(Tq * Tk). Shapes: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) with any batch
axes, e.g. (B, H) or (BH,), and any strides; `mask` is None or a bool array broadcastable to (..., Tq, Tk) with
True = "may attend"; `causal` lets query i attend keys j <= i. A fully masked row gives o = 0, lse = -inf and
zero gradients (never NaN). Outputs are plain C-contiguous arrays: unlike the fused kernels, no layout promise.
"""

import numpy as np


def _allowed(mask: np.ndarray | None, causal: bool, shape: tuple[int, ...]) -> np.ndarray | None:
    """Boolean (..., Tq, Tk) matrix of the allowed (query, key) pairs for scores of `shape`, or None when every
    pair is allowed."""
    allowed = None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    if causal:
        tri = np.tril(np.ones(shape[-2:], dtype=bool))         # j <= i, top-left aligned
        allowed = np.broadcast_to(tri if allowed is None else allowed & tri, shape)
    return allowed


def _probabilities(q, k, mask, causal, scale, lse):
    """p_ij = exp(s_ij - lse_i) with s = scale * q k^T; exactly 0 where not allowed or the row is fully masked."""
    s = scale * (q @ k.swapaxes(-1, -2))
    allowed = _allowed(mask, causal, s.shape)
    live = np.isfinite(lse)[..., None]                          # rows with at least one allowed key
    keep = live if allowed is None else allowed & live
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(keep, np.exp(s - np.where(live, lse[..., None], 0)), 0).astype(q.dtype)


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, causal: bool,
                      scale: float) -> tuple[np.ndarray, np.ndarray]:
    """o = softmax(scale * q k^T, masked) @ v and lse_i = log sum_j exp(s_ij) over the allowed keys j.

    Returns (o (..., Tq, dv), lse (..., Tq)); a fully masked row has o = 0 and lse = -inf."""
    s = scale * (q @ k.swapaxes(-1, -2))                        # (..., Tq, Tk)
    allowed = _allowed(mask, causal, s.shape)
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True, initial=-np.inf)      # initial: no keys at all (Tk = 0) is fully masked
    m = np.where(np.isneginf(m), 0, m)                          # fully masked row: exp(-inf) = 0 everywhere
    e = np.exp(s - m)
    total = np.sum(e, axis=-1, keepdims=True)
    o = (e / np.where(total == 0, 1, total)) @ v
    with np.errstate(divide="ignore"):
        lse = (m + np.log(total))[..., 0]                       # log(0) = -inf for a fully masked row
    return o.astype(q.dtype), lse.astype(q.dtype)


def attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray, do: np.ndarray,
                       lse: np.ndarray, mask: np.ndarray | None, causal: bool,
                       scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of sum(o * do) with respect to q, k, v, from the forward's o and lse.

    p = exp(s - lse); dv = p^T do; dp = do v^T; D_i = sum_c do_ic o_ic; ds = p (dp - D);
    dq = scale ds k; dk = scale ds^T q."""
    p = _probabilities(q, k, mask, causal, scale, lse)          # (..., Tq, Tk)
    dv = p.swapaxes(-1, -2) @ do                                # o = p @ v
    dp = do @ v.swapaxes(-1, -2)
    big_d = np.sum(do * o, axis=-1, keepdims=True)              # D_i = sum_j p_ij dp_ij
    ds = p * (dp - big_d)                                       # softmax backward
    dq = scale * (ds @ k)                                       # s = scale * q k^T
    dk = scale * (ds.swapaxes(-1, -2) @ q)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)
