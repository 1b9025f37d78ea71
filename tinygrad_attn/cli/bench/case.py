"""One benchmark case: several implementations of the same computation, timed side by side."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class BenchCase:
    """`impls` maps an implementation name ("numba", "numpy", "torch", "unfused", ...) to a
    zero-argument callable that does the work once; inputs are built before timing.
    `flops` (if known) turns a time into GFLOP/s; `baseline` names the implementation whose
    time the others are compared against (ratio = other / baseline)."""

    group: str
    name: str
    impls: dict[str, Callable[[], object]]
    flops: float | None = None
    baseline: str = "numba"
    extra: dict[str, object] = field(default_factory=dict)
