"""Backend switch: which kernel module the ops call, Numba ("numba") or plain numpy ("numpy").

Ops write `K.softmax(x)`; `K` looks the name up in the module of the current backend, so both
backends must define the same functions (see `kernels/reference.py` and `kernels/fast.py`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from .kernels import fast, reference

_MODULES: dict[str, ModuleType] = {"numba": fast, "numpy": reference}
_current = "numba"


def set_backend(name: str) -> None:
    """Select "numba" (the default: Numba kernels) or "numpy" (the reference code) for every op."""
    global _current
    if name not in _MODULES:
        raise ValueError(f"set_backend: unknown backend {name!r}; choose one of {sorted(_MODULES)}")
    _current = name


def get_backend() -> str:
    """The name of the backend in use."""
    return _current


@contextmanager
def backend(name: str) -> Iterator[None]:
    """`with ta.backend("numpy"): ...` runs the block on that backend, then restores the previous one."""
    previous = _current
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


class _Kernels:
    """`K.name` is the kernel `name` of the current backend."""

    def __getattr__(self, name: str):
        return getattr(_MODULES[_current], name)


K = _Kernels()
