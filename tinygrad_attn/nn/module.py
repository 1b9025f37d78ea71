"""`Module` and `Parameter`: how layers hold their weights, find each other's, and save them.

A Module finds its parameters by looking at its own attributes: a `Parameter`, another `Module`
(whose parameters join in, under a dotted name), or a list, tuple or dict holding those. There is
no registration step: `self.W_q = Parameter(...)` is all it takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ..tensor import FLOATS, Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: `requires_grad=True`, float32 unless given float64 data or cast."""

    __slots__ = ()

    def __init__(self, data, dtype=None):
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of every layer: subclasses set attributes in `__init__` and define `forward`."""

    training: bool = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ finding parameters and submodules
    def _walk(self) -> Iterator[tuple[str, Parameter | Module]]:
        """(dotted name, object) for this module, every submodule and every parameter, depth first,
        each object once (a shared parameter keeps the first name it is found under)."""
        seen: set[int] = set()
        stack: list[tuple[str, object]] = [("", self)]
        while stack:
            name, value = stack.pop()
            if isinstance(value, (Parameter, Module)):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                yield name, value
            if isinstance(value, Module):
                children = value._children()
            elif isinstance(value, (list, tuple)):
                children = ((str(i), v) for i, v in enumerate(value))
            elif isinstance(value, Mapping):
                children = ((str(k), v) for k, v in value.items())
            else:
                continue
            prefix = f"{name}." if name else ""
            stack.extend(reversed([(prefix + child, v) for child, v in children]))

    def _children(self):
        """(name, value) pairs that may hold parameters or submodules: the attributes, by default."""
        return vars(self).items()

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """[(dotted name, Parameter)], in the order the attributes were set, e.g. "mha.W_q"."""
        return [(name, value) for name, value in self._walk() if isinstance(value, Parameter)]

    def parameters(self) -> list[Parameter]:
        """Every Parameter of this module and its submodules, each once."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> list[Module]:
        """This module and every submodule."""
        return [m for _, m in self._walk() if isinstance(m, Module)]

    # ------------------------------------------------------------------ training state
    def zero_grad(self) -> None:
        """Clear every parameter's `.grad` (gradients accumulate across backward calls until cleared)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        """Set `.training` on this module and every submodule (Dropout is active only in training)."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """`train(False)`."""
        return self.train(False)

    def to(self, dtype) -> Module:
        """Cast every parameter (and its grad) to float32 or float64 in place: the same Parameter
        objects get new arrays, so an optimizer made earlier still updates them. Returns self."""
        dtype = np.dtype(dtype)
        if dtype not in FLOATS:
            raise TypeError(f"to: parameters can be float32 or float64, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype, copy=False)
            if p.grad is not None:
                p.grad = p.grad.astype(dtype, copy=False)
        return self

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, np.ndarray]:
        """{dotted name: copy of the parameter's array}."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, object]) -> None:
        """Copy arrays into the existing parameters (cast to each parameter's dtype).

        Names and shapes must match exactly; otherwise a ValueError lists every missing, unexpected
        and mis-shaped entry, and no parameter is changed.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict of name -> array, got {type(state_dict).__name__}")
        params = dict(self.named_parameters())
        arrays = {}
        for name, value in state_dict.items():
            arr = np.asarray(value.data if isinstance(value, Tensor) else value)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: entry {name!r} is not numeric (dtype {arr.dtype})")
            arrays[name] = arr
        missing = [n for n in params if n not in arrays]
        unexpected = [n for n in arrays if n not in params]
        misshaped = [f"{n}: expected {params[n].shape}, got {arrays[n].shape}"
                     for n in params if n in arrays and arrays[n].shape != params[n].shape]
        if missing or unexpected or misshaped:
            problems = []
            if missing:
                problems.append(f"missing keys {missing}")
            if unexpected:
                problems.append(f"unexpected keys {unexpected}")
            if misshaped:
                problems.append(f"wrong shapes ({'; '.join(misshaped)})")
            raise ValueError(f"load_state_dict: the state dict does not fit {type(self).__name__}: "
                             + ", ".join(problems))
        for name, p in params.items():
            p.data[...] = arrays[name].astype(p.dtype, copy=False)
