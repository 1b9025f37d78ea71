"""The op checks of `tinygrad-attn gradcheck`: a `Check` names a function of Tensors and how to build its
float64 inputs. Layer checks live in `layer_checks.py`; `checks.py` runs both.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..tensor import Tensor, cat, matmul, maximum, minimum, stack, where


@dataclass
class Check:
    name: str
    fn: Callable[..., Tensor]
    make_inputs: Callable[[], list[Tensor]]


def _t(*shape: int, positive: bool = False, seed: int = 0) -> Tensor:
    """A float64 leaf with requires_grad; `positive` keeps it away from 0 (for log, sqrt, division)."""
    x = np.random.default_rng(seed + len(shape) * 7 + sum(shape)).standard_normal(shape)
    return Tensor(np.abs(x) + 0.5 if positive else x, requires_grad=True, dtype=np.float64)


def _distinct(*shape: int) -> Tensor:
    """Values with no ties (max and relu are not differentiable at ties or at 0)."""
    x = np.random.default_rng(1).permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 0.05 * np.prod(shape)
    return Tensor(x + 0.013, requires_grad=True, dtype=np.float64)


OP_CHECKS = [
    Check("add (broadcast)", lambda a, b: a + b, lambda: [_t(3, 1, 4), _t(5, 4)]),
    Check("sub (scalar left)", lambda a: 2.0 - a, lambda: [_t(3, 5)]),
    Check("mul (broadcast)", lambda a, b: a * b, lambda: [_t(2, 3, 1), _t(1, 7)]),
    Check("div", lambda a, b: a / b, lambda: [_t(3, 4), _t(4, positive=True)]),
    Check("pow (scalar exponent)", lambda a: a**3, lambda: [_t(2, 5)]),
    Check("pow (tensor exponent)", lambda a, b: a**b, lambda: [_t(3, 2, positive=True), _t(2)]),
    Check("neg", lambda a: -a, lambda: [_t(7)]),
    Check("matmul 2-D", lambda a, b: a @ b, lambda: [_t(3, 5), _t(5, 2)]),
    Check("matmul batched, broadcast", lambda a, b: matmul(a, b), lambda: [_t(2, 1, 3, 5), _t(4, 5, 3)]),
    Check("matmul vector", lambda a, b: a @ b, lambda: [_t(5), _t(2, 5, 3)]),
    Check("sum axis", lambda a: a.sum(axis=1), lambda: [_t(3, 4, 2)]),
    Check("mean keepdims", lambda a: a.mean(axis=(0, 2), keepdims=True), lambda: [_t(3, 4, 2)]),
    Check("max (with ties)", lambda a: a.max(axis=1), lambda: [Tensor([[1.0, 3.0, 3.0], [2.0, -1.0, 0.5]],
                                                                    requires_grad=True, dtype=np.float64)]),
    Check("var", lambda a: a.var(axis=-1), lambda: [_t(3, 5)]),
    Check("exp", lambda a: a.exp(), lambda: [_t(2, 3)]),
    Check("log", lambda a: a.log(), lambda: [_t(2, 3, positive=True)]),
    Check("sqrt", lambda a: a.sqrt(), lambda: [_t(5, positive=True)]),
    Check("abs", lambda a: a.abs(), lambda: [_distinct(3, 3)]),
    Check("tanh", lambda a: a.tanh(), lambda: [_t(4, 3)]),
    Check("sigmoid", lambda a: a.sigmoid(), lambda: [_t(4, 3)]),
    Check("relu", lambda a: a.relu(), lambda: [_distinct(3, 5)]),
    Check("gelu", lambda a: a.gelu(), lambda: [_t(3, 7)]),
    Check("reshape", lambda a: a.reshape(6, -1), lambda: [_t(2, 3, 4)]),
    Check("transpose / .T / permute", lambda a: a.transpose(0, 2).T.permute(2, 1, 0) * a.T,
          lambda: [_t(2, 3, 4)]),
    Check("softmax", lambda a: a.softmax(axis=0), lambda: [_t(5, 3)]),
    Check("log_softmax", lambda a: a.log_softmax(dim=-1), lambda: [_t(3, 7)]),
    Check("masked_fill", lambda a: a.masked_fill(np.tri(4, dtype=bool), -1.0), lambda: [_t(2, 4, 4)]),
    Check("getitem (slices, None, ...)", lambda a: a[::-2, None, ..., 1:], lambda: [_t(5, 3, 4)]),
    Check("getitem (repeated indices)", lambda a: a[[0, 2, 0, 0]], lambda: [_t(3, 4)]),
    Check("cat", lambda a, b: cat([a, b, a], axis=1), lambda: [_t(2, 3), _t(2, 1)]),
    Check("stack", lambda a, b: stack([a, b], axis=-1), lambda: [_t(2, 3), _t(2, 3)]),
    Check("where", lambda a, b: where(a.data > 0, a, b), lambda: [_t(3, 4), _t(4)]),
    Check("min (with ties)", lambda a: a.min(dim=0), lambda: [Tensor([[1.0, 3.0], [1.0, -1.0]], requires_grad=True,
                                                                   dtype=np.float64)]),
    Check("logsumexp", lambda a: a.logsumexp(axis=-1), lambda: [_t(3, 5)]),
    Check("std (correction=1)", lambda a: a.std(axis=0, correction=1), lambda: [_t(5, 3)]),
    Check("maximum / minimum (ties)", lambda a, b: maximum(a, b) + minimum(a, b) * 2,
          lambda: [Tensor([[0.5, 1.0, -2.0]], requires_grad=True, dtype=np.float64), _t(2, 1)]),
    Check("square, sin, cos", lambda a: a.square() + a.sin() * a.cos(), lambda: [_t(7)]),
    Check("clamp (boundaries)", lambda a: a.clamp(-0.5, 1.0), lambda: [_distinct(3, 5)]),
    Check("leaky_relu, silu, softplus", lambda a: a.leaky_relu(0.1) + a.silu() + a.softplus(), lambda: [_distinct(11)]),
    Check("expand", lambda a: a.expand(4, -1, 3), lambda: [_t(2, 1)]),
    Check("flatten / squeeze / unsqueeze", lambda a: a.flatten(1).unsqueeze(0).squeeze(), lambda: [_t(2, 1, 3)]),
    Check("split / chunk", lambda a: cat(a.split([1, 2], axis=1)[::-1], axis=1) * cat(a.chunk(3, dim=0)[::-1]),
          lambda: [_t(5, 3)]),
    Check("tril / triu", lambda a: a.tril(-1) + a.triu(1) * 2, lambda: [_t(2, 3, 4)]),
]

