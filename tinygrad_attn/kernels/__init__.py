"""Raw kernels: functions on numpy arrays, no autograd.

`reference` is the numpy twin of every kernel (the "numpy" backend); `fast` holds the Numba
versions (the "numba" backend), also importable from here by name:

    from tinygrad_attn.kernels import matmul, softmax

Nothing is compiled at import: each kernel is compiled on its first call (or loaded from
Numba's on-disk cache, `cache=True`). Nothing process-wide is set at import either; the opt-in
`tune_process()` (runtime.py) sets what the kernels' speed depends on, for a process that is
ours alone. `threads.py` decides, per call, whether a kernel runs on the thread pool.
"""

from . import fast, reference, runtime, threads
from .fast import (
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
    multiply,
    softmax,
    softmax_backward,
    sum_all,
)
from .runtime import tune_process

__all__ = [
    "fast", "reference", "runtime", "threads", "tune_process",
    "matmul", "multiply", "sum_all", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy_forward", "cross_entropy_backward", "gelu", "gelu_backward", "layer_norm",
    "layer_norm_backward", "attention_forward", "attention_backward", "embedding_backward", "adam_update",
]
