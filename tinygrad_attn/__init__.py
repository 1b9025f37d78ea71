"""tinygrad_attn: see and verify backprop through self-attention.

A small reverse-mode autodiff engine on numpy, with Numba kernels for the hot ops.
"""

from . import kernels
from .backend import backend, get_backend, set_backend
from .function import Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .random import manual_seed
from .tensor import Tensor, apply, arange, cat, matmul, no_grad, ones, randn, stack, where, zeros

__all__ = [
    "Function", "GradcheckError", "Tensor", "apply", "arange", "backend", "cat", "get_backend", "gradcheck",
    "kernels", "manual_seed", "matmul", "no_grad", "ones", "randn", "set_backend", "stack", "unbroadcast",
    "where", "zeros",
]
__version__ = "0.1.0"
