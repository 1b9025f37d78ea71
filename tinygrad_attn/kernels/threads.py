"""The thread policy: whether one kernel call runs on Numba's thread pool, decided by the work in it.

A parallel kernel call costs a fixed price on top of its work: the workers are woken if they sleep
(5-100 us; 1-4 ms for a virtual CPU the host has descheduled), and the call ends at a barrier that waits
for the slowest worker. On a machine where another process holds a core, the worker sharing that core
may wait a scheduler slice (several ms) before it even starts: the tiny-transformer step once ran 7x
slower beside `while True: pass`. So a call goes to the thread pool only when

1. the user allows more than one thread (`numba.get_num_threads()`, e.g. `NUMBA_NUM_THREADS=1`);
2. its expected single-thread time is at least the threshold for the way the workers wait between
   calls (`wait_mode()`): 10 us when they spin briefly and then sleep (a `GOMP_SPINCOUNT` up to
   `BOUNDED_SPINCOUNT`, as `runtime.tune_process()` sets: within a step the next call finds them
   awake, and it costs about 4.5 us more than half its work), 100 us when they sleep at once
   (`OMP_WAIT_POLICY=passive`: every call pays a wake-up), and 2 ms with libgomp's default long spin,
   which takes a core from whatever else runs for milliseconds after every call.
   The expected time is the wrapper's estimate `work_ns` (e.g. `matmul`:
   multiply-adds x `fast.MATMUL_NS`, from its sizes, not a fixed element count) times the kernel's
   measured pace: the ratio of its serial calls' wall time to their estimates (an average), so that a
   machine slower or faster than the estimates assume is judged by what it does;
3. the parallel twin is worth having: it is compiled or in Numba's on-disk cache already, or the
   kernel's serial calls have added up to `COMPILE_WORTH_NS` of expected work (compiling a `prange`
   kernel takes seconds). A short run such as the default `tinygrad-attn train` therefore compiles no
   parallel kernel on its first, cold start, and a long one switches to threads once they can pay back
   their compile (the next run finds them cached);
4. threads have been paying. `run` times every parallel call and keeps a running account of the time
   threads saved: the expected single-thread time minus the wall time, summed with older calls
   fading (x `GAIN_DECAY` a call). When the account falls below -`MAX_LOSS_S` (a busy core: calls
   stall for milliseconds; or a machine whose second core gives nothing), threads go off for
   `BACKOFF_S` seconds, doubling up to `MAX_BACKOFF_S` while they keep failing, back to the start once
   they pay. A single slow call (a wake-up, a preemption) is absorbed by the calls that paid; a busy
   core costs a few slow calls per back-off period instead of one per kernel;
5. the kernel's pace is measured: until a serial call has set it, and then once in `PROBE_EVERY` calls, a
   call that could go parallel runs serially instead (`probe`), so that rule 4 compares parallel calls
   with what one thread does on this machine now. Without it a kernel that always went parallel kept
   the pace 1 of its estimate: the attention kernels took 2x their estimates here, so threads that saved
   45% looked like no gain, the account drifted down, and any stall switched threads off.

How workers wait is a process-wide setting of the OpenMP runtime, so importing the package leaves it
alone; `runtime.tune_process()` (which the `tinygrad-attn` command calls) sets the brief spin. This
module only decides per call, and holds no thread pool of its own.

`run(serial, parallel, work_ns, *args)` is the one entry point the kernel wrappers use; attention.py's
backward, which must know the decision before it allocates, calls `use_threads` / `record` /
`record_serial` itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import numba
from numba.np.ufunc import parallel as numba_parallel

MIN_PARALLEL_NS = {"bounded": 10_000, "passive": 100_000, "spinning": 2_000_000}   # by wait_mode()
BOUNDED_SPINCOUNT = 100_000    # a GOMP_SPINCOUNT up to this spins briefly (~0.1-1 ms), then sleeps
GAIN_DECAY = 0.99              # each parallel call, the account of time saved fades by this factor ...
MAX_LOSS_S = 0.002             # ... and threads go off when it shows this much time lost
BACKOFF_S = 0.1                # threads off this long after they did not pay ...
MAX_BACKOFF_S = 2.0            # ... doubling while they keep failing, up to this
PACE_WEIGHT = 0.1              # weight of the newest serial call in a kernel's measured pace
MIN_PACED_NS = 5_000           # serial calls shorter than this (call overhead) do not set the pace
COMPILE_WORTH_NS = 2e9         # serial work a kernel does before its uncompiled parallel twin is compiled
PROBE_EVERY = 64               # one in this many calls that could go parallel runs serially, to measure the pace

_state = {"off_until": 0.0, "backoff": BACKOFF_S, "min_ns": None, "gain": 0.0}
_pace: dict[int, float] = {}   # id(parallel kernel) -> measured serial wall time / estimate
_timed: set[tuple[int, bool]] = set()   # (id(kernel), parallel?) called once already: a first call loads or
                                        # compiles the code (and may start the pool), so it is not judged
_ready: set[int] = set()       # parallel kernels that are compiled, cached or have earned their compile
_serial_ns: dict[int, float] = {}   # id(parallel kernel) -> expected work its serial twin has done so far
_eligible: dict[int, int] = {}      # id(parallel kernel) -> calls that could have gone parallel so far


def wait_mode() -> str:
    """How Numba's OpenMP workers wait after a call, from the environment libgomp reads: "passive" (sleep
    at once), "bounded" (spin briefly, then sleep) or "spinning" (libgomp's default: spin for ms)."""
    if os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive":
        return "passive"
    try:
        spins = int(os.environ["GOMP_SPINCOUNT"])
    except (KeyError, ValueError):
        return "spinning"
    return "passive" if spins == 0 else "bounded" if spins <= BOUNDED_SPINCOUNT else "spinning"


def min_parallel_ns() -> float:
    """The threshold in force (decided on first use, after `runtime.tune_process()` if it is called)."""
    if _state["min_ns"] is None:
        _state["min_ns"] = MIN_PARALLEL_NS[wait_mode()]
    return _state["min_ns"]


def refresh() -> None:
    """Forget the threshold decided so far (called when the wait policy is set)."""
    _state["min_ns"] = None


def expected_ns(work_ns: float, kernel: Callable | None) -> float:
    """The single-thread time to expect: the estimate times the kernel's measured pace (1 until measured)."""
    return work_ns * _pace.get(id(kernel), 1.0)


def compiled_or_cached(kernel: Callable | None) -> bool:
    """True if the Numba dispatcher `kernel` has code in this process or an index in its on-disk cache
    (then a first call loads in milliseconds); True for anything that is not a caching dispatcher."""
    try:
        return bool(kernel.signatures) or os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:
        return True


def parallel_ready(kernel: Callable | None) -> bool:
    """Whether `kernel`, the parallel twin, may be called: compiled, cached, or earned (rule 3 above)."""
    if id(kernel) in _ready:
        return True
    if _serial_ns.get(id(kernel), 0.0) >= COMPILE_WORTH_NS or compiled_or_cached(kernel):
        _ready.add(id(kernel))
        return True
    return False


@contextlib.contextmanager
def parallel_at_once() -> Iterator[None]:
    """Within the block, each parallel twin compiles on its first call instead of after `COMPILE_WORTH_NS`
    of serial work (rule 3): for a program that times the steady state of a long run (the bench), which a
    fresh Numba cache would otherwise show with every kernel on one thread."""
    global COMPILE_WORTH_NS
    saved, COMPILE_WORTH_NS = COMPILE_WORTH_NS, 0.0
    try:
        yield
    finally:
        COMPILE_WORTH_NS = saved


def num_threads() -> int:
    """`numba.get_num_threads()`, without the two locks it takes on every call once the pool has started
    (0.7 us a call; the policy asks before every large kernel call)."""
    return numba_parallel._get_num_threads() if numba_parallel._is_initialized else numba.get_num_threads()


def probe(kernel: Callable | None) -> bool:
    """True if this call, which could go parallel, should run serially to measure `kernel`'s pace (rule 5):
    until a serial call has set the pace, then one call in PROBE_EVERY."""
    if kernel is None:
        return False
    n = _eligible[id(kernel)] = _eligible.get(id(kernel), 0) + 1
    return id(kernel) not in _pace or n % PROBE_EVERY == 0


def use_threads(work_ns: float, kernel: Callable | None = None) -> bool:
    """True if a call of `kernel` (its parallel version) with estimated single-thread work `work_ns`
    nanoseconds should run on the thread pool."""
    return (expected_ns(work_ns, kernel) >= min_parallel_ns() and time.perf_counter() >= _state["off_until"]
            and parallel_ready(kernel) and num_threads() > 1 and not probe(kernel))


def _first_call(kernel: Callable | None, parallel: bool) -> bool:
    """True (once) for the first reported call of `kernel`'s parallel or serial version."""
    key = (id(kernel), parallel)
    if kernel is None or key in _timed:
        return False
    _timed.add(key)
    return True


def record_serial(work_ns: float, elapsed_s: float, kernel: Callable | None) -> None:
    """Report a serial call's wall time: it sets the pace of `kernel` (the parallel twin's identity) and
    counts towards the work that earns the parallel twin its compile. The first serial call sets no pace:
    its time is mostly compiling or loading (seconds), which would read as a kernel 8x slower than its
    estimate."""
    if id(kernel) not in _ready:                  # work towards the parallel twin's compile, until it has it
        _serial_ns[id(kernel)] = _serial_ns.get(id(kernel), 0.0) + expected_ns(work_ns, kernel)
    if _first_call(kernel, parallel=False):
        return
    if work_ns >= MIN_PACED_NS:
        ratio = min(8.0, max(0.125, elapsed_s * 1e9 / work_ns))
        _pace[id(kernel)] = (1 - PACE_WEIGHT) * _pace.get(id(kernel), ratio) + PACE_WEIGHT * ratio


def record(work_ns: float, elapsed_s: float, kernel: Callable | None = None) -> None:
    """Report a parallel call's wall time to the account of time threads saved; back threads off when the
    account shows more than MAX_LOSS_S lost. The first call of each `kernel` is not counted: it loads (or
    compiles) the code and may start the thread pool, which says nothing about whether threads pay."""
    if _first_call(kernel, parallel=True):
        return
    gain = _state["gain"] * GAIN_DECAY + expected_ns(work_ns, kernel) * 1e-9 - elapsed_s
    if gain < -MAX_LOSS_S:
        _state["off_until"] = time.perf_counter() + _state["backoff"]
        _state["backoff"] = min(MAX_BACKOFF_S, 2 * _state["backoff"])
        gain = 0.0
    elif gain > 0:
        _state["backoff"] = BACKOFF_S
    _state["gain"] = gain


def run(serial: Callable, parallel: Callable, work_ns: float, *args):
    """`parallel(*args)` if threads pay for `work_ns` of work, else `serial(*args)`; either is timed
    (`record` / `record_serial`)."""
    t0 = time.perf_counter()
    if not use_threads(work_ns, parallel):
        out = serial(*args)
        record_serial(work_ns, time.perf_counter() - t0, parallel)
        return out
    out = parallel(*args)
    record(work_ns, time.perf_counter() - t0, parallel)
    return out


def describe() -> str:
    """One line for benchmark headers: the policy and the state of the thread pool's waiting."""
    wait = os.environ.get("OMP_WAIT_POLICY") or (f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
                                                  if "GOMP_SPINCOUNT" in os.environ else "OpenMP default")
    layer = numba.config.THREADING_LAYER
    return (f"{numba.get_num_threads()} Numba threads (layer {layer}), a call goes parallel above "
            f"{min_parallel_ns() / 1e3:.0f} us of expected work, backs off {BACKOFF_S}-{MAX_BACKOFF_S} s "
            f"when threads lose {MAX_LOSS_S * 1e3:.0f} ms; parallel twins compile "
            + (f"after {COMPILE_WORTH_NS / 1e9:g} s of serial work" if COMPILE_WORTH_NS else "on first use")
            + f"; OpenMP wait: {wait} ({wait_mode()})")
