"""A one-layer self-attention model learns to reverse short sequences, on both backends.

Reversal can only be solved by attention: output position i must copy the token at T-1-i, so the
model has to learn to look at the mirror position (the anti-diagonal of its attention map)."""

import numpy as np

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn, optim

VOCAB, T, D = 6, 5, 16


class Reverser(nn.Module):
    def __init__(self):
        self.tok = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(ta.randn(T, D).data * 0.5)
        self.attn = nn.SelfAttention(D)
        self.out = nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.tok(ids) + self.pos                           # [B, T, D]
        return self.out(self.attn(x))                          # [B, T, D] -> [B, T, VOCAB]


def train(steps=300, batch=32):
    ta.manual_seed(0)
    model = Reverser()
    opt = optim.Adam(model.parameters(), lr=0.02)
    data = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        ids = data.integers(0, VOCAB, size=(batch, T))
        loss = F.cross_entropy(model(ids), ids[:, ::-1])
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return model, losses


def test_self_attention_learns_to_reverse(backend):
    model, losses = train()
    start, end = np.mean(losses[:10]), np.mean(losses[-10:])
    print(f"[{backend}] cross-entropy: first 10 steps {start:.3f}, last 10 steps {end:.3f}")
    assert end < 0.3 * start
    attn = model.attn.attn.mean(axis=0)                        # [T, T], averaged over the last batch
    assert np.all(np.argmax(attn, axis=1) == np.arange(T)[::-1])   # it looks at the mirror position
