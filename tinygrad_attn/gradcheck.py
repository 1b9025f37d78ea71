"""`gradcheck`: compare backprop's gradients with central finite differences, in float64."""

from collections.abc import Callable, Sequence

import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numeric one; the message names input, element and values."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3) -> bool:
    """Check d/dx of L = sum(fn(*inputs) * R), R a fixed random array, for every input with requires_grad.

    Passes when |analytic - numeric| <= atol + rtol * |numeric| for every element; returns True, or
    raises GradcheckError naming the input, the worst element, and both values.
    """
    assert_gradients_close(compare_gradients(fn, inputs, eps), atol, rtol)
    return True


def assert_gradients_close(results: list[tuple[int, np.ndarray, np.ndarray]], atol: float, rtol: float) -> None:
    """Raise GradcheckError at the worst element of the first input whose gradients disagree."""
    for i, analytic, numeric in results:
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if analytic.size and not np.all(excess <= 0):
            worst = np.unravel_index(np.argmax(np.where(np.isnan(excess), np.inf, excess)), analytic.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {analytic.shape}) disagrees at index {tuple(int(j) for j in worst)}: "
                f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g} "
                f"(allowed |diff| <= {atol} + {rtol} * |numeric|)")


def compare_gradients(fn: Callable[..., Tensor], inputs: Sequence[Tensor],
                      eps: float = 1e-6) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(input index, analytic gradient, numeric gradient) for every input with requires_grad.

    Analytic: one backward pass of L = sum(fn(*inputs) * R) with grad R. Numeric, element by element:
    (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), all in float64. Inputs of another float dtype are
    cast to float64 copies; float64 inputs are used as they are (perturbed in place and restored), so
    a model's parameters can be checked after `model.to(np.float64)`.
    """
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"gradcheck: inputs must be a list or tuple of Tensors, got {type(inputs).__name__}")
    xs = [_as_float64(t) for t in inputs]
    if not any(x.requires_grad for x in xs):
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    out = fn(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    projection = np.random.default_rng(0).standard_normal(out.shape)

    def loss() -> float:
        with no_grad():
            return float(np.sum(fn(*xs).data * projection))

    before = [x.grad for x in xs]
    for x in xs:
        x.grad = None
    if out.requires_grad:
        out.backward(projection)
    analytic = [x.grad if x.grad is not None else np.zeros(x.shape) for x in xs]
    for x, g in zip(xs, before):
        x.grad = g

    results = []
    for i, x in enumerate(xs):
        if not x.requires_grad:
            continue
        numeric = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            original = x.data[idx]
            x.data[idx] = original + eps
            up = loss()
            x.data[idx] = original - eps
            down = loss()
            x.data[idx] = original
            numeric[idx] = (up - down) / (2 * eps)
        results.append((i, analytic[i], numeric))
    return results


def _as_float64(t) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"gradcheck: every input must be a Tensor, got {type(t).__name__}")
    if t.dtype == np.float64:
        if not t.data.flags.writeable:
            t.data = t.data.copy()
        return t
    if t.dtype.kind != "f":
        return t                                                # an index or mask input: passed through
    return Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad)
