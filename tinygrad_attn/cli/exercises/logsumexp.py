"""Exercise `logsumexp`: a new op of your own, forward and backward, as a ta.Function."""

from types import ModuleType

import numpy as np

from ...backend import backend
from ...tensor import Tensor
from .grading import SIGN, Mistake, Result, call, compare, gradcheck_part, vjp

NAME = "logsumexp"
GOAL = "a new op: logsumexp as a ta.Function, forward (stable at any magnitude) and backward"
SOLUTION = '''\
"""Exercise `logsumexp`: write a new op, forward and backward, as a ta.Function.

The op: out = log(sum_j exp(a_j)) along `axis`, which is removed from the shape (keepdims=False);
a (3, 4, 5) with axis=1 gives out (3, 5).

Your job: the class LogSumExp below (the extension point of docs/architecture.md, "Adding an op"):
  forward(self, a, axis=-1): numpy in, numpy out; keep on self what backward needs.
      Make it stable: exp(1000) overflows. With m = max(a) along the axis,
      log sum exp(a_j) = m + log sum exp(a_j - m), and every a_j - m <= 0.
  backward(self, g): g = dL/dout has out's shape; return (da,), one gradient per input.
      d out / d a_j = exp(a_j) / sum_i exp(a_i) = exp(a_j - out): the softmax of a along the axis.
      So da = g * softmax(a), g broadcast back over the reduced axis (np.expand_dims(g, axis)).
Use it as LogSumExp.apply(tensor, axis=1), like every op of the package.

Check it:  tinygrad-attn exercise check logsumexp [PATH]    (forward, backward, and ta.gradcheck)
Stuck?     tinygrad-attn exercise solution logsumexp
"""

import numpy as np

import tinygrad_attn as ta


class LogSumExp(ta.Function):
    """out = log sum exp(a) along `axis` (removed);  da = g * exp(a - out) = g * softmax(a)."""

    def forward(self, a: np.ndarray, axis: int = -1) -> np.ndarray:
        # >>> raise NotImplementedError("write the forward (stable: subtract the max first)")
        m = a.max(axis=axis, keepdims=True)                    # [..., 1, ...]: the max along the axis
        out = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m   # every exponent <= 0: no overflow
        self.a, self.out, self.axis = a, out, axis             # backward needs a, out (axis kept) and the axis
        return out.squeeze(axis)                               # [..., ...]: the axis removed
        # <<<

    def backward(self, g: np.ndarray):
        # >>> raise NotImplementedError("write the backward: return (da,)")
        g = np.expand_dims(g, self.axis)                       # back over the reduced axis
        return (g * np.exp(self.a - self.out),)                # g * softmax(a)
        # <<<


if __name__ == "__main__":
    x = ta.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    print(LogSumExp.apply(x, axis=1).data, ta.gradcheck(lambda t: LogSumExp.apply(t, axis=1), [x]))
'''
NO_G = "the upstream gradient g forgotten"
UNSTABLE = "an unstable forward (exp overflows)"
NEEDS = ("LogSumExp",)
MISTAKES = (UNSTABLE, NO_G, SIGN)


def _reference(t: Tensor, axis: int) -> Tensor:
    """logsumexp from the package's own ops: m + log sum exp(a - m), m the (constant) max."""
    m = Tensor(t.data.max(axis=axis, keepdims=True))
    return ((t - m).exp().sum(axis=axis, keepdims=True).log() + m).reshape(
        *(n for i, n in enumerate(t.shape) if i != axis % t.ndim))


def _run(learner, a: np.ndarray, axis: int, g: np.ndarray | None = None):
    """The learner's op on a: its output, and its da for upstream g (if g is given)."""
    with backend("numpy"):
        x = Tensor(a.copy(), requires_grad=True)
        out = learner.LogSumExp.apply(x, axis=axis)
        if g is not None:
            out.backward(g)
            return x.grad
        return out.data


def grade(learner: ModuleType) -> list[Result]:
    rng = np.random.default_rng(6)
    a = rng.standard_normal((3, 4, 5))
    big = 1000 * rng.standard_normal((4, 6))                   # exp overflows at these magnitudes
    g = rng.standard_normal((3, 5))
    with backend("numpy"):
        want_small = _reference(Tensor(a), 1).data
        want_big = _reference(Tensor(big), -1).data
    (want_da,) = vjp(lambda t: _reference(t, 1), [a], g)
    with np.errstate(all="ignore"):
        naive = np.log(np.exp(big).sum(axis=-1))
    softmax = np.exp(a - np.expand_dims(want_small, 1))
    results = [
        compare("forward", call("forward", _run, learner, a, 1), want_small),
        compare("forward at |a| ~ 1000", call("forward at |a| ~ 1000", _run, learner, big, -1), want_big,
                [Mistake(UNSTABLE, "exp(1000) is inf in float64: compute m + log(sum(exp(a - m))) with m the max",
                         naive)]),
        compare("backward", call("backward", _run, learner, a, 1, g), want_da,
                [Mistake(NO_G, "da = g * softmax(a): multiply by g (expanded over the reduced axis)", softmax)]),
    ]
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    results.append(gradcheck_part("gradcheck", lambda t: learner.LogSumExp.apply(t, axis=0), [x]))
    return results
