"""The small models `tinygrad-attn train` fits, built from the public `nn` layers.

Both read token ids (B, T) and return logits (B, T, vocab):

- `AttentionModel`: token + position embeddings -> one `nn.SelfAttention` -> linear head. The
  smallest model that can solve copy, reverse and shift: the answer is one attention pattern.
- `TransformerModel`: token + position embeddings -> N `nn.TransformerBlock`s -> LayerNorm -> head.

`scale=False` drops the 1/sqrt(d_k) from every attention layer (for `--no-scale`), so a reader can
see what it is for: without it the scores grow with d_k and the softmax saturates early.
`build_model(config)` rebuilds a model from the plain dict that checkpoints store.
"""

from __future__ import annotations

import numpy as np

import tinygrad_attn as ta
from tinygrad_attn import nn


class TokenEmbedding(nn.Module):
    """Token embedding plus a learned embedding of each position: ids (B, T) -> vectors (B, T, d_model)."""

    def __init__(self, vocab_size: int, seq_len: int, d_model: int):
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(seq_len, d_model)

    def forward(self, ids: np.ndarray) -> ta.Tensor:
        T = ids.shape[-1]
        return self.tokens(ids) + self.positions(np.arange(T))     # [B, T, D] + [T, D]


class AttentionModel(nn.Module):
    """Embeddings -> one self-attention layer -> linear head to the vocabulary."""

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 32, causal: bool = False, scale: bool = True):
        self.embed = TokenEmbedding(vocab_size, seq_len, d_model)
        self.attention = nn.SelfAttention(d_model, causal=causal, scale=None if scale else 1.0)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: np.ndarray) -> ta.Tensor:
        return self.head(self.attention(self.embed(ids)))      # [B, T, D] -> [B, T, D] -> [B, T, V]

    def attention_layers(self) -> list[nn.Module]:
        """The attention layers, first to last (each holds its last forward's weights in `.attn`)."""
        return [self.attention]


class TransformerModel(nn.Module):
    """Embeddings -> n_layers pre-LayerNorm transformer blocks -> LayerNorm -> linear head."""

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 32, n_heads: int = 2, n_layers: int = 2,
                 causal: bool = False, scale: bool = True):
        self.embed = TokenEmbedding(vocab_size, seq_len, d_model)
        self.blocks = [nn.TransformerBlock(d_model, n_heads, causal=causal, scale=None if scale else 1.0)
                       for _ in range(n_layers)]
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: np.ndarray) -> ta.Tensor:
        x = self.embed(ids)                                    # [B, T, D]
        for block in self.blocks:
            x = block(x)                                       # [B, T, D]
        return self.head(self.norm(x))                         # [B, T, V]

    def attention_layers(self) -> list[nn.Module]:
        """The attention layers, first to last (each holds its last forward's weights in `.attn`)."""
        return [block.mha for block in self.blocks]


def attention_maps(model: AttentionModel | TransformerModel) -> list[np.ndarray]:
    """The weights of the model's last forward, one (B, heads, T, T) array per attention layer."""
    maps = [layer.attn for layer in model.attention_layers()]
    return [m[..., None, :, :] if isinstance(layer, nn.SelfAttention) else m
            for m, layer in zip(maps, model.attention_layers())]


MODELS = {"attention": AttentionModel, "transformer": TransformerModel}


def build_model(config: dict) -> AttentionModel | TransformerModel:
    """A fresh model from a config dict: `model` ("attention" or "transformer"), `vocab_size`, `seq_len`,
    `d_model`, `causal`, `scale`, and for the transformer `n_heads` and `n_layers`."""
    kind = config["model"]
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    common = dict(vocab_size=int(config["vocab_size"]), seq_len=int(config["seq_len"]),
                  d_model=int(config["d_model"]), causal=bool(config["causal"]), scale=bool(config["scale"]))
    if kind == "transformer":
        return TransformerModel(**common, n_heads=int(config["n_heads"]), n_layers=int(config["n_layers"]))
    return AttentionModel(**common)
