"""The Adam update as one loop: each element of p, m and v is read and written once.

The numpy version (`reference.adam_update`) makes about ten passes and as many temporary arrays
per parameter; at teaching sizes that is mostly per-call overhead, paid for every parameter of
the model on every step. The math, in p's dtype, is the reference's:

    g = g + l2 * p;  p = p * shrink
    m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
    p = p - step_size * m / (sqrt(v) / bias2_root + eps)
"""

import numpy as np
from numba import njit

from .flags import ERROR_MODEL


# No fast-math: an approximate division or sqrt would drift from PyTorch's update by ulps.
@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def adam_update_flat(p, g, m, v, beta1, beta2, step_size, bias2_root, eps, l2, shrink) -> None:
    """Adam on 1-D arrays of one dtype, in place; the scalars are cast to that dtype (float32 math for float32)."""
    t = p.dtype.type
    b1, b2 = t(beta1), t(beta2)
    c1, c2 = t(1.0 - beta1), t(1.0 - beta2)          # rounded once from float64, as numpy and PyTorch do
    lr, root, e, wd, keep = t(step_size), t(bias2_root), t(eps), t(l2), t(shrink)
    for i in range(p.size):
        gi = g[i] + wd * p[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * keep - lr * mi / (np.sqrt(vi) / root + e)
