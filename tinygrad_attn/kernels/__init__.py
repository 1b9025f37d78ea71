"""Raw kernels: functions on numpy arrays, no autograd.

`reference` is the numpy twin of every kernel (the "numpy" backend); `fast` holds the Numba
versions (the "numba" backend), also importable from here by name:

    from tinygrad_attn.kernels import matmul, softmax

Nothing is compiled at import: each kernel is compiled on its first call (or loaded from
Numba's on-disk cache, `cache=True`).
"""

from . import runtime

runtime.configure_openmp()
runtime.configure_malloc()

from . import fast, reference  # noqa: E402
from .fast import (  # noqa: E402
    adam_update,
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    embedding_backward,
    gelu,
    gelu_backward,
    layer_norm,
    layer_norm_backward,
    log_softmax,
    log_softmax_backward,
    matmul,
    softmax,
    softmax_backward,
)

__all__ = [
    "fast", "reference", "matmul", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy_forward", "cross_entropy_backward", "gelu", "gelu_backward", "layer_norm",
    "layer_norm_backward", "attention_forward", "attention_backward", "embedding_backward", "adam_update",
]
