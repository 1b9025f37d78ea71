"""Placeholder until the Numba kernels land: the reference kernels under the fast names."""

from .reference import *  # noqa: F403
