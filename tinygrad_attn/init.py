"""Initialisation schemes, as PyTorch does them, drawn from the package generator (`ta.manual_seed`).

Each function returns a new float32 numpy array; layers wrap it in a `Parameter`.
"""

import math

import numpy as np

from .random import rng


def uniform(shape: tuple[int, ...], bound: float) -> np.ndarray:
    """Samples from U(-bound, bound): PyTorch's `nn.Linear` uses bound = 1/sqrt(in_features)."""
    return rng().uniform(-bound, bound, size=shape).astype(np.float32)


def xavier_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), which keeps the variance of
    activations and of gradients roughly the same from layer to layer."""
    return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)))


def normal(shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
    """Samples from N(0, std^2): PyTorch's `nn.Embedding` uses std = 1."""
    return (rng().standard_normal(shape) * std).astype(np.float32)
