"""Exercise `cross_entropy`: the gradient of the mean cross-entropy with respect to the logits."""

from types import ModuleType

import numpy as np

from ... import functional as F
from ...tensor import Tensor
from .grading import FACTOR, MASK, SIGN, Mistake, Result, as_function, call, compare, gradcheck_part, vjp

NAME = "cross_entropy"
GOAL = "cross-entropy backward: dlogits = (softmax - onehot) / n_kept, zero on ignored rows"
SOLUTION = '''\
"""Exercise `cross_entropy`: the backward of the mean cross-entropy over kept rows.

Forward (given below): logits (N, C), integer targets (N,); a row whose target is `ignore_index`
(padding) is left out. For each kept row i:  loss_i = -log softmax(logits_i)[t_i]
                                                  = logsumexp(logits_i) - logits_i[t_i],
and loss = sum of loss_i over kept rows / n_kept (a mean over the kept rows only).

Your job: cross_entropy_backward(logits, targets, ignore_index) returns dlogits = dL/dlogits (N, C),
for L = loss (so dL/dloss = 1).
Derive it:
  1. d logsumexp(z) / dz_j = softmax(z)_j, and d z[t] / dz_j = 1 if j == t else 0 (a one-hot row).
  2. So d loss_i / d logits_i = softmax(logits_i) - onehot(t_i).
  3. The mean divides by n_kept; an ignored row is not in the loss at all, so its gradient is 0.

Check it:  tinygrad-attn exercise check cross_entropy [PATH]
Stuck?     tinygrad-attn exercise solution cross_entropy
"""

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis (the row max subtracted first)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100) -> float:
    """The forward (given): mean over rows with targets != ignore_index of -log softmax(logits)[target]."""
    kept = targets != ignore_index                             # [N] bool
    z = logits - logits.max(axis=-1, keepdims=True)            # [N, C]
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))   # [N, C]
    return -log_probs[kept, targets[kept]].mean()


def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100) -> np.ndarray:
    """dL/dlogits (N, C) for L = cross_entropy(logits, targets, ignore_index)."""
    # >>> raise NotImplementedError("write dlogits (see the docstring at the top)")
    kept = targets != ignore_index                             # [N] bool
    dlogits = softmax(logits)                                  # d logsumexp: [N, C]
    rows = np.flatnonzero(kept)
    dlogits[rows, targets[rows]] -= 1                          # minus the one-hot of each kept target
    dlogits[~kept] = 0                                         # ignored rows are not in the loss
    return dlogits / kept.sum()                                # the mean over kept rows
    # <<<
'''
ONEHOT = "the one-hot term forgotten"
ALL_ROWS = "the mean over all rows"
NEEDS = ("cross_entropy", "cross_entropy_backward")
MISTAKES = (MASK, FACTOR, SIGN, ONEHOT, ALL_ROWS)
IGNORE = -100


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((7, 5))
    targets = np.array([1, 0, IGNORE, 4, 2, IGNORE, 3])
    kept = targets != IGNORE
    n_kept = int(kept.sum())
    (want,) = vjp(lambda z: F.cross_entropy(z, targets, ignore_index=IGNORE), [logits], np.array(1.0))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    unmasked = want.copy()
    unmasked[~kept] = p[~kept] / n_kept                        # what ignored rows get if they are not zeroed
    mistakes = [
        Mistake(MASK, "rows whose target is ignore_index are not in the loss: their gradient must be 0", unmasked),
        Mistake(FACTOR, f"the loss is a mean over the {n_kept} kept rows: divide by n_kept", want * n_kept),
        Mistake(ALL_ROWS, f"divide by the number of kept rows ({n_kept}), not by all {len(targets)}",
                want * n_kept / len(targets)),
        Mistake(ONEHOT, "d(-logits[t]) adds -1 at each kept row's target: softmax - onehot",
                np.where(kept[:, None], p, 0) / n_kept),
    ]
    got = call("dlogits", learner.cross_entropy_backward, logits.copy(), targets.copy(), IGNORE)
    results = [compare("dlogits", got, want, mistakes)]
    op = as_function(lambda z: np.asarray(learner.cross_entropy(z, targets, IGNORE)),
                     lambda ins, out, g: (g * learner.cross_entropy_backward(ins[0].copy(), targets, IGNORE),))
    results.append(gradcheck_part("gradcheck", lambda z: op.apply(z), [Tensor(logits, requires_grad=True)]))
    return results
