"""The package's one random number generator, so `manual_seed` makes every draw repeatable."""

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed every random draw in the package: init, dropout, `randn`, the built-in tasks."""
    global _rng
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The generator in use now (read it at each draw: `manual_seed` replaces it)."""
    return _rng
