"""Gradient checks of the layers, losses and attention, for `tinygrad-attn gradcheck` (see `checks.py`).

A layer check builds the module in float64 and passes its parameters as inputs, so every weight is
checked as well as the input: `fn(x, *params)` calls the module, whose parameters *are* those inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import functional as F
from .. import nn
from ..tensor import Tensor
from .op_checks import Check


def _x(*shape: int, seed: int = 0) -> Tensor:
    """A float64 input with requires_grad."""
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True, dtype=np.float64)


def _layer(name: str, build: Callable[[], nn.Module], make_x: Callable[[], Tensor],
           call: Callable[[nn.Module, Tensor], Tensor] = lambda m, x: m(x)) -> Check:
    """A Check of module `build()` w.r.t. its input and every parameter, in float64."""
    built: list[nn.Module] = []

    def make_inputs() -> list[Tensor]:
        module = build().to(np.float64)
        built[:] = [module]                                    # fn below calls the module made last
        return [make_x(), *module.parameters()]

    return Check(name, lambda x, *params: call(built[0], x), make_inputs)


def _padding_mask(batch: int, t: int) -> np.ndarray:
    """(batch, t, t) "may attend" mask: sequence b has t - b real tokens, padding after them."""
    lengths = np.maximum(t - np.arange(batch), 1)
    return np.broadcast_to(np.arange(t)[None, None, :] < lengths[:, None, None], (batch, t, t)).copy()


_TARGETS = np.array([[2, 0, 4], [1, -100, 3]])               # -100: ignored position
_PAD = _padding_mask(2, 5)

LAYER_CHECKS: list[Check] = [
    _layer("nn.Linear", lambda: nn.Linear(4, 3), lambda: _x(2, 5, 4)),
    _layer("nn.Embedding (w.r.t. weight, repeats)", lambda: nn.Embedding(5, 3),
           lambda: Tensor([[0, 3, 3], [1, 0, 3]], dtype=np.int64)),
    _layer("nn.LayerNorm", lambda: nn.LayerNorm(6), lambda: _x(2, 3, 6)),
    _layer("nn.Dropout (eval)", lambda: nn.Dropout(0.5).eval(), lambda: _x(3, 4)),
    _layer("nn.SelfAttention", lambda: nn.SelfAttention(4, d_k=3, d_v=5), lambda: _x(2, 7, 4)),
    _layer("nn.SelfAttention (padding mask)", lambda: nn.SelfAttention(4), lambda: _x(2, 5, 4),
           lambda m, x: m(x, mask=_PAD)),
    _layer("nn.SelfAttention (causal)", lambda: nn.SelfAttention(4, causal=True), lambda: _x(7, 4)),
    _layer("nn.MultiHeadAttention", lambda: nn.MultiHeadAttention(6, 3), lambda: _x(2, 5, 6)),
    _layer("nn.MultiHeadAttention (causal, mask)", lambda: nn.MultiHeadAttention(4, 2, causal=True),
           lambda: _x(2, 5, 4), lambda m, x: m(x, mask=_PAD)),
    _layer("nn.SiLU, nn.Tanh in nn.Sequential", lambda: nn.Sequential(nn.Linear(3, 4), nn.SiLU(), nn.Tanh()),
           lambda: _x(5, 3)),
    _layer("nn.ModuleList of Linear", lambda: nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 2)]), lambda: _x(2, 3),
           lambda m, x: m[1](m[0](x).relu())),
    _layer("nn.TransformerBlock", lambda: nn.TransformerBlock(4, 2, d_ff=8, causal=True), lambda: _x(2, 3, 4)),
    Check("F.cross_entropy (ignore_index)", lambda a: F.cross_entropy(a, _TARGETS, ignore_index=-100),
          lambda: [_x(2, 3, 5)]),
    Check("F.cross_entropy (label_smoothing)", lambda a: F.cross_entropy(a, _TARGETS, ignore_index=-100,
                                                                         label_smoothing=0.1), lambda: [_x(2, 3, 5)]),
    Check("F.nll_loss (of log_softmax)", lambda a: F.nll_loss(a.log_softmax(-1), _TARGETS, ignore_index=-100),
          lambda: [_x(2, 3, 5)]),
    Check("F.mse_loss", lambda a, b: F.mse_loss(a, b), lambda: [_x(3, 4), _x(3, 4, seed=1)]),
    Check("F.sdpa", F.scaled_dot_product_attention, lambda: [_x(2, 5, 3), _x(2, 5, 3, seed=1), _x(2, 5, 4, seed=2)]),
    Check("F.sdpa (padding mask)", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=_PAD),
          lambda: [_x(2, 5, 3), _x(2, 5, 3, seed=1), _x(2, 5, 4, seed=2)]),
    Check("F.sdpa (causal)", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
          lambda: [_x(2, 7, 3), _x(2, 7, 3, seed=1), _x(2, 7, 2, seed=2)]),
    Check("F.sdpa (T_q != T_k, causal)", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
          lambda: [_x(3, 2), _x(5, 2, seed=1), _x(5, 3, seed=2)]),
]
