"""Exercise `self_attention`: the weight gradients dW_q, dW_k, dW_v of one causal self-attention layer."""

import math
from types import ModuleType

import numpy as np

from ... import nn
from ...backend import backend
from ...tensor import Tensor
from .grading import NO_ROWSUM, NO_SCALE, UNBROADCAST, Mistake, Result, as_function, call, compare_each, gradcheck_part

NAME = "self_attention"
GOAL = "SelfAttention's dW_q, dW_k, dW_v: the whole chain from dH back to the weights, over a batch"
SOLUTION = '''\
"""Exercise `self_attention`: the gradients of nn.SelfAttention's weights W_q, W_k, W_v.

Forward (given below), a batch of sequences X (B, T, d_model), causal (query i sees keys j <= i):
    Q = X W_q,  K = X W_k,  V = X W_v          (B, T, d_k), (B, T, d_k), (B, T, d_v)
    S = Q K^T / sqrt(d_k), masked to -inf      (B, T, T)
    P = softmax(S)                             (B, T, T), over each row
    H = P V                                    (B, T, d_v)

Your job: self_attention_backward(X, W_q, W_k, W_v, dH) returns (dW_q, dW_k, dW_v), given dH = dL/dH.
Derive it (the `sdpa` exercise did the middle part for one sequence):
    dV = P^T dH,  dP = dH V^T,  dS = P * (dP - rowsum(dP * P)),
    dQ = dS K / sqrt(d_k),  dK = dS^T Q / sqrt(d_k)                  (per sequence of the batch)
    dW_q = X^T dQ,  dW_k = X^T dK,  dW_v = X^T dV
The weights are shared by every sequence of the batch (they were broadcast over B), so their
gradients are summed over it: dW_q has shape (d_model, d_k), not (B, d_model, d_k).
With a batch axis, transpose the last two axes only: np.swapaxes(A, -1, -2).

Check it:  tinygrad-attn exercise check self_attention [PATH]
Stuck?     docs/backprop-through-attention.md, section 6;  tinygrad-attn exercise solution self_attention
"""

import math

import numpy as np


def forward(X: np.ndarray, W_q: np.ndarray, W_k: np.ndarray, W_v: np.ndarray):
    """The forward (given), causal: returns Q, K, V, P, H."""
    Q, K, V = X @ W_q, X @ W_k, X @ W_v                        # [B, T, d_model] @ [d_model, d_k] -> [B, T, d_k]
    T, d_k = X.shape[-2], W_q.shape[-1]
    S = Q @ np.swapaxes(K, -1, -2) / math.sqrt(d_k)            # [B, T, d_k] @ [B, d_k, T] -> [B, T, T]
    S = np.where(np.tril(np.ones((T, T), dtype=bool)), S, -np.inf)   # causal: key j <= query i
    E = np.exp(S - S.max(axis=-1, keepdims=True))
    P = E / E.sum(axis=-1, keepdims=True)                      # [B, T, T]
    return Q, K, V, P, P @ V                                   # H: [B, T, T] @ [B, T, d_v] -> [B, T, d_v]


def self_attention_backward(X: np.ndarray, W_q: np.ndarray, W_k: np.ndarray, W_v: np.ndarray, dH: np.ndarray):
    """(dW_q, dW_k, dW_v) for H = forward(X, W_q, W_k, W_v)[-1], from dH = dL/dH (B, T, d_v)."""
    # >>> raise NotImplementedError("write dW_q, dW_k, dW_v (see the docstring at the top)")
    Q, K, V, P, H = forward(X, W_q, W_k, W_v)
    scale = 1 / math.sqrt(W_q.shape[-1])
    t = lambda A: np.swapaxes(A, -1, -2)                       # noqa: E731  transpose of each matrix in the batch
    dV = t(P) @ dH                                             # reverses H = P V: [B, T, d_v]
    dP = dH @ t(V)                                             # [B, T, T]
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))       # reverses the softmax (masked: P = 0 -> dS = 0)
    dQ = dS @ K * scale                                        # reverses S = Q K^T * scale: [B, T, d_k]
    dK = t(dS) @ Q * scale                                     # [B, T, d_k]
    dW_q = (t(X) @ dQ).sum(axis=0)                             # reverses Q = X W_q, summed over the batch
    dW_k = (t(X) @ dK).sum(axis=0)
    dW_v = (t(X) @ dV).sum(axis=0)
    return dW_q, dW_k, dW_v
    # <<<
'''
SWAPPED = "dW_q and dW_k swapped"
NEEDS = ("forward", "self_attention_backward")
MISTAKES = (UNBROADCAST, NO_SCALE, NO_ROWSUM, SWAPPED)
B, T, D, D_K, D_V = 2, 5, 4, 3, 2


def _chain(X, W_q, W_k, W_v, dH, rowsum: bool = True):
    """This module's own numpy chain (for the variants a mistake gives): (dW_q, dW_k)."""
    t = lambda A: np.swapaxes(A, -1, -2)                       # noqa: E731
    Q, K, V = X @ W_q, X @ W_k, X @ W_v
    S = np.where(np.tril(np.ones((T, T), dtype=bool)), Q @ t(K) / math.sqrt(D_K), -np.inf)
    P = np.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    dP = dH @ t(V)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True)) if rowsum else P * dP
    return (t(X) @ dS @ K).sum(0) / math.sqrt(D_K), (t(X) @ t(dS) @ Q).sum(0) / math.sqrt(D_K)


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(5)
    X, dH = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, D_V))
    layer = nn.SelfAttention(D, D_K, D_V, causal=True).to(np.float64)
    for p in layer.parameters():
        p.data = rng.standard_normal(p.shape) / math.sqrt(D)
    W = [layer.W_q.data.copy(), layer.W_k.data.copy(), layer.W_v.data.copy()]
    with backend("numpy"):
        layer(Tensor(X)).backward(dH)
    want = [layer.W_q.grad, layer.W_k.grad, layer.W_v.grad]
    no_rowsum = _chain(X, *W, dH, rowsum=False)
    scale_hint = "S = Q K^T / sqrt(d_k): the 1/sqrt(d_k) multiplies dQ and dK, so dW_q and dW_k too"
    rowsum_hint = "dS = P * dP leaves out the softmax Jacobian's -P P^T part: dS = P * (dP - rowsum(dP * P))"
    mistakes = [
        [Mistake(NO_SCALE, scale_hint, want[0] * math.sqrt(D_K)), Mistake(SWAPPED, "dW_q = X^T dQ", want[1]),
         Mistake(NO_ROWSUM, rowsum_hint, no_rowsum[0])],
        [Mistake(NO_SCALE, scale_hint, want[1] * math.sqrt(D_K)), Mistake(SWAPPED, "dW_k = X^T dK", want[0]),
         Mistake(NO_ROWSUM, rowsum_hint, no_rowsum[1])],
        [],
    ]
    got = call("dW_q, dW_k, dW_v", learner.self_attention_backward, X.copy(), *(w.copy() for w in W), dH.copy())
    results = compare_each(("dW_q", "dW_k", "dW_v"), got, want, mistakes)
    x = X[:1, :3]                                              # gradcheck on a smaller batch, the weights as inputs
    op = as_function(lambda *w: learner.forward(x, *w)[-1],
                     lambda ins, out, g: tuple(learner.self_attention_backward(x, *ins, g)))
    inputs = [Tensor(w, requires_grad=True) for w in W]
    results.append(gradcheck_part("gradcheck", lambda *t: op.apply(*t), inputs))
    return results
