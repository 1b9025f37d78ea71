"""A tiny character-level transformer: learn a short text, then write more of it, one character at a time.

    python demos/char_transformer.py [--steps N] [--length N]

Causal self-attention: position i may attend only to positions j <= i, so the model can be trained
to predict every next character of a window at once, and then sample text left to right.
"""

import argparse

import numpy as np

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn, optim

TEXT = """\
each token looks at every token, itself included, and takes a weighted average of what it sees.
the weights come from a softmax of scores, and the scores from queries meeting keys.
a token that only compared itself with the others would mostly see itself,
so each token asks with a query, answers with a key, and hands over a value.
"""
CHARS = sorted(set(TEXT))
IDS = np.array([CHARS.index(c) for c in TEXT])          # the whole text as character ids
WINDOW = 32                                             # characters of context the model sees


class CharTransformer(nn.Module):
    """Character + position embeddings -> causal transformer blocks -> LayerNorm -> next-character logits."""

    def __init__(self, d_model: int = 32, n_heads: int = 2, n_layers: int = 2):
        self.chars = nn.Embedding(len(CHARS), d_model)
        self.positions = nn.Embedding(WINDOW, d_model)
        self.blocks = nn.Sequential(*[nn.TransformerBlock(d_model, n_heads, causal=True) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, len(CHARS))

    def forward(self, ids: np.ndarray) -> ta.Tensor:
        x = self.chars(ids) + self.positions(np.arange(ids.shape[-1]))   # [B, T] -> [B, T, d_model]
        return self.head(self.norm(self.blocks(x)))                      # [B, T, d_model] -> [B, T, chars]


def generate(model: CharTransformer, prompt: str, length: int, rng: np.random.Generator) -> str:
    """Extend `prompt` by `length` characters, each sampled from the model's next-character distribution."""
    ids = [CHARS.index(c) for c in prompt]
    with ta.no_grad():
        for _ in range(length):
            context = np.array([ids[-WINDOW:]])                          # [1, T <= WINDOW]
            logits = model(context).numpy()[0, -1]                       # [chars]: the prediction after the last
            p = np.exp((logits - logits.max()) / 0.8)                    # temperature 0.8: a little sharper
            ids.append(int(rng.choice(len(CHARS), p=p / p.sum())))
    return "".join(CHARS[i] for i in ids)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
parser.add_argument("--length", type=int, default=200, help="characters to generate (default 200)")
args = parser.parse_args()
ta.manual_seed(0)
rng = np.random.default_rng(0)

model = CharTransformer()
opt = optim.AdamW(model.parameters(), lr=3e-3)
print(f"{len(TEXT)} characters of text, {len(CHARS)} distinct; {sum(p.size for p in model.parameters())} parameters")
for step in range(1, args.steps + 1):
    starts = rng.integers(0, len(IDS) - WINDOW - 1, size=32)            # 32 random windows
    windows = IDS[starts[:, None] + np.arange(WINDOW + 1)]              # [32, WINDOW + 1]
    loss = F.cross_entropy(model(windows[:, :-1]), windows[:, 1:])      # predict each next character
    opt.zero_grad()
    loss.backward()
    optim.clip_grad_norm(model.parameters(), 1.0)
    opt.step()
    if step % max(1, args.steps // 10) == 0 or step == args.steps:
        print(f"step {step:4d}  loss {loss.item():.3f}  (uniform guessing: {np.log(len(CHARS)):.3f})")

model.eval()
print("\ngenerated:\n" + generate(model, "each token ", args.length, rng))
