"""Write your own op: a `ta.Function` with forward and backward on numpy arrays, checked by `ta.gradcheck`.

    python demos/custom_op.py [--steps N]

The op is the score matrix of attention, S = Q K^T * scale, as one node instead of three
(transpose, matmul, multiply). Its backward is two lines of the derivation in
docs/backprop-through-attention.md: dQ = dS K * scale and dK = dS^T Q * scale.
"""

import argparse
import math

import numpy as np

import tinygrad_attn as ta


class AttentionScores(ta.Function):
    """S = Q K^T * scale for Q (..., T_q, d) and K (..., T_k, d), with the same batch axes."""

    def forward(self, q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
        self.q, self.k, self.scale = q, k, scale                  # what backward will need
        return q @ k.swapaxes(-1, -2) * scale                     # [..., T_q, d] @ [..., d, T_k] -> [..., T_q, T_k]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        dq = g @ self.k * self.scale if self.needs_input_grad[0] else None                   # [..., T_q, d]
        dk = g.swapaxes(-1, -2) @ self.q * self.scale if self.needs_input_grad[1] else None  # [..., T_k, d]
        return dq, dk                                             # one gradient per input, in order


def scores(q: ta.Tensor, k: ta.Tensor) -> ta.Tensor:
    """The new op, called like any other: Function.apply(*tensors, **non-tensor arguments)."""
    return AttentionScores.apply(q, k, scale=1.0 / math.sqrt(q.shape[-1]))


def builtin_scores(q: ta.Tensor, k: ta.Tensor) -> ta.Tensor:
    """The same scores from built-in ops: transpose, matmul, divide (three nodes)."""
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=200, help="training steps in part 3 (default 200)")
args = parser.parse_args()
ta.manual_seed(0)

# 1. Backprop against finite differences (in float64), including a batch axis.
q = ta.randn(2, 4, 3, requires_grad=True)                         # [B, T, d]
k = ta.randn(2, 5, 3, requires_grad=True)                         # [B, T_k, d]
print("gradcheck passed:", ta.gradcheck(scores, [q, k]))

# 2. The same values and gradients as the op written with built-in ops.
for name, build in (("AttentionScores", scores), ("built-in ops   ", builtin_scores)):
    q.grad = k.grad = None
    build(q, k).softmax(axis=-1).sum(axis=(0, 1)).max().backward()  # any scalar of the scores will do
    print(f"{name}: dL/dq[0, 0] = {np.round(q.grad[0, 0], 5)}, dL/dk[0, 0] = {np.round(k.grad[0, 0], 5)}")

# 3. Use it: learn W_q, W_k so that each of 5 positions attends to the next one (the last to the first).
X = ta.Tensor(np.eye(5))                                           # [T, d_model]: one-hot positions
W_q, W_k = ta.randn(5, 4, requires_grad=True), ta.randn(5, 4, requires_grad=True)   # [d_model, d_k]
target = np.roll(np.eye(5), 1, axis=1)                            # row i is one-hot at (i + 1) % 5
for step in range(1, args.steps + 1):
    P = scores(X @ W_q, X @ W_k).softmax(axis=-1)                 # [T, T] attention weights
    loss = -(P.log() * target).sum() / 5                          # cross-entropy against the target rows
    W_q.grad = W_k.grad = None
    loss.backward()
    for W in (W_q, W_k):
        W.data -= 0.5 * W.grad                                    # plain gradient descent, in place
    if step % max(1, args.steps // 5) == 0 or step == args.steps:
        print(f"step {step:4d}  loss {loss.item():.4f}")
print("learned attention (row i should put its weight on column i+1):")
print(np.round(P.numpy(), 2))
