"""The basic layers: Linear, Embedding, LayerNorm, Dropout, activations (ReLU, GELU, SiLU, Tanh), Sequential.

Initialisation follows PyTorch (see `init.py`), drawn from the package generator, so
`ta.manual_seed` makes a model's starting weights repeatable.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from ..tensor import Tensor
from .module import Module, Parameter


class Linear(Module):
    """y = x W + b, with `weight` W of shape (in_features, out_features) and `bias` b of shape (out_features,).

    Row vectors, as in the seed notes (q = x W^Q): each row of x is one token. W and b start as
    U(-1/sqrt(in), 1/sqrt(in)), as in PyTorch. Gradients: dW = x^T dy, db = sum of dy over rows,
    dx = dy W^T.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(init.uniform((in_features, out_features), bound))
        self.bias = Parameter(init.uniform((out_features,), bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)            # [..., in] -> [..., out]


class Embedding(Module):
    """out[..., :] = weight[ids[...], :]: row lookup in a (num, dim) table, initialised N(0, 1).

    Backward scatters: each row of the output gradient is added into the row of `weight` it came
    from, so a token that appears twice gets both contributions.
    """

    def __init__(self, num: int, dim: int):
        self.num, self.dim = num, dim
        self.weight = Parameter(init.normal((num, dim)))

    def forward(self, ids) -> Tensor:
        return F.embedding(ids, self.weight)                  # [...] -> [..., dim]


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight ones, bias zeros."""

    def __init__(self, dim: int, eps: float = 1e-5):
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim, np.float32))
        self.bias = Parameter(np.zeros(dim, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps)   # [..., dim] -> [..., dim]


class Dropout(Module):
    """In training, zero each element with probability p and scale the survivors by 1/(1-p);
    in eval mode (`module.eval()`), the identity."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class GELU(Module):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation (as `Tensor.gelu`)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x)


class SiLU(Module):
    """x * sigmoid(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sequential(Module):
    """Modules applied in order: Sequential(a, b, c)(x) = c(b(a(x))). Parameter names are "0.weight", ...
    as in PyTorch."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def _children(self):
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
