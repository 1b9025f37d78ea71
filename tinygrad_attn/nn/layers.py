"""The basic layers: Linear, Embedding, LayerNorm, Dropout, activations (ReLU, GELU, SiLU, Tanh), Sequential,
ModuleList.

Initialisation follows PyTorch (see `init.py`), drawn from the package generator, so
`ta.manual_seed` makes a model's starting weights repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from .. import functional as F
from .. import init
from ..tensor import Tensor
from ..validate import check_int, check_number
from .module import Module, Parameter


class Linear(Module):
    """y = x W + b, with `weight` W of shape (in_features, out_features) and `bias` b of shape (out_features,).

    Row vectors, as in the seed notes (q = x W^Q): each row of x is one token. W and b start as
    U(-1/sqrt(in), 1/sqrt(in)), as in PyTorch. Gradients: dW = x^T dy, db = sum of dy over rows,
    dx = dy W^T.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        self.in_features = check_int("Linear", "in_features", in_features, min=1)
        self.out_features = check_int("Linear", "out_features", out_features, min=1)
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
        self.num, self.dim = check_int("Embedding", "num", num, min=1), check_int("Embedding", "dim", dim, min=1)
        self.weight = Parameter(init.normal((num, dim)))

    def forward(self, ids) -> Tensor:
        return F.embedding(ids, self.weight)                  # [...] -> [..., dim]


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight ones, bias zeros."""

    def __init__(self, dim: int, eps: float = 1e-5):
        self.dim, self.eps = check_int("LayerNorm", "dim", dim, min=1), check_number("LayerNorm", "eps", eps, min=0.0)
        self.weight = Parameter(np.ones(dim, np.float32))
        self.bias = Parameter(np.zeros(dim, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps)   # [..., dim] -> [..., dim]


class Dropout(Module):
    """In training, zero each element with probability p and scale the survivors by 1/(1-p);
    in eval mode (`module.eval()`), the identity."""

    def __init__(self, p: float = 0.5):
        self.p = check_number("Dropout", "p", p, min=0.0, max=1.0)      # p = 1 zeroes everything, as PyTorch allows

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


class _ModuleSequence(Module):
    """A list of modules: indexable, iterable and sized; its parameters are named "0.weight", "1.bias", ...
    as in PyTorch (the list index, then the name inside that module)."""

    def __init__(self, modules: Iterable[Module] = ()):
        self._modules: list[Module] = []
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> _ModuleSequence:
        """Add a module at the end; returns self (as PyTorch)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: argument {len(self._modules)} is a {type(module).__name__}, "
                            f"not a Module")
        self._modules.append(module)
        return self

    @classmethod
    def _of(cls, modules: list[Module]) -> _ModuleSequence:
        return cls(modules)

    def _children(self):
        return ((str(i), module) for i, module in enumerate(self._modules))

    def __getitem__(self, i: int | slice) -> Module:
        if isinstance(i, slice):
            return self._of(self._modules[i])                 # a slice is the same kind of container
        return self._modules[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


class Sequential(_ModuleSequence):
    """Modules applied in order: Sequential(a, b, c)(x) = c(b(a(x))). Parameter names are "0.weight", ...
    as in PyTorch."""

    def __init__(self, *layers: Module):
        super().__init__(layers)

    @classmethod
    def _of(cls, modules: list[Module]) -> Sequential:
        return cls(*modules)

    @property
    def layers(self) -> list[Module]:
        """The modules, in order."""
        return self._modules

    def forward(self, x: Tensor) -> Tensor:
        for layer in self._modules:
            x = layer(x)
        return x


class ModuleList(_ModuleSequence):
    """Holds modules in a list so that their parameters join the owner's, as `torch.nn.ModuleList`:
    `blocks = nn.ModuleList([Linear(4, 4), Linear(4, 2)])`, then `blocks[0]`, `for b in blocks`,
    `len(blocks)`, `blocks.append(m)`. It has no forward of its own: the owner decides how to call them."""

    def __init__(self, modules: Iterable[Module] = ()):
        if isinstance(modules, Module) or not isinstance(modules, Iterable):
            raise TypeError(f"ModuleList: expected an iterable of Modules, got {type(modules).__name__} "
                            f"(write ModuleList([a, b]), not ModuleList(a, b))")
        super().__init__(modules)

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append each module in turn; returns self."""
        for module in modules:
            self.append(module)
        return self
