"""The `Function` base class and `unbroadcast`: what every op in `ops.py` is built from.

A Function is one node of the graph. `forward` computes the output from numpy arrays and keeps
what `backward` will need on `self`; `backward` takes dL/d(output) and returns dL/d(input) for
every input (None where `self.needs_input_grad` says it is not wanted). Functions know nothing of
Tensor: the engine (`tensor.py`) unwraps the inputs, calls `forward`, and links the output into
the graph; it also gives every Function its `apply(*tensors, **kwargs)` classmethod.
"""

import numpy as np


class Function:
    """One differentiable op. Subclasses define `forward(*arrays, **kwargs)` and `backward(grad)`."""

    needs_input_grad: tuple[bool, ...] = ()
    parents: tuple = ()
    site: str | None = None                  # file:line of the forward call, recorded inside ta.detect_anomaly()

    def forward(self, *arrays: np.ndarray, **kwargs) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, grad: np.ndarray):
        raise NotImplementedError(f"{type(self).__name__} has no backward")


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` back down to `shape`, undoing numpy broadcasting.

    If x of `shape` was broadcast to y = grad.shape, every element of x fed several elements of y,
    so dL/dx is the sum of dL/dy over those copies: over the leading axes that broadcasting added,
    and over every axis where x had size 1 and y did not.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=tuple(range(lead)) + stretched).reshape(shape)
