"""Optimizers: SGD (with momentum), Adam, AdamW, and gradient-norm clipping, with PyTorch's update rules.

Each `step()` changes every parameter's `.data` array in place (same Parameter, same array), so
anything that holds the parameters sees the update. Parameters whose `.grad` is None are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .backend import K
from .tensor import Tensor
from .validate import check_number


def _parameter_list(op: str, params) -> list[Tensor]:
    """params (an iterable of Tensors) as a list; a single Tensor or a Module is the usual slip."""
    if isinstance(params, Tensor):
        raise TypeError(f"{op}: params must be an iterable of Parameters, got a single {type(params).__name__} "
                        f"of shape {params.shape}; wrap it in a list: [p]")
    if callable(getattr(params, "parameters", None)):          # a Module (duck-typed: optim does not import nn)
        name = type(params).__name__
        raise TypeError(f"{op}: params must be an iterable of Parameters, got the module {name}; "
                        f"pass {name}.parameters(), e.g. {op}(model.parameters(), ...)")
    if isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"{op}: params must be an iterable of Parameters, got {type(params).__name__}")
    return list(params)


class _Required:
    """The default of an argument that has none (SGD's lr): the marker lets a bad `params` be reported first."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED = _Required()


class Optimizer:
    """Holds the parameters and the learning rate; subclasses define `step`."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        name = type(self).__name__
        self.params = _parameter_list(name, params)
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{name}: parameter {i} is not a Tensor with requires_grad=True "
                                f"(got {type(p).__name__})")
        if lr is _REQUIRED:
            raise TypeError(f"{name}: lr is required (a number >= 0), e.g. {name}(model.parameters(), lr=0.1)")
        self.lr = check_number(name, "lr", lr, min=0.0)

    def zero_grad(self) -> None:
        """Clear every parameter's `.grad`."""
        for p in self.params:
            p.grad = None

    def _gradients(self) -> list[tuple[int, Tensor, np.ndarray]]:
        """(index, parameter, grad) for every parameter with a grad, each grad checked before any update:
        a hand-set `.grad` must be an array of the parameter's shape and dtype (never broadcast into it)."""
        name, found = type(self).__name__, []
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if not isinstance(g, np.ndarray):
                raise TypeError(f"{name}.step: parameter {i} (shape {p.shape}) has a .grad of type "
                                f"{type(g).__name__}, not a numpy array")
            if g.shape != p.shape:
                raise ValueError(f"{name}.step: parameter {i} has shape {p.shape} but its .grad has shape {g.shape}")
            if g.dtype != p.dtype:
                raise TypeError(f"{name}.step: parameter {i} (shape {p.shape}) has dtype {p.dtype} but its .grad "
                                f"has dtype {g.dtype}")
            found.append((i, p, g))
        return found

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, as `torch.optim.SGD` (no dampening, no Nesterov):

        g = grad + weight_decay * p
        b = g on the first step, then b = momentum * b + g      (only if momentum > 0; then g = b)
        p = p - lr * g
    """

    def __init__(self, params: Iterable[Tensor], lr: float = _REQUIRED, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = check_number("SGD", "momentum", momentum, min=0.0)        # stored as the float checked
        self.weight_decay = check_number("SGD", "weight_decay", weight_decay, min=0.0)
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p, grad in self._gradients():
            g = grad + self.weight_decay * p.data if self.weight_decay else grad
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = np.array(g)              # first step: the buffer is the gradient itself
                else:
                    self.buffers[i] *= self.momentum
                    self.buffers[i] += g
                g = self.buffers[i]
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam, as `torch.optim.Adam`, with t counting this parameter's steps from 1:

        g = grad + weight_decay * p                   (L2 penalty folded into the gradient)
        m = beta1 m + (1 - beta1) g                   (running mean of g)
        v = beta2 v + (1 - beta2) g^2                 (running mean of g^2)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (bias-corrected)
    """

    decoupled = False

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        name = type(self).__name__
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = tuple(check_number(name, "betas", b, min=0.0, max=1.0) for b in betas)
        if max(self.betas) == 1.0:
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
        self.eps = check_number(name, "eps", eps, min=0.0)
        self.weight_decay = check_number(name, "weight_decay", weight_decay, min=0.0)
        self.m: list[np.ndarray | None] = [None] * len(self.params)
        self.v: list[np.ndarray | None] = [None] * len(self.params)
        self.t = [0] * len(self.params)

    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p, grad in self._gradients():
            if self.m[i] is None:
                self.m[i], self.v[i] = np.zeros_like(p.data), np.zeros_like(p.data)
            self.t[i] += 1
            decay = self.lr * self.weight_decay
            K.adam_update(p.data, grad, self.m[i], self.v[i], beta1, beta2,
                          step_size=self.lr / (1.0 - beta1 ** self.t[i]),
                          bias2_root=math.sqrt(1.0 - beta2 ** self.t[i]), eps=self.eps,
                          l2=0.0 if self.decoupled else self.weight_decay,      # Adam: penalty in the gradient
                          shrink=1.0 - decay if self.decoupled else 1.0)        # AdamW: shrink p directly


class AdamW(Adam):
    """Adam with decoupled weight decay, as `torch.optim.AdamW`: first p = p * (1 - lr * weight_decay),
    then the Adam step on the plain gradient (the decay does not pass through m and v)."""

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm(params: Tensor | Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most max_norm; return the norm before.

    total = sqrt(sum over params of sum(grad^2)); if total > max_norm every grad is multiplied (in
    place) by max_norm / (total + 1e-6), as `torch.nn.utils.clip_grad_norm_`. `params` is one Tensor
    or an iterable of them, as in PyTorch; parameters without a grad are skipped.
    """
    max_norm = check_number("clip_grad_norm", "max_norm", max_norm, min=0.0)
    params = [params] if isinstance(params, Tensor) else _parameter_list("clip_grad_norm", params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_grad_norm: parameter {i} is a {type(p).__name__}, not a Tensor")
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= scale
    return total
