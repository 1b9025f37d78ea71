"""Bench cases for whole training steps: a tiny transformer, and a step of small elementwise ops.

The transformer: Embedding(16, 64) + 2 pre-LN TransformerBlocks (4 heads, causal, d_ff 256) + a
Linear head, batch 32, T 32, cross-entropy, Adam; the same model in PyTorch when it is installed.
"""

import numpy as np

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn, optim

from .case import BenchCase

VOCAB, D_MODEL, HEADS, D_FF, T, BATCH = 16, 64, 4, 256, 32, 32


class TinyTransformer(nn.Module):
    def __init__(self):
        self.embed = nn.Embedding(VOCAB, D_MODEL)
        self.blocks = [nn.TransformerBlock(D_MODEL, HEADS, d_ff=D_FF, causal=True) for _ in range(2)]
        self.head = nn.Linear(D_MODEL, VOCAB)

    def forward(self, tokens):
        x = self.embed(tokens)                                  # [B, T] -> [B, T, D]
        for block in self.blocks:
            x = block(x)                                        # [B, T, D] -> [B, T, D]
        return self.head(x)                                     # [B, T, D] -> [B, T, VOCAB]


def _ours_step(backend_name: str):
    ta.manual_seed(0)
    model = TinyTransformer()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, VOCAB, (BATCH, T)), rng.integers(0, VOCAB, (BATCH, T))

    def step():
        with ta.backend(backend_name):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    return step


def _torch_step():
    import torch
    import torch.nn as tnn

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = tnn.LayerNorm(D_MODEL), tnn.LayerNorm(D_MODEL)
            self.qkv = tnn.Linear(D_MODEL, 3 * D_MODEL, bias=False)
            self.out = tnn.Linear(D_MODEL, D_MODEL, bias=False)
            self.mlp = tnn.Sequential(tnn.Linear(D_MODEL, D_FF), tnn.GELU(approximate="tanh"),
                                      tnn.Linear(D_FF, D_MODEL))

        def forward(self, x):
            q, k, v = self.qkv(self.ln1(x)).split(D_MODEL, -1)
            q, k, v = (t.view(BATCH, T, HEADS, -1).transpose(1, 2) for t in (q, k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out(a.transpose(1, 2).reshape(BATCH, T, D_MODEL))
            return x + self.mlp(self.ln2(x))

    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Embedding(VOCAB, D_MODEL), Block(), Block(), tnn.Linear(D_MODEL, VOCAB))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, VOCAB, (BATCH, T)), torch.randint(0, VOCAB, (BATCH, T))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x).view(-1, VOCAB), y.view(-1)).backward()
        opt.step()
    return step


def _small_ops_step(module):
    rng = np.random.default_rng(0)
    if module == "torch":
        import torch
        x, y, z = (torch.tensor(rng.standard_normal((8, 16)), dtype=torch.float32, requires_grad=True)
                   for _ in range(3))
    else:
        x, y, z = (ta.Tensor(rng.standard_normal((8, 16)).astype(np.float32), requires_grad=True) for _ in range(3))

    def step():
        ((x * y + z).relu().sum()).backward()
    return step


def cases() -> list[BenchCase]:
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    step_impls = {"numba": _ours_step("numba"), "numpy": _ours_step("numpy")}
    small_impls = {"numba": _small_ops_step("ours")}
    if has_torch:
        step_impls["torch"] = _torch_step()
        small_impls["torch"] = _small_ops_step("torch")
    return [
        BenchCase("training", "tiny transformer step (2 blocks, B32 T32 d64, Adam)", step_impls),
        BenchCase("training", "small-op step ((x*y+z).relu().sum()).backward() (8,16)", small_impls),
    ]
