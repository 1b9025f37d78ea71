"""A pre-LayerNorm transformer block: attention and an MLP, each added back onto the residual stream."""

from __future__ import annotations

from ..tensor import Tensor
from ..validate import check_int, check_number
from .attention import MultiHeadAttention, check_input, check_mask
from .layers import GELU, Dropout, LayerNorm, Linear, Sequential
from .module import Module


class TransformerBlock(Module):
    """x = x + Dropout(MHA(LN1(x)));  x = x + Dropout(MLP(LN2(x))),  MLP = Linear → GELU → Linear.

    Pre-LN (as GPT-2): each branch sees a normalised copy of x, while x itself, the residual
    stream, is only ever added to, so gradients reach early layers unchanged through the sums.
    d_ff (the MLP's hidden width) defaults to 4 d_model; `scale` goes to the attention (None:
    1/sqrt(d_h)). Submodules: `ln1`, `mha`, `ln2`, `mlp`.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, causal: bool = False,
                 dropout: float = 0.0, scale: float | None = None):
        d_model = check_int("TransformerBlock", "d_model", d_model, min=1)
        check_int("TransformerBlock", "n_heads", n_heads, min=1)
        d_ff = 4 * d_model if d_ff is None else check_int("TransformerBlock", "d_ff", d_ff, min=1)
        dropout = check_number("TransformerBlock", "dropout", dropout, min=0.0, max=1.0)
        self.d_model = d_model
        self.ln1 = LayerNorm(d_model)
        self.mha = MultiHeadAttention(d_model, n_heads, causal, scale)
        self.ln2 = LayerNorm(d_model)
        self.mlp = Sequential(Linear(d_model, d_ff), GELU(), Linear(d_ff, d_model))
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask=None) -> Tensor:
        check_input("TransformerBlock", x, self.d_model)      # fail early, naming this block and the user's shapes
        if mask is not None:
            mask = check_mask("TransformerBlock", mask, x)
        x = x + self.dropout(self.mha(self.ln1(x), mask))     # [B, T, d_model]
        x = x + self.dropout(self.mlp(self.ln2(x)))            # [B, T, d_model]
        return x
