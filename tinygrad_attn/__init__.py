"""tinygrad_attn: see and verify backprop through self-attention.

A small reverse-mode autodiff engine on numpy, with Numba kernels for the hot ops.
"""

from . import functional, kernels, nn, optim
from .backend import backend, get_backend, set_backend
from .creators import arange, eye, full, ones, ones_like, rand, randint, randn, zeros, zeros_like
from .function import Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .precompile import precompile
from .random import manual_seed
from .serialization import load, save
from .tensor import Tensor, apply, cat, detect_anomaly, matmul, maximum, minimum, no_grad, stack, where
from .torch_bridge import to_torch

__all__ = [
    "Function", "GradcheckError", "Tensor", "apply", "arange", "backend", "cat", "detect_anomaly", "eye", "full",
    "functional", "get_backend", "gradcheck", "kernels", "load", "manual_seed", "matmul", "maximum", "minimum", "nn",
    "no_grad", "ones", "ones_like", "optim", "precompile", "rand", "randint", "randn", "save", "set_backend", "stack",
    "to_torch", "unbroadcast", "where", "zeros", "zeros_like",
]
__version__ = "0.1.0"
