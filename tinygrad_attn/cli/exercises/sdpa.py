"""Exercise `sdpa`: scaled dot-product attention backward in five steps, with a causal mask and the scale."""

import math
from types import ModuleType

import numpy as np

from ...tensor import Tensor
from .grading import (
    MASK,
    NO_ROWSUM,
    NO_SCALE,
    TRANSPOSED,
    Mistake,
    Result,
    as_function,
    call,
    compare,
    gradcheck_part,
    vjp,
)

NAME = "sdpa"
GOAL = "attention backward step by step: dV, dP, dS, dQ, dK, with a causal mask and the 1/sqrt(d_k) scale"
SOLUTION = '''\
"""Exercise `sdpa`: the backward of scaled dot-product attention, one forward line at a time.

Forward (given below), one sequence, one token per row; Q (T, d_k), K (T, d_k), V (T, d_v):
    S   = Q K^T * scale              (T, T)    scale = 1/sqrt(d_k)
    S_m = where(allowed, S, -inf)    (T, T)    masked_fill: allowed[i, j] = (j <= i), the causal mask
    P   = softmax(S_m)               (T, T)    over each row; P_ij = 0 exactly where not allowed
    H   = P V                        (T, d_v)

Your job: five functions, each the backward of one line, from that line's upstream gradient:
    grad_V(P, dH)                  -> dV = dL/dV          reverses H = P V (for the right operand)
    grad_P(dH, V)                  -> dP = dL/dP          reverses H = P V (for the left operand)
    grad_S(P, dP)                  -> dS = dL/dS_m        reverses P = softmax(S_m), row by row
    grad_Q(dS, K, allowed, scale)  -> dQ = dL/dQ          reverses S_m = where(...) and S = Q K^T * scale
    grad_K(dS, Q, allowed, scale)  -> dK = dL/dK          the same two lines, for K
Derive them:
  - matmul: for C = A B, dA = dC B^T and dB = A^T dC (the only products whose shapes come out right).
  - softmax: dS = P * (dP - rowsum(dP * P)), the rowsum keeping its axis (see the `softmax` exercise).
  - masked_fill: where(allowed, S, -inf) passes the gradient where allowed and gives 0 elsewhere (the
    filled -inf does not depend on S). Coming from grad_S, dS is already 0 there (P is 0), but each
    step is graded on its own with a random upstream gradient: write each line's own rule.
  - the scale: S = R * scale multiplies the gradient by the same scale on the way back.
sdpa_backward (given) chains your five steps; the check runs ta.gradcheck on it.

Check it:  tinygrad-attn exercise check sdpa [PATH]
Stuck?     docs/backprop-through-attention.md, sections 1, 3, 4, 5 and 6;  tinygrad-attn exercise solution sdpa
"""

import math

import numpy as np


def forward(Q: np.ndarray, K: np.ndarray, V: np.ndarray, allowed: np.ndarray, scale: float):
    """The forward (given): returns S_m, P and H."""
    S = Q @ K.T * scale                                        # [T, d_k] @ [d_k, T] -> [T, T]
    S_m = np.where(allowed, S, -np.inf)                        # [T, T], -inf where query i may not see key j
    E = np.exp(S_m - S_m.max(axis=-1, keepdims=True))          # [T, T]
    P = E / E.sum(axis=-1, keepdims=True)                      # [T, T], rows sum to 1
    return S_m, P, P @ V                                       # H: [T, T] @ [T, d_v] -> [T, d_v]


def grad_V(P: np.ndarray, dH: np.ndarray) -> np.ndarray:
    """dV from H = P V."""
    # >>> raise NotImplementedError("write dV")
    return P.T @ dH                                            # [T, T] @ [T, d_v] -> [T, d_v]
    # <<<


def grad_P(dH: np.ndarray, V: np.ndarray) -> np.ndarray:
    """dP from H = P V."""
    # >>> raise NotImplementedError("write dP")
    return dH @ V.T                                            # [T, d_v] @ [d_v, T] -> [T, T]
    # <<<


def grad_S(P: np.ndarray, dP: np.ndarray) -> np.ndarray:
    """dS = dL/dS_m from P = softmax(S_m) (rows)."""
    # >>> raise NotImplementedError("write dS")
    return P * (dP - (dP * P).sum(axis=-1, keepdims=True))     # [T, T]
    # <<<


def grad_Q(dS: np.ndarray, K: np.ndarray, allowed: np.ndarray, scale: float) -> np.ndarray:
    """dQ from S_m = where(allowed, S, -inf) and S = Q K^T * scale, given dS = dL/dS_m."""
    # >>> raise NotImplementedError("write dQ")
    dS = np.where(allowed, dS, 0.0)                            # reverses the masked_fill
    return dS @ K * scale                                      # [T, T] @ [T, d_k] -> [T, d_k], times the scale
    # <<<


def grad_K(dS: np.ndarray, Q: np.ndarray, allowed: np.ndarray, scale: float) -> np.ndarray:
    """dK from the same two lines, given dS = dL/dS_m."""
    # >>> raise NotImplementedError("write dK")
    dS = np.where(allowed, dS, 0.0)                            # reverses the masked_fill
    return dS.T @ Q * scale                                    # [T, T] @ [T, d_k] -> [T, d_k]
    # <<<


def sdpa_backward(Q, K, V, allowed, scale, dH):
    """(dQ, dK, dV): your five steps chained, from dH = dL/dH (given)."""
    S_m, P, H = forward(Q, K, V, allowed, scale)
    dV, dP = grad_V(P, dH), grad_P(dH, V)
    dS = grad_S(P, dP)
    return grad_Q(dS, K, allowed, scale), grad_K(dS, Q, allowed, scale), dV


if __name__ == "__main__":                                     # a quick look at one example
    T, d_k = 4, 3
    rng = np.random.default_rng(0)
    Q, K, V = rng.standard_normal((3, T, d_k))
    allowed = np.tril(np.ones((T, T), dtype=bool))
    print(sdpa_backward(Q, K, V, allowed, 1 / math.sqrt(d_k), np.ones((T, d_k))))
'''
NO_P = "the factor P forgotten"
NEEDS = ("forward", "grad_V", "grad_P", "grad_S", "grad_Q", "grad_K", "sdpa_backward")
MISTAKES = (TRANSPOSED, NO_ROWSUM, NO_SCALE, MASK, NO_P)
T, D_K, D_V = 5, 3, 4


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(4)
    Q, K, V = rng.standard_normal((T, D_K)), rng.standard_normal((T, D_K)), rng.standard_normal((T, D_V))
    allowed, scale = np.tril(np.ones((T, T), dtype=bool)), 1 / math.sqrt(D_K)
    S_m = np.where(allowed, Q @ K.T * scale, -np.inf)
    P = np.exp(S_m - S_m.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    dH, dP, dS = rng.standard_normal((T, D_V)), rng.standard_normal((T, T)), rng.standard_normal((T, T))

    (want_v,) = vjp(lambda v: Tensor(P) @ v, [V], dH)
    (want_p,) = vjp(lambda p: p @ Tensor(V), [P], dH)
    (want_s,) = vjp(lambda s: s.softmax(-1), [S_m], dP)
    want_q, want_k = vjp(lambda q, k: (q @ k.transpose(-2, -1) * scale).masked_fill(~allowed, -math.inf), [Q, K], dS)
    dS_kept = np.where(allowed, dS, 0)
    scale_hint = "S = Q K^T * scale: the scale multiplies dQ and dK too"
    mask_hint = "masked_fill gives no gradient where the score was filled: dS = where(allowed, dS, 0) first"
    results = [
        compare("dV", call("dV", learner.grad_V, P.copy(), dH.copy()), want_v,
                [Mistake(TRANSPOSED, "dV = P^T dH: transpose P", P @ dH)]),
        compare("dP", call("dP", learner.grad_P, dH.copy(), V.copy()), want_p),
        compare("dS", call("dS", learner.grad_S, P.copy(), dP.copy()), want_s, [
            Mistake(NO_ROWSUM, "dS = P * dP is only the diag(P) part of the Jacobian; subtract P * rowsum(dP * P)",
                    P * dP),
            Mistake(NO_P, "dS = P * (dP - rowsum(dP * P)): the whole bracket is multiplied by P",
                    dP - (dP * P).sum(-1, keepdims=True))]),
        compare("dQ", call("dQ", learner.grad_Q, dS.copy(), K.copy(), allowed.copy(), scale), want_q, [
            Mistake(NO_SCALE, scale_hint, want_q / scale),
            Mistake(MASK, mask_hint, dS @ K * scale),
            Mistake(TRANSPOSED, "dQ = dS K * scale (dS is [T_q, T_k]: it is not transposed here)",
                    dS_kept.T @ K * scale)]),
        compare("dK", call("dK", learner.grad_K, dS.copy(), Q.copy(), allowed.copy(), scale), want_k, [
            Mistake(NO_SCALE, scale_hint, want_k / scale),
            Mistake(MASK, mask_hint, dS.T @ Q * scale),
            Mistake(TRANSPOSED, "dK = dS^T Q * scale: key j collects column j of dS", dS_kept @ Q * scale)]),
    ]
    small = allowed[:4, :4]                                    # the chain, on a smaller causal problem
    op = as_function(lambda q, k, v: learner.forward(q, k, v, small, scale)[2],
                     lambda ins, out, g: tuple(learner.sdpa_backward(*ins, small, scale, g)))
    inputs = [Tensor(a, requires_grad=True) for a in (Q[:4], K[:4], V[:4, :2])]
    results.append(gradcheck_part("gradcheck (chained)", lambda *t: op.apply(*t), inputs))
    return results
