"""Raw kernels: functions on numpy arrays, no autograd.

`reference` is the numpy twin of every kernel (the "numpy" backend); `fast` holds the Numba
versions (the "numba" backend), also importable from here by name:

    from tinygrad_attn.kernels import matmul, softmax

Nothing is compiled at import: each kernel is compiled on its first call (or loaded from
Numba's on-disk cache, `cache=True`).
"""

import os

# Numba's OpenMP workers spin-wait between parallel kernels by default. On a 2-core machine that is
# running anything else, a spinning worker holds the core the next kernel needs, and every parallel
# call then waits whole scheduler slices (a transformer step measured 136 ms instead of 39 ms with
# one core busy). Passive waiting costs ~10% on an idle machine and avoids that; set the variable
# yourself before importing to choose otherwise. It must be set before the first parallel kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from . import fast, reference  # noqa: E402
from .fast import (  # noqa: E402
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
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
    "layer_norm_backward", "attention_forward", "attention_backward",
]
