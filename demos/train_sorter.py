"""Train a tiny transformer to sort (or reverse) short sequences of digits, then watch its attention.

    python demos/train_sorter.py [--task sort|reverse] [--steps N] [--out DIR]

Sorting needs attention by content (position i must find the i-th smallest digit), reversing needs
attention by position (position i looks at T-1-i). Both are learned from examples alone.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import tinygrad_attn as ta  # noqa: E402
import tinygrad_attn.functional as F  # noqa: E402
from tinygrad_attn import nn, optim, viz  # noqa: E402

VOCAB, LENGTH = 10, 6                                   # digits 0-9, sequences of 6


class Sorter(nn.Module):
    """Token + position embeddings -> transformer blocks -> LayerNorm -> logits over the digits."""

    def __init__(self, d_model: int = 32, n_heads: int = 2, n_layers: int = 2):
        self.tokens = nn.Embedding(VOCAB, d_model)
        self.positions = nn.Embedding(LENGTH, d_model)
        self.blocks = nn.Sequential(*[nn.TransformerBlock(d_model, n_heads) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, VOCAB)

    def forward(self, ids: np.ndarray) -> ta.Tensor:
        x = self.tokens(ids) + self.positions(np.arange(LENGTH))     # [B, T] -> [B, T, d_model]
        return self.head(self.norm(self.blocks(x)))                  # [B, T, d_model] -> [B, T, VOCAB]


def batch(rng: np.random.Generator, n: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, VOCAB, size=(n, LENGTH))                     # [n, T]
    return x, np.sort(x, axis=1) if task == "sort" else x[:, ::-1]   # [n, T], [n, T]


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--task", choices=["sort", "reverse"], default="sort")
parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
parser.add_argument("--out", type=Path, default=None, help="save the last layer's attention heatmap here")
args = parser.parse_args()
ta.manual_seed(0)
rng = np.random.default_rng(0)

model = Sorter()
opt = optim.Adam(model.parameters(), lr=3e-3)
for step in range(1, args.steps + 1):
    x, y = batch(rng, 64, args.task)
    loss = F.cross_entropy(model(x), y)                                # mean over all B*T positions
    opt.zero_grad()
    loss.backward()
    optim.clip_grad_norm(model.parameters(), 1.0)
    opt.step()
    if step % max(1, args.steps // 10) == 0 or step == args.steps:
        print(f"step {step:5d}  loss {loss.item():.4f}")

model.eval()
x, y = batch(rng, 1000, args.task)
with ta.no_grad():
    predicted = model(x).numpy().argmax(axis=-1)                     # [1000, T]
print(f"{args.task}: token accuracy {(predicted == y).mean():.3f}, "
      f"whole sequences right {(predicted == y).all(axis=1).mean():.3f} (1000 fresh sequences)")
for row in range(3):
    print(f"  {x[row]} -> {predicted[row]}  (want {y[row]})")

weights = model.blocks[-1].mha.attn[0]                               # [heads, T, T] of the first sequence
labels = [str(d) for d in x[0]]                                     # the input digits, the keys
for h, w in enumerate(weights):
    print(f"last layer, head {h} (rows: output position, columns: the input digit attended to):")
    print(viz.text_heatmap(w, [f"out{i}" for i in range(LENGTH)], labels))
if args.out is not None:
    args.out.mkdir(parents=True, exist_ok=True)
    viz.plot_attention(weights, tokens=labels, title=f"{args.task}: last layer", path=args.out / "sorter.png")
    print(f"saved {args.out / 'sorter.png'}")
