"""The seed note's idea in one page: self-attention, why a token favours itself, and how Q/K/V fix it.

    python demos/seed_walkthrough.py [--steps N]     (N random token sets for the statistic in part 2)

The full version, with training and gradients, is `tinygrad-attn demo`.
"""

import argparse
import math

import numpy as np

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=2000, help="random token sets to sample in part 2")
args = parser.parse_args()
ta.manual_seed(0)
np.set_printoptions(precision=3, suppress=True)

# 1. Self-attention: x1, x2, x3 -> h1, h2, h3. Each x_i looks at every x_j, *itself included*.
#    x_i plays the role of seq2seq's decoder state (it asks), every x_j that of an encoder state.
X = ta.Tensor([[1.0, 0.0, 1.0], [0.0, 1.5, 0.5], [0.5, 1.0, 0.0]])   # [3, 3], one token per row
scores = X @ X.T                                      # [3, 3]: scores_ij = x_i . x_j
weights = scores.softmax(axis=-1)                     # [3, 3]: the attention distribution of each row
H = weights @ X                                       # [3, 3]: h_i = sum_j weights_ij x_j
print("1. naive self-attention\nscores x_i . x_j:\n", scores.numpy(), "\nweights:\n", weights.numpy())
print("outputs h1, h2, h3:\n", H.numpy())

# 2. The catch: x_i . x_i = |x_i|^2 is usually the largest score of row i, so each token
#    mostly attends to itself, and more so the bigger the dimension d.
print(f"\n2. how often a token's largest weight is on itself ({args.steps} random sets of 3 tokens)")
with ta.no_grad():
    for d in (2, 8, 32, 128):
        x = ta.randn(args.steps, 3, d)                # [N, 3, d]
        w = (x @ x.transpose(-2, -1)).softmax(axis=-1).numpy()   # [N, 3, 3]
        print(f"  d = {d:3d}: {(w.argmax(-1) == np.arange(3)).mean():6.1%} of rows (chance: 33.3%)")

# 3. Query, key, value: three learned views of each token. q_i . k_j need not favour j = i.
attention = nn.SelfAttention(3, d_k=2)                # W_q, W_k: [3, 2], W_v: [3, 3]
with ta.no_grad():
    Q, K, V = X @ attention.W_q, X @ attention.W_k, X @ attention.W_v   # [3, 2], [3, 2], [3, 3]
    P = (Q @ K.T / math.sqrt(2)).softmax(axis=-1)     # [3, 3]: softmax_j(q_i . k_j / sqrt(d_k))
    H = P @ V                                         # [3, 3]: h_i = sum_j P_ij v_j
    assert np.allclose(H.numpy(), attention(X).numpy(), atol=1e-6)
    assert np.allclose(H.numpy(), F.scaled_dot_product_attention(Q, K, V).numpy(), atol=1e-6)
print("\n3. with W_q, W_k, W_v (random for now; training shapes them)\nweights:\n", P.numpy())
print("outputs h1, h2, h3:\n", H.numpy())
print("(the same as nn.SelfAttention and F.scaled_dot_product_attention)")
