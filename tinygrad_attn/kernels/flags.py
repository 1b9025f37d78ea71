"""Shared Numba settings for the kernels.

`FASTMATH` lets LLVM reassociate sums (so reductions vectorise), contract a*b+c into FMA and use
reciprocals, but keeps IEEE infinities and NaNs: softmax must see -inf (masked scores) and NaN
must propagate. (`fastmath=True` would add "nnan"/"ninf", which let LLVM assume neither exists.)
"""

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Below this many elements a kernel runs on one thread: waking the thread pool costs ~1-2 us,
# more than the whole job for small arrays.
PARALLEL_MIN_ELEMENTS = 1 << 15
