"""Exercise `new_layer`: a layer of your own around an op of your own, gradchecked, then trained on `reverse`."""

import math
import time
from types import ModuleType

import numpy as np

from ... import functional as F
from ... import nn, optim
from ...backend import backend
from ...random import manual_seed
from ...tensor import Tensor, no_grad
from ..models import TokenEmbedding
from ..tasks import get_task
from .grading import NO_ROWSUM, NO_SCALE, TRANSPOSED, Mistake, Result, call, compare_each, gradcheck_part, vjp

NAME = "new_layer"
GOAL = "a new layer: attention around your own op (its backward yours), gradchecked, then trained on `reverse`"
TASK, TARGET, MAX_STEPS, BATCH, LR, D_MODEL = "reverse", 0.9, 120, 64, 1e-2, 32
SOLUTION = f'''\
"""Exercise `new_layer`: a layer of your own, built on an op of your own, trained on a built-in task.

The op, Attend (a ta.Function): H = softmax(q k^T * scale) v over the last two axes, with
q, k (B, T, d_k) and v (B, T, d_v). Its forward is given; its backward is yours:
    dv = p^T dH,  dp = dH v^T,  ds = p * (dp - rowsum(dp * p)),  dq = ds k * scale,  dk = ds^T q * scale
(transpose the last two axes only: np.swapaxes(x, -1, -2)). backward returns (dq, dk, dv).

The layer, Layer(d_model) (an nn.Module): x (B, T, d_model) -> (B, T, d_model). As given it is
one attention head, q = x W_q, k = x W_k, v = x W_v through nn.Linear(bias=False), then Attend.
Change it as you like (more heads, a residual, an output projection) as long as the signature stays.

How it is graded:
  1. Attend's dq, dk, dv against the package's attention, for a random dH (a wrong one is diagnosed).
  2. ta.gradcheck of Layer (cast to float64) with respect to its input and every parameter.
  3. Training: ids -> token + position embeddings -> Layer -> Linear head, Adam (lr {LR}), batches
     of {BATCH} fresh `{TASK}` sequences (target i = x_(T-1-i): each position must attend to its mirror).
     It passes when the accuracy on fresh sequences reaches {TARGET:.0%} within {MAX_STEPS} steps
     (a few seconds; the reference solution gets there in about 20).

Check it:  tinygrad-attn exercise check new_layer [PATH]
Stuck?     docs/architecture.md ("Adding an op", "Adding a layer");  tinygrad-attn exercise solution new_layer
"""

import math

import numpy as np

import tinygrad_attn as ta
from tinygrad_attn import nn


class Attend(ta.Function):
    """H = softmax(q k^T * scale) v over the last two axes (no mask)."""

    def forward(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
        s = q @ np.swapaxes(k, -1, -2) * scale                 # [B, T, d_k] @ [B, d_k, T] -> [B, T, T]
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        self.p = e / e.sum(axis=-1, keepdims=True)             # [B, T, T], rows sum to 1
        self.q, self.k, self.v, self.scale = q, k, v, scale
        return self.p @ v                                      # [B, T, T] @ [B, T, d_v] -> [B, T, d_v]

    def backward(self, dH: np.ndarray):
        # >>> raise NotImplementedError("write (dq, dk, dv)")
        t = lambda a: np.swapaxes(a, -1, -2)                   # noqa: E731  transpose each matrix of the batch
        p, q, k, v = self.p, self.q, self.k, self.v
        dv = t(p) @ dH                                         # reverses H = p v
        dp = dH @ t(v)
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))   # reverses the softmax
        dq = ds @ k * self.scale                               # reverses s = q k^T * scale
        dk = t(ds) @ q * self.scale
        return dq, dk, dv
        # <<<


class Layer(nn.Module):
    """One attention head around Attend: (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, d_model: int):
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.scale = 1 / math.sqrt(d_model)

    def forward(self, x: ta.Tensor) -> ta.Tensor:
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)         # [B, T, d_model] each
        return Attend.apply(q, k, v, scale=self.scale)         # [B, T, d_model]
'''
NEEDS = ("Attend", "Layer")
MISTAKES = (NO_SCALE, NO_ROWSUM, TRANSPOSED)


