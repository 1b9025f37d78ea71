"""Exercise `softmax`: the backward of a row-wise softmax, without building its Jacobian."""

from types import ModuleType

import numpy as np

from ...tensor import Tensor
from .grading import NO_ROWSUM, Mistake, Result, as_function, call, compare, gradcheck_part, vjp

NAME = "softmax"
GOAL = "softmax backward: ds from dy, through the Jacobian diag(y) - y y^T, in O(T) per row"
SOLUTION = '''\
"""Exercise `softmax`: the backward of softmax along the last axis.

Forward (given below): for each row s of scores, y = softmax(s), y_i = exp(s_i) / sum_j exp(s_j).

Your job: softmax_backward(y, dy) returns ds = dL/ds, given the output y and dy = dL/dy.
Derive it:
  1. The Jacobian of one row: dy_i/ds_j = y_i (delta_ij - y_j), so J = diag(y) - y y^T   [T, T].
  2. ds = J^T dy. Multiply it out so that J is never built: ds_j = y_j (dy_j - sum_i y_i dy_i).
     The sum is one number per row: keep its axis (keepdims=True) so it broadcasts across the row.
  3. Sanity check: every row of ds sums to 0. (Adding a constant to a row of s does not change y.)
Shapes: s, y, dy, ds are (..., T); everything happens along the last axis.

Check it:  tinygrad-attn exercise check softmax [PATH]      (a wrong answer is diagnosed)
Stuck?     docs/backprop-through-attention.md, section 3;  tinygrad-attn exercise solution softmax
"""

import numpy as np


def softmax(s: np.ndarray) -> np.ndarray:
    """The forward (given): y = softmax(s) over the last axis, the row max subtracted first for stability."""
    e = np.exp(s - s.max(axis=-1, keepdims=True))              # [..., T]
    return e / e.sum(axis=-1, keepdims=True)                   # [..., T], each row sums to 1


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """ds = dL/ds for y = softmax(s) over the last axis, from y and dy = dL/dy (all (..., T))."""
    # >>> raise NotImplementedError("write ds = dL/ds (see the docstring at the top)")
    ds = y * (dy - (y * dy).sum(axis=-1, keepdims=True))       # J^T dy, row by row: [..., T]
    return ds
    # <<<
'''
NEEDS = ("softmax", "softmax_backward")
MISTAKES = (NO_ROWSUM, "the rowsum over the wrong axis", "the factor y forgotten")


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(0)
    s, dy = rng.standard_normal((2, 3, 7)), rng.standard_normal((2, 3, 7))   # [B, T, T] scores and dL/dy
    y = np.exp(s - s.max(-1, keepdims=True))
    y /= y.sum(-1, keepdims=True)
    (want,) = vjp(lambda t: t.softmax(-1), [s], dy)
    mistakes = [
        Mistake(NO_ROWSUM, "ds = y * dy is only the diag(y) part of J; subtract y * rowsum(y * dy) for "
                "the -y y^T part", y * dy),
        Mistake("the rowsum over the wrong axis", "the sum runs over the last axis (each row of scores), "
                "with keepdims=True", y * (dy - (y * dy).sum(axis=-2, keepdims=True))),
        Mistake("the factor y forgotten", "J^T dy = y * (dy - rowsum(y * dy)): both terms carry y",
                dy - (y * dy).sum(-1, keepdims=True)),
    ]
    results = [compare("ds", call("ds", learner.softmax_backward, y.copy(), dy.copy()), want, mistakes)]
    op = as_function(lambda a: learner.softmax(a), lambda ins, out, g: (learner.softmax_backward(out, g),))
    results.append(gradcheck_part("gradcheck", lambda t: op.apply(t), [Tensor(s[0, :, :5], requires_grad=True)]))
    return results
