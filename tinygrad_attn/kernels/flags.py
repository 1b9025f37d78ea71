"""Shared Numba settings for the kernels.

`FASTMATH` lets LLVM reassociate sums (so reductions vectorise), contract a*b+c into FMA and use
reciprocals, but keeps IEEE infinities and NaNs: softmax must see -inf (masked scores) and NaN
must propagate. (`fastmath=True` would add "nnan"/"ninf", which let LLVM assume neither exists.)
"""

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# The same without "reassoc", for code whose order of additions is the point: with it, LLVM rewrites
# (x - m) - log_s as x - (m + log_s), hoisted out of the loop, and m + log_s rounds log_s away.
FASTMATH_ORDERED = FASTMATH - {"reassoc"}

# Numba's default "python" error model tests every division for a zero divisor so that it can raise
# ZeroDivisionError; that branch stops LLVM from vectorising the loop (GELU ran 2.5x slower, Adam 7x).
# The kernels use numpy's model instead: x / 0 gives inf or nan, as it does in numpy.
ERROR_MODEL = "numpy"
