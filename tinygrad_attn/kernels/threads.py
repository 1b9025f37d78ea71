"""The thread policy: whether one kernel call runs on Numba's thread pool, decided by the work in it.

A parallel kernel call costs a fixed price on top of its work: the workers are woken (5-50 us when
they sleep), and the call ends at a barrier that waits for the slowest worker. On a machine where
another process holds a core, the worker sharing that core may wait for a scheduler slice (several
ms) before it even starts: the tiny-transformer step once ran 7x slower beside `while True: pass`,
with threads spinning between kernels. So a call goes to the thread pool only when

1. the user allows more than one thread (`numba.get_num_threads()`, e.g. `NUMBA_NUM_THREADS=1`);
2. its estimated single-thread time `work_ns` is at least `MIN_PARALLEL_NS` (100 us) when the
   workers wait passively (`OMP_WAIT_POLICY=passive`, as `runtime.tune_process()` sets, or a small
   `GOMP_SPINCOUNT`): long enough that waking them is a small part of it. Otherwise libgomp's
   workers spin for milliseconds after every parallel call, taking a core from whatever else runs
   (our own main thread included, when another job holds the other core), so only calls of at least
   `MIN_PARALLEL_NS_SPINNING` (2 ms) go parallel: few enough that the spinning costs little.
   Each kernel wrapper estimates `work_ns` from its sizes (e.g. `matmul`: multiply-adds x
   `fast.MATMUL_NS`), not from a fixed element count: a softmax element costs more than an Adam one;
3. threads have not just failed to pay. `run` times every parallel call; one that took longer than
   `STALL_FACTOR` (1.5) times its single-thread estimate (the workers were stalled: a busy core, or
   an oversubscribed machine; the margin keeps a machine that is merely slower than the estimates
   assume from counting as stalled) turns threads off for `BACKOFF_S` seconds, doubling up to `MAX_BACKOFF_S` while they
   keep failing, back to the start after a call that pays. A busy machine therefore costs at most
   one slow call per back-off period instead of one per kernel.

How workers wait between calls is a process-wide setting of the OpenMP runtime, so importing the
package leaves it alone; `runtime.tune_process()` (which the `tinygrad-attn` command calls) makes
them wait passively. This module only decides per call, and holds no thread pool of its own.

`run(serial, parallel, work_ns, *args)` is the one entry point the kernel wrappers use; attention.py's
backward, which must know the decision before it allocates, calls `use_threads` / `record` itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numba

MIN_PARALLEL_NS = 100_000      # single-thread work (ns) below which a call stays on the calling thread ...
MIN_PARALLEL_NS_SPINNING = 2_000_000   # ... when OpenMP's workers spin between calls (no passive wait policy)
PASSIVE_SPINCOUNT = 10_000     # a GOMP_SPINCOUNT up to this counts as passive (~0.1 ms of spinning)
STALL_FACTOR = 1.5             # a parallel call slower than this times its single-thread estimate did not pay
BACKOFF_S = 0.1                # threads off this long after a parallel call that did not pay ...
MAX_BACKOFF_S = 2.0            # ... doubling while they keep failing, up to this

_state = {"off_until": 0.0, "backoff": BACKOFF_S, "min_ns": None}
_timed: set[int] = set()       # parallel kernels called once already: their first call loads code and starts the pool


def waits_passively() -> bool:
    """Whether Numba's OpenMP workers sleep soon after a parallel call (from the environment libgomp reads)."""
    if os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive":
        return True
    try:
        return int(os.environ["GOMP_SPINCOUNT"]) <= PASSIVE_SPINCOUNT
    except (KeyError, ValueError):
        return False


def min_parallel_ns() -> float:
    """The work threshold in force (decided on first use, after `runtime.tune_process()` if it is called)."""
    if _state["min_ns"] is None:
        _state["min_ns"] = MIN_PARALLEL_NS if waits_passively() else MIN_PARALLEL_NS_SPINNING
    return _state["min_ns"]


def refresh() -> None:
    """Forget the threshold decided so far (called when the wait policy is set)."""
    _state["min_ns"] = None


def use_threads(work_ns: float) -> bool:
    """True if a kernel call of about `work_ns` single-thread nanoseconds should run on the thread pool."""
    return (work_ns >= min_parallel_ns() and numba.get_num_threads() > 1
            and time.perf_counter() >= _state["off_until"])


def record(work_ns: float, elapsed_s: float, kernel: Callable | None = None) -> None:
    """Report a parallel call's wall time; one slower than STALL_FACTOR x its single-thread estimate backs
    threads off. The first call of each `kernel` is not judged: it loads (or compiles) the code and may
    start the thread pool, which says nothing about whether threads pay."""
    if kernel is not None and id(kernel) not in _timed:
        _timed.add(id(kernel))
        return
    if elapsed_s * 1e9 > STALL_FACTOR * work_ns:
        _state["off_until"] = time.perf_counter() + _state["backoff"]
        _state["backoff"] = min(MAX_BACKOFF_S, 2 * _state["backoff"])
    else:
        _state["backoff"] = BACKOFF_S


def run(serial: Callable, parallel: Callable, work_ns: float, *args):
    """`parallel(*args)` if threads pay for `work_ns` of work (timed, and `record`ed), else `serial(*args)`."""
    if not use_threads(work_ns):
        return serial(*args)
    t0 = time.perf_counter()
    out = parallel(*args)
    record(work_ns, time.perf_counter() - t0, parallel)
    return out


def describe() -> str:
    """One line for benchmark headers: the policy and the state of the thread pool's waiting."""
    wait = os.environ.get("OMP_WAIT_POLICY") or (f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
                                                  if "GOMP_SPINCOUNT" in os.environ else "OpenMP default")
    layer = numba.config.THREADING_LAYER
    return (f"{numba.get_num_threads()} Numba threads (layer {layer}), a call goes parallel above "
            f"{min_parallel_ns() / 1e3:.0f} us of estimated work, backs off {BACKOFF_S}-{MAX_BACKOFF_S} s "
            f"when threads do not pay; OpenMP wait: {wait}")
