"""Debugging aids for learners writing their own ops: `detect_anomaly` and the handle `register_hook` returns.

Inside `with ta.detect_anomaly():` the engine records, for every op it puts in the graph, the file:line
of the learner's forward call (the innermost frame outside this package); outside it nothing is recorded,
so normal runs pay nothing. During backward, the first op whose gradient turns NaN or infinite although
the gradient arriving from above was finite raises a RuntimeError naming the op, its input shapes and
that line, as PyTorch's `torch.autograd.detect_anomaly` does.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable

import numpy as np

from .function import Function

anomaly = False                                               # read by the engine at every op and backward step
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class detect_anomaly(contextlib.ContextDecorator):
    """`with ta.detect_anomaly(): ...` (or as a decorator): record forward lines and check every backward step."""

    def __enter__(self) -> None:
        global anomaly
        self.previous, anomaly = anomaly, True

    def __exit__(self, *exc) -> None:
        global anomaly
        anomaly = self.previous


class HookHandle:
    """Returned by `Tensor.register_hook`; `.remove()` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks: dict, fn: Callable):
        self.hooks, self.key = hooks, next(self._ids)
        hooks[self.key] = fn

    def remove(self) -> None:
        self.hooks.pop(self.key, None)


def user_line() -> str:
    """file:line of the innermost frame outside this package: the learner's forward call."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return "an unknown place" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def check_anomaly(ctx: Function, g: np.ndarray, input_grads: tuple) -> None:
    """Raise naming the op, its input shapes and its forward line if finite `g` gave a NaN/inf input gradient."""
    if not np.all(np.isfinite(g)):
        return
    for i, (pg, needed) in enumerate(zip(input_grads, ctx.needs_input_grad)):
        if needed and pg is not None and not np.all(np.isfinite(pg)):
            shapes = ", ".join(str(p.shape) for p in ctx.parents)
            site = ctx.site or "an unknown line (run the forward pass inside ta.detect_anomaly() to record it)"
            raise RuntimeError(f"detect_anomaly: the backward of {type(ctx).__name__} (inputs of shapes {shapes}) "
                               f"gave a NaN or infinite gradient for input {i} from finite upstream gradients; "
                               f"the op was created at {site}")
