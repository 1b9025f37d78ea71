"""Process settings the kernels' speed depends on, applied once when `tinygrad_attn.kernels` is imported.

Both are about the many short kernels of a small training step (about 50 parallel kernel calls and
a few hundred fresh arrays of 0.25-1 MB per step):

* OpenMP spin. Between parallel kernels Numba's OpenMP workers spin, then sleep. Waking a sleeping
  worker costs 25-55 us here, more than many of our kernels take, so they should still be spinning
  when the next kernel of a step starts (usually well under 0.3 ms later): GOMP_SPINCOUNT=30000
  spins for about 0.3-1 ms, then sleeps (the tiny-transformer step: 16.5 ms, against 25.5 ms with
  OMP_WAIT_POLICY=passive). The price is paid on a busy machine: a spinning worker competes with
  the other job for the core, and each parallel call can wait a scheduler slice (58-65 ms with one
  of two cores busy, where passive waiting stays at ~23 ms; PyTorch's OpenMP threads do the same).
  On a shared machine set OMP_WAIT_POLICY=passive; setting it or GOMP_SPINCOUNT yourself before
  the import overrides this.

* malloc thresholds (glibc only). By default glibc serves each array over 128 KB with a fresh
  mmap, or returns freed heap memory to the system, so the next array of that size is new memory
  again and every 4 KB page of it costs a page fault on first touch: the tiny-transformer step took
  1,200 faults and twice its time. Raising M_MMAP_THRESHOLD to 32 MB and M_TRIM_THRESHOLD to 256 MB
  keeps those pages in the process for reuse (what PyTorch's guide gets by swapping in jemalloc or
  tcmalloc). The memory stays mapped, up to 256 MB beyond what is in use; it does not grow with
  steps. Set TINYGRAD_ATTN_KEEP_MALLOC=1 before the import to leave malloc alone.
"""

import ctypes
import ctypes.util
import os
import sys

SPIN_COUNT = "30000"
MMAP_THRESHOLD = 32 << 20          # glibc's own ceiling for its dynamic threshold
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # mallopt parameter numbers from <malloc.h>


def configure_openmp() -> None:
    """Bound the OpenMP workers' spin (before the first parallel kernel loads libgomp)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


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
