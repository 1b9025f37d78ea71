"""Exercise `matmul`: the backward of a batched, broadcasting matrix product (where unbroadcast comes in)."""

from types import ModuleType

import numpy as np

from ...tensor import Tensor
from .grading import Result, as_function, call, compare_each, gradcheck_part, vjp

NAME = "matmul"
GOAL = "matmul backward with broadcasting: dA = dC B^T, dB = A^T dC, summed back over broadcast batch axes"
SOLUTION = '''\
"""Exercise `matmul`: the backward of c = a @ b, batch axes broadcast as numpy does.

Forward: c = a @ b with a (..., m, k), b (..., k, n) -> c (..., m, n); the batch axes (...) of a and
b broadcast against each other: a (2, 3, 4) @ b (4, 5) uses the one b for both batch elements.

Your job: matmul_backward(a, b, dc) returns (da, db), the gradients dL/da and dL/db given dc = dL/dc.
Derive it:
  1. For plain matrices, c_ij = sum_p a_ip b_pj, so dL/da_ip = sum_j dc_ij b_pj:  da = dc b^T, and
     likewise db = a^T dc. (Each is the only product of dc with the other input whose shape comes out.)
  2. With batch axes, the same holds for every batch element: transpose the last two axes only
     (np.swapaxes(x, -1, -2), not x.T, which reverses every axis).
  3. Broadcasting: if b was used for several batch elements, its gradient is the SUM of what each use
     contributes. The product in step 2 comes out with the broadcast batch shape; sum it back to the
     input's own shape: over the leading axes broadcasting added, and over every axis where the input
     had size 1. ta.unbroadcast(grad, shape) does exactly that (or write it yourself).
Shapes: da must have a.shape and db b.shape.

Check it:  tinygrad-attn exercise check matmul [PATH]
Stuck?     docs/backprop-through-attention.md, sections 1 and 2;  tinygrad-attn exercise solution matmul
"""

import numpy as np

import tinygrad_attn as ta


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The forward (given): [..., m, k] @ [..., k, n] -> [..., m, n], batch axes broadcast."""
    return a @ b


def matmul_backward(a: np.ndarray, b: np.ndarray, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(da, db) for c = a @ b, from dc = dL/dc of the broadcast shape (..., m, n)."""
    # >>> raise NotImplementedError("write da and db (see the docstring at the top)")
    da = dc @ np.swapaxes(b, -1, -2)                           # [..., m, n] @ [..., n, k] -> [..., m, k]
    db = np.swapaxes(a, -1, -2) @ dc                           # [..., k, m] @ [..., m, n] -> [..., k, n]
    return ta.unbroadcast(da, a.shape), ta.unbroadcast(db, b.shape)   # sum over the copies broadcasting made
    # <<<
'''
NEEDS = ("matmul", "matmul_backward")
MISTAKES = ("a forgotten unbroadcast", "a transposed operand")

CASES = {                                                      # name: (a's shape, b's shape)
    "x @ W": ((2, 3, 4), (4, 5)),                              # one weight for every batch element
    "broadcast": ((3, 1, 2, 4), (5, 4, 3)),                    # both inputs broadcast
}


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(1)
    results = []
    for case, (sa, sb) in CASES.items():
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        dc = rng.standard_normal((a @ b).shape)
        want_a, want_b = vjp(lambda x, y: x @ y, [a, b], dc)
        got = call(f"da, db ({case})", learner.matmul_backward, a.copy(), b.copy(), dc.copy())
        results += compare_each((f"da ({case})", f"db ({case})"), got, [want_a, want_b])
    a, b = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 1, 2, 2), (2, 2, 3)))
    op = as_function(lambda x, y: learner.matmul(x, y), lambda ins, out, g: tuple(learner.matmul_backward(*ins, g)))
    results.append(gradcheck_part("gradcheck", lambda x, y: op.apply(x, y), [a, b]))
    return results
