"""tinygrad_attn: see and verify backprop through self-attention.

A small reverse-mode autodiff engine on numpy, with Numba kernels for the hot ops.
"""

from . import functional, kernels, nn, optim
from .backend import backend, get_backend, set_backend
from .function import Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .random import manual_seed
from .serialization import load, save
from .tensor import Tensor, apply, arange, cat, matmul, no_grad, ones, randn, stack, where, zeros
from .torch_bridge import to_torch

__all__ = [
    "Function", "GradcheckError", "Tensor", "apply", "arange", "backend", "cat", "functional", "get_backend",
    "gradcheck", "kernels", "load", "manual_seed", "matmul", "nn", "no_grad", "ones", "optim", "randn", "save",
    "set_backend", "stack", "to_torch", "unbroadcast", "where", "zeros",
]
__version__ = "0.1.0"
