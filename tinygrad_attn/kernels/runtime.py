"""Process-wide settings the kernels' speed depends on: one opt-in call, never applied at import.

    import tinygrad_attn as ta
    ta.kernels.tune_process()        # before the first kernel runs; the `tinygrad-attn` command does this

Importing tinygrad_attn changes nothing in its host process (../shared/SPEC.md, "Kernels and backends").
`tune_process()` is for a process that is only ours (the command, a script): it changes settings that
other libraries in the process share, so a library user decides.

* OpenMP waiting (`GOMP_SPINCOUNT=30000`: spin briefly, then sleep). After a parallel call libgomp's
  workers spin (300,000 spins by default, milliseconds) before they sleep. Spinning that long takes a
  core from whatever else runs; sleeping at once (`OMP_WAIT_POLICY=passive`) makes every call wake them
  (60-110 us each on this project's 2-core virtual machines, measured with a `/tmp` script). A short
  spin keeps them awake between the kernels of one step, where the calls come tens of microseconds
  apart, and lets them sleep between steps; the thread policy (`threads.py`) backs threads off when a
  busy core stalls them. libgomp reads the variable once, when Numba first loads it (the first
  parallel kernel): set it later and it does nothing.
* malloc thresholds (glibc only). glibc hands each array over its mmap threshold fresh pages and
  returns freed heap to the system above its trim threshold, so a step that allocates and frees the
  same large arrays page-faults on them every time. Raising M_MMAP_THRESHOLD to 32 MB and
  M_TRIM_THRESHOLD to 256 MB keeps those pages for reuse (memory stays mapped up to 256 MB beyond what
  is in use; it does not grow with steps). The kernels themselves allocate little per call (matmul
  reuses its packing buffer; the row kernels write only their outputs), so this is a small gain.

Settings the user made (an environment variable already set) are kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from . import threads

MMAP_THRESHOLD = 32 << 20          # glibc's own ceiling for its dynamic threshold
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # mallopt parameter numbers from <malloc.h>
SPINCOUNT = "30000"


def openmp_loaded() -> bool:
    """True once Numba has started its OpenMP thread pool (after that, wait settings no longer apply)."""
    from numba.np.ufunc import parallel
    return bool(getattr(parallel, "_is_initialized", False))


def configure_openmp() -> bool:
    """Set GOMP_SPINCOUNT (a brief spin) unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT; False if
    too late."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    if openmp_loaded():
        return False
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    return True


def configure_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds; returns whether they were set (False off glibc)."""
    if os.environ.get("TINYGRAD_ATTN_KEEP_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):     # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def tune_process() -> dict[str, bool]:
    """Opt in to the process-wide settings above (call it before the first kernel runs).

    Returns what was applied: {"openmp_spin": ..., "malloc_thresholds": ...}; False where the user's
    own setting was kept, the call came too late, or the platform has no such setting.
    """
    applied = {"openmp_spin": configure_openmp(), "malloc_thresholds": configure_malloc()}
    threads.refresh()                     # the thread policy's threshold depends on the wait policy
    return applied


def cache_dir() -> str:
    """The folder where Numba keeps the compiled kernels (`cache=True`): NUMBA_CACHE_DIR's, or __pycache__."""
    from .matmul import matmul_serial
    return str(matmul_serial._cache._cache_path)


def cache_is_cold() -> bool:
    """True if no kernel has been compiled into `cache_dir()` yet (the first run will compile them)."""
    try:
        return not any(name.endswith(".nbi") for name in os.listdir(cache_dir()))
    except OSError:
        return True
