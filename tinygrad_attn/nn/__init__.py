"""Layers: `from tinygrad_attn import nn`.

- `module.py`: Module (parameter discovery, train/eval, state dicts, `to`) and Parameter
- `layers.py`: Linear, Embedding, LayerNorm, Dropout, ReLU, GELU, SiLU, Tanh, Sequential, ModuleList
- `attention.py`: SelfAttention, MultiHeadAttention
- `transformer.py`: TransformerBlock
"""

from .attention import MultiHeadAttention, SelfAttention
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear, ModuleList, ReLU, Sequential, SiLU, Tanh
from .module import Module, Parameter
from .transformer import TransformerBlock

__all__ = [
    "GELU", "Dropout", "Embedding", "LayerNorm", "Linear", "Module", "ModuleList", "MultiHeadAttention", "Parameter",
    "ReLU", "SelfAttention", "Sequential", "SiLU", "Tanh", "TransformerBlock",
]