class _Model(nn.Module):
    """The model the layer is trained in: embeddings -> the learner's layer -> linear head."""

    def __init__(self, layer: nn.Module, vocab_size: int, seq_len: int):
        self.embed = TokenEmbedding(vocab_size, seq_len, D_MODEL)
        self.layer = layer
        self.head = nn.Linear(D_MODEL, vocab_size)

    def forward(self, ids: np.ndarray) -> Tensor:
        return self.head(self.layer(self.embed(ids)))          # [B, T] -> [B, T, D] -> [B, T, D] -> [B, T, V]


def _grade_attend(learner) -> list[Result]:
    rng = np.random.default_rng(7)
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 2))
    dH, scale = rng.standard_normal((2, 4, 2)), 1 / math.sqrt(3)
    want = vjp(lambda q, k, v: F.attention(q, k, v, scale=scale)[0], [q, k, v], dH)
    t = lambda a: np.swapaxes(a, -1, -2)                       # noqa: E731
    p = np.exp(q @ t(k) * scale)
    p /= p.sum(-1, keepdims=True)
    ds_no_rowsum = p * (dH @ t(v))
    ds = ds_no_rowsum - p * ds_no_rowsum.sum(-1, keepdims=True)

    def learners(q, k, v, dH):
        with backend("numpy"):
            ts = [Tensor(a, requires_grad=True) for a in (q, k, v)]
            learner.Attend.apply(*ts, scale=scale).backward(dH)
        return [x.grad for x in ts]

    rowsum_hint = "ds = p * dp leaves out the softmax Jacobian's -p p^T part: ds = p * (dp - rowsum(dp * p))"
    scale_hint = "s = q k^T * scale: the scale multiplies dq and dk too"
    mistakes = [
        [Mistake(NO_SCALE, scale_hint, want[0] / scale), Mistake(NO_ROWSUM, rowsum_hint, ds_no_rowsum @ k * scale)],
        [Mistake(NO_SCALE, scale_hint, want[1] / scale), Mistake(NO_ROWSUM, rowsum_hint, t(ds_no_rowsum) @ q * scale),
         Mistake(TRANSPOSED, "dk = ds^T q * scale", ds @ q * scale)],
        [Mistake(TRANSPOSED, "dv = p^T dH: transpose p", p @ dH)],
    ]
    got = call("Attend", learners, q, k, v, dH)
    return compare_each(("Attend dq", "Attend dk", "Attend dv"), got, want, mistakes)


def _train(learner) -> Result:
    """Train the learner's layer on TASK; pass when held-out accuracy reaches TARGET within MAX_STEPS."""
    manual_seed(0)
    task = get_task(TASK)
    model = _Model(learner.Layer(D_MODEL), task.vocab_size, task.seq_len)
    opt = optim.Adam(model.parameters(), lr=LR)
    start, accuracy, step = time.perf_counter(), 0.0, 0
    with backend("numpy"):
        for step in range(1, MAX_STEPS + 1):
            x, y = task.batch(BATCH)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0:
                with no_grad():
                    x, y = task.batch(256)
                    accuracy = float(np.mean(model(x).data.argmax(-1) == y))
                if accuracy >= TARGET:
                    break
    note = (f"{TASK}: accuracy {accuracy:.1%} on fresh sequences after {step} steps "
            f"({time.perf_counter() - start:.1f} s); the target is {TARGET:.0%} within {MAX_STEPS}")
    return Result(f"train {TASK}", accuracy >= TARGET, note=note, verdict_only=True)


def grade(learner: ModuleType) -> list[Result]:
    results = _grade_attend(learner)
    manual_seed(0)                                             # the same layer, so the same report, every check
    layer = call("gradcheck Layer", lambda: learner.Layer(6).to(np.float64))
    if isinstance(layer, Result):
        layer.verdict_only = True
        return results + [layer, Result(f"train {TASK}", False, note="skipped: the layer cannot be built",
                                        verdict_only=True)]
    x = Tensor(np.random.default_rng(8).standard_normal((2, 4, 6)), requires_grad=True)
    params = list(layer.parameters())
    results.append(gradcheck_part("gradcheck Layer", lambda x, *p: layer(x), [x, *params]))
    if not results[-1].ok:
        return results + [Result(f"train {TASK}", False, note="skipped until the gradients are right",
                                 verdict_only=True)]
    trained = call(f"train {TASK}", _train, learner)
    trained.verdict_only = True
    return results + [trained]
