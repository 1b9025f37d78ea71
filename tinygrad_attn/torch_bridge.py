"""`ta.to_torch(module)`: the equivalent `torch.nn.Module` of a built-in layer, with the weights copied.

PyTorch is not a dependency: it is imported only when `to_torch` is called. The two conventions that
differ are translated here, once:

- Linear: our weight is (in, out) for row vectors (y = x W + b); PyTorch's is (out, in) (y = x W^T + b),
  so the copy is W^T, and its gradient comes back transposed too.
- MultiHeadAttention becomes `torch.nn.MultiheadAttention(batch_first=True, bias=False)` with
  `in_proj_weight` = [W_q^T; W_k^T; W_v^T] (3 d_model, d_model) and `out_proj.weight` = W_o^T, inside a small
  wrapper taking the same arguments as ours: our mask says True = may attend, torch's `attn_mask` says
  True = may NOT attend, and a (B, T, T) mask is repeated for each head as torch wants.

SelfAttention and TransformerBlock have no PyTorch class, so they become small torch modules written
here with the same parameters (row-vector W_q, W_k, W_v, as ours) and the same forward. Parameters keep
their dtype (float32 or float64) and the module its train/eval mode. A Module subclass of your own (with
its own `forward`) cannot be translated: convert its built-in parts and write the forward in torch.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import nn


def to_torch(module: nn.Module):
    """The `torch.nn.Module` computing what `module` computes, with copies of its weights.

    Supported: Linear, Embedding, LayerNorm, Dropout, ReLU, GELU (tanh approximation), SiLU, Tanh,
    Sequential, ModuleList, SelfAttention, MultiHeadAttention, TransformerBlock, and any nesting of them
    in Sequential/ModuleList. Raises ImportError when PyTorch is not installed, TypeError for anything else.
    """
    try:
        import torch
    except ImportError as e:
        raise ImportError("to_torch needs PyTorch, which tinygrad_attn does not depend on: pip install torch") from e
    if not isinstance(module, nn.Module):
        raise TypeError(f"to_torch: expected a tinygrad_attn.nn.Module, got {type(module).__name__}")
    return _convert(module, torch)


def _convert(module: nn.Module, torch):
    convert = _converters(torch).get(type(module))           # the exact class: a subclass may change forward
    if convert is None:
        raise TypeError(f"to_torch: cannot convert {type(module).__name__}: it is not one of the built-in layers "
                        f"({', '.join(sorted(c.__name__ for c in _converters(torch)))}); convert its built-in "
                        f"parts one by one and write its forward in torch")
    out = convert(module)
    out.training = module.training                             # this module's mode only: each part keeps its own
    return out


def _copy(torch, array: np.ndarray):
    """A torch Parameter holding a copy of `array` (same dtype)."""
    return torch.nn.Parameter(torch.from_numpy(np.array(array, copy=True)))


@functools.cache
def _converters(torch) -> dict:
    """{our class: function(our module) -> torch module}; the torch-side classes are defined here because
    torch may only be imported when someone converts."""
    tF = torch.nn.functional

    def dtype_of(module):
        params = module.parameters()
        return getattr(torch, np.dtype(params[0].dtype).name) if params else None

    class SelfAttention(torch.nn.Module):
        """softmax(Q K^T * scale, masked) V with Q = x W_q, K = x W_k, V = x W_v (row vectors, as ours);
        `mask` True = may attend (the convention of torch's scaled_dot_product_attention too)."""

        def __init__(self, layer: nn.SelfAttention):
            super().__init__()
            self.W_q, self.W_k, self.W_v = (_copy(torch, p.data) for p in (layer.W_q, layer.W_k, layer.W_v))
            self.causal, self.scale = layer.causal, layer.scale

        def forward(self, x, mask=None):
            Q, K, V = x @ self.W_q, x @ self.W_k, x @ self.W_v   # [B, T, d_k], [B, T, d_k], [B, T, d_v]
            allowed = _allowed(torch, mask, self.causal, x.shape[-2], x.device)
            return tF.scaled_dot_product_attention(Q, K, V, attn_mask=allowed, scale=self.scale)

    class MultiHeadAttention(torch.nn.Module):
        """Our MultiHeadAttention's call signature around `torch.nn.MultiheadAttention` (in `.attention`)."""

        def __init__(self, layer: nn.MultiHeadAttention):
            super().__init__()
            if not math.isclose(layer.scale, 1.0 / math.sqrt(layer.d_h), rel_tol=1e-12):
                raise TypeError(f"to_torch: MultiHeadAttention with scale={layer.scale} cannot be converted: "
                                f"torch.nn.MultiheadAttention always scales by 1/sqrt(d_h)")
            self.n_heads, self.causal = layer.n_heads, layer.causal
            self.attention = torch.nn.MultiheadAttention(layer.d_model, layer.n_heads, bias=False, batch_first=True,
                                                         dtype=dtype_of(layer))
            self.attention.training = layer.training
            with torch.no_grad():
                qkv = np.concatenate([layer.W_q.data.T, layer.W_k.data.T, layer.W_v.data.T])   # [3 d_model, d_model]
                self.attention.in_proj_weight.copy_(torch.from_numpy(qkv))
                self.attention.out_proj.weight.copy_(torch.from_numpy(np.array(layer.W_o.data.T)))

        def forward(self, x, mask=None):
            allowed = _allowed(torch, mask, self.causal, x.shape[-2], x.device)   # True = may attend
            if allowed is not None and allowed.ndim == 3:      # [B, T, T] -> [B * n_heads, T, T], as torch wants
                allowed = allowed.expand(x.shape[0], -1, -1).repeat_interleave(self.n_heads, dim=0)
            blocked = None if allowed is None else ~allowed    # torch: True = may NOT attend
            out, _ = self.attention(x, x, x, attn_mask=blocked, need_weights=False)
            return out

    class TransformerBlock(torch.nn.Module):
        """x = x + Dropout(MHA(LN1(x)));  x = x + Dropout(MLP(LN2(x))), as ours (pre-LayerNorm)."""

        def __init__(self, block: nn.TransformerBlock):
            super().__init__()
            self.ln1, self.mha = _convert(block.ln1, torch), _convert(block.mha, torch)
            self.ln2, self.mlp = _convert(block.ln2, torch), _convert(block.mlp, torch)
            self.dropout = _convert(block.dropout, torch)

        def forward(self, x, mask=None):
            x = x + self.dropout(self.mha(self.ln1(x), mask))
            return x + self.dropout(self.mlp(self.ln2(x)))

    def linear(layer: nn.Linear):
        out = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                              dtype=dtype_of(layer))
        with torch.no_grad():
            out.weight.copy_(torch.from_numpy(np.array(layer.weight.data.T)))   # (in, out) -> (out, in)
            if layer.bias is not None:
                out.bias.copy_(torch.from_numpy(layer.bias.data))
        return out

    def embedding(layer: nn.Embedding):
        return torch.nn.Embedding.from_pretrained(torch.from_numpy(np.array(layer.weight.data)), freeze=False)

    def layer_norm(layer: nn.LayerNorm):
        out = torch.nn.LayerNorm(layer.dim, eps=layer.eps, dtype=dtype_of(layer))
        with torch.no_grad():
            out.weight.copy_(torch.from_numpy(layer.weight.data))
            out.bias.copy_(torch.from_numpy(layer.bias.data))
        return out

    converters = {
        nn.Linear: linear, nn.Embedding: embedding, nn.LayerNorm: layer_norm,
        nn.Dropout: lambda layer: torch.nn.Dropout(layer.p),
        nn.ReLU: lambda layer: torch.nn.ReLU(), nn.SiLU: lambda layer: torch.nn.SiLU(),
        nn.Tanh: lambda layer: torch.nn.Tanh(),
        nn.GELU: lambda layer: torch.nn.GELU(approximate="tanh"),   # Tensor.gelu is the tanh approximation
        nn.Sequential: lambda seq: torch.nn.Sequential(*(_convert(m, torch) for m in seq)),
        nn.ModuleList: lambda mods: torch.nn.ModuleList([_convert(m, torch) for m in mods]),
        nn.SelfAttention: SelfAttention, nn.MultiHeadAttention: MultiHeadAttention,
        nn.TransformerBlock: TransformerBlock,
    }
    return converters


def _allowed(torch, mask, causal: bool, T: int, device):
    """Our mask (array, list or tensor; True = may attend) AND the causal triangle, as a torch bool tensor."""
    allowed = None
    if mask is not None:
        allowed = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
        allowed = allowed.to(device=device, dtype=torch.bool)
    if causal:
        tri = torch.ones(T, T, dtype=torch.bool, device=device).tril()   # key j <= query i
        allowed = tri if allowed is None else allowed & tri
    return allowed
