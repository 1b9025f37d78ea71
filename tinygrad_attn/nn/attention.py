"""Self-attention, one head and many, written line by line in the paper's notation (row vectors).

Both layers run the fused `F.scaled_dot_product_attention` and keep the last forward's queries and
keys, so `.attn` (the weights, as a numpy array) is computed only when someone looks at it.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from ..tensor import Tensor, index_array
from ..validate import check_int, check_number
from .module import Module, Parameter


class _AttentionWeights:
    """`.attn` of an attention layer: the last forward's weights, recomputed from its saved Q and K on
    first access (the fused kernel never stores the (T, T) matrix) and cached until the next forward."""

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        if layer._attn is None and layer._last_qk is not None:
            Q, K, mask = layer._last_qk
            layer._attn = F.attention_weights(Q, K, mask, layer.causal, layer.scale)
        return layer._attn


def check_input(layer: str, x: Tensor, d_model: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: x must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise ValueError(f"{layer}: expected x of shape (T, {d_model}) or (B, T, {d_model}), got {x.shape}")


def check_mask(layer: str, mask, x: Tensor) -> np.ndarray:
    """A multi-head layer's `mask` as a bool array, which must be (T, T) or (B, T, T) for x (T, d) or (B, T, d);
    checked before it is reshaped for the heads, so an error names the shape the user passed."""
    allowed = index_array(layer, mask)
    T = x.shape[-2]
    fits = allowed.ndim in (2, 3) and allowed.ndim <= x.ndim and allowed.shape[-2:] == (T, T)
    if fits and allowed.ndim == 3:
        fits = allowed.shape[0] in (1, x.shape[0])
    if not fits:
        shapes = f"({T}, {T})" + (f" or ({x.shape[0]}, {T}, {T})" if x.ndim == 3 else "")
        raise ValueError(f"{layer}: mask must be (T, T) or (B, T, T) for x of shape {x.shape}, got {allowed.shape} "
                         f"(expected {shapes})")
    return F.attention_mask(allowed, False, (*x.shape[:-1], T), layer)   # bool, True = may attend


class SelfAttention(Module):
    """Single-head self-attention: every token x_i looks at every token x_j (itself included).

    Forward, with X the (T, d_model) rows of tokens (a batch axis in front works the same way):

        Q = X W_q               (T, d_k)   queries: q_i = x_i W_q
        K = X W_k               (T, d_k)   keys:    k_j = x_j W_k
        V = X W_v               (T, d_v)   values:  v_j = x_j W_v
        S = Q K^T / sqrt(d_k)   (T, T)     scores: S_ij = q_i . k_j / sqrt(d_k); -inf where masked
        P = softmax(S)          (T, T)     softmax of each row: P_ij = how much token i attends token j
        H = P V                 (T, d_v)   h_i = sum_j P_ij v_j

    Backward, from dH = dL/dH (⊙ is the elementwise product; rowsum sums each row, keeping a
    (T, 1) column that broadcasts across the row):

        dV = P^T dH
        dP = dH V^T
        dS = P ⊙ (dP - rowsum(dP ⊙ P))      (the softmax Jacobian; 0 wherever P is 0, e.g. masked)
        dQ = dS K / sqrt(d_k)
        dK = dS^T Q / sqrt(d_k)
        dW_q = X^T dQ,  dW_k = X^T dK,  dW_v = X^T dV
        dX = dQ W_q^T + dK W_k^T + dV W_v^T

    Parameters `W_q` (d_model, d_k), `W_k` (d_model, d_k), `W_v` (d_model, d_v), no bias; d_k and
    d_v default to d_model; each starts xavier-uniform, as PyTorch's separate q/k/v projections.
    `mask` (True = may attend) and `causal` work as in `F.scaled_dot_product_attention`.

    `scale` replaces 1/sqrt(d_k) (`scale=1.0` drops it, to see what it is for).

    By default the last three lines run as one fused op (`F.scaled_dot_product_attention`), which
    never stores S or P. With `keep_intermediates=True` (an argument or an attribute) they run op by
    op as written above, and `.intermediates` maps "Q", "K", "V", "S", "P", "H" to the Tensors of
    the last forward: call `.retain_grad()` on any of them before `backward()` to read dL/dS,
    dL/dP, ... in its `.grad`. Either way, after each forward `.attn` is P as a numpy array
    (..., T, T); on the fused path it is recomputed from the saved Q and K when first read.
    """

    attn = _AttentionWeights()

    def __init__(self, d_model: int, d_k: int | None = None, d_v: int | None = None, causal: bool = False,
                 scale: float | None = None, keep_intermediates: bool = False):
        self.d_model = check_int("SelfAttention", "d_model", d_model, min=1)
        self.d_k = d_model if d_k is None else check_int("SelfAttention", "d_k", d_k, min=1)
        self.d_v = d_model if d_v is None else check_int("SelfAttention", "d_v", d_v, min=1)
        self.causal, self.keep_intermediates = causal, keep_intermediates
        self.scale = (1.0 / math.sqrt(self.d_k) if scale is None
                      else check_number("SelfAttention", "scale", scale, min=-math.inf))
        self.W_q = Parameter(init.xavier_uniform((d_model, self.d_k), d_model, self.d_k))
        self.W_k = Parameter(init.xavier_uniform((d_model, self.d_k), d_model, self.d_k))
        self.W_v = Parameter(init.xavier_uniform((d_model, self.d_v), d_model, self.d_v))
        self._attn: np.ndarray | None = None
        self._last_qk: tuple | None = None
        self.intermediates: dict[str, Tensor] = {}

    def forward(self, x: Tensor, mask=None) -> Tensor:
        check_input("SelfAttention", x, self.d_model)
        if mask is not None:                                   # fail early, naming this layer
            F.attention_mask(mask, False, (*x.shape[:-1], x.shape[-2]), "SelfAttention")
        Q = x @ self.W_q                                       # [B, T, d_model] @ [d_model, d_k] -> [B, T, d_k]
        K = x @ self.W_k                                       # [B, T, d_model] @ [d_model, d_k] -> [B, T, d_k]
        V = x @ self.W_v                                       # [B, T, d_model] @ [d_model, d_v] -> [B, T, d_v]
        if not self.keep_intermediates:                        # one fused op: S and P are never stored
            self._attn, self._last_qk = None, (Q.detach(), K.detach(), mask)
            return F.scaled_dot_product_attention(Q, K, V, mask, self.causal, self.scale)   # [B, T, d_v]
        S = Q @ K.transpose(-2, -1) * self.scale               # [B, T, d_k] @ [B, d_k, T] -> [B, T, T]
        allowed = F.attention_mask(mask, self.causal, S.shape, "SelfAttention")
        if allowed is not None:
            S = S.masked_fill(~allowed, -math.inf)             # [B, T, T], -inf where query i may not see key j
        P = S.softmax(-1)                                      # [B, T, T], row i sums to 1 (all 0 if fully masked)
        H = P @ V                                              # [B, T, T] @ [B, T, d_v] -> [B, T, d_v]
        self._attn, self._last_qk = P.data, None
        self.intermediates = {"Q": Q, "K": K, "V": V, "S": S, "P": P, "H": H}
        return H


class MultiHeadAttention(Module):
    """n_heads attentions side by side on slices of one projection, then mixed by W_o.

    Q = X W_q, K = X W_k, V = X W_v, each (T, d_model). Head h works on columns h*d_h:(h+1)*d_h
    (d_h = d_model / n_heads): H_h = softmax(Q_h K_h^T / sqrt(d_h)) V_h. The heads are concatenated
    in order, [H_0 | H_1 | ...] (T, d_model), and the output is that times W_o.

    Parameters `W_q`, `W_k`, `W_v`, `W_o`, each (d_model, d_model), no bias. Like PyTorch's
    `nn.MultiheadAttention`, W_q, W_k, W_v start xavier-uniform as one (d_model, 3 d_model) block
    and W_o as a Linear, U(-1/sqrt(d_model), 1/sqrt(d_model)). `mask` (True = may attend) is
    (T, T) or (B, T, T) and applies to every head; `scale` replaces 1/sqrt(d_h). The heads run as
    one fused op; after each forward, `.attn` holds the weights as a numpy array
    (..., n_heads, T, T), recomputed from the saved Q and K when first read.
    """

    attn = _AttentionWeights()

    def __init__(self, d_model: int, n_heads: int, causal: bool = False, scale: float | None = None):
        layer = "MultiHeadAttention"
        d_model, n_heads = check_int(layer, "d_model", d_model, min=1), check_int(layer, "n_heads", n_heads, min=1)
        if d_model % n_heads != 0:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} must be a positive multiple of "
                             f"n_heads={n_heads} (each head gets d_model / n_heads columns)")
        self.d_model, self.n_heads, self.d_h, self.causal = d_model, n_heads, d_model // n_heads, causal
        self.scale = 1.0 / math.sqrt(self.d_h) if scale is None else check_number(layer, "scale", scale, min=-math.inf)
        shape = (d_model, d_model)
        self.W_q = Parameter(init.xavier_uniform(shape, d_model, 3 * d_model))
        self.W_k = Parameter(init.xavier_uniform(shape, d_model, 3 * d_model))
        self.W_v = Parameter(init.xavier_uniform(shape, d_model, 3 * d_model))
        self.W_o = Parameter(init.uniform(shape, 1.0 / math.sqrt(d_model)))
        self._attn: np.ndarray | None = None
        self._last_qk: tuple | None = None

    def _split_heads(self, t: Tensor) -> Tensor:
        """[..., T, d_model] -> [..., n_heads, T, d_h]: head h gets columns h*d_h:(h+1)*d_h."""
        *lead, T, _ = t.shape
        return t.reshape(*lead, T, self.n_heads, self.d_h).transpose(-3, -2)

    def forward(self, x: Tensor, mask=None) -> Tensor:
        check_input("MultiHeadAttention", x, self.d_model)
        if mask is not None:
            mask = check_mask("MultiHeadAttention", mask, x)
            mask = mask[..., None, :, :]                       # [B, 1, T, T]: the same mask for every head
        Q = self._split_heads(x @ self.W_q)                    # [B, T, d_model] -> [B, n_heads, T, d_h]
        K = self._split_heads(x @ self.W_k)                    # [B, T, d_model] -> [B, n_heads, T, d_h]
        V = self._split_heads(x @ self.W_v)                    # [B, T, d_model] -> [B, n_heads, T, d_h]
        H = F.scaled_dot_product_attention(Q, K, V, mask, self.causal, self.scale)   # [B, n_heads, T, d_h]
        self._attn, self._last_qk = None, (Q.detach(), K.detach(), mask)
        H = H.transpose(-3, -2)                                # [B, T, n_heads, d_h]
        H = H.reshape(*H.shape[:-2], self.d_model)             # [B, T, d_model]: [H_0 | H_1 | ...]
        return H @ self.W_o                                    # [B, T, d_model] @ [d_model, d_model] -> [B, T, d_model]
