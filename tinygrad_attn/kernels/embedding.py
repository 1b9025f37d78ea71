"""Embedding backward: scatter-add the rows of the output gradient into the table's rows.

The forward y[i, :] = W[ids[i], :] copies rows, so dW[r, :] = sum of dy[i, :] over the i with
ids[i] == r. One pass over the rows of dy; serial, because two rows with the same id would race
and the work (N * D additions) is tiny next to the matmuls around it. `np.add.at` does the same
through a general indexing path, about 10x slower at (1024, 64).
"""

from numba import njit

from .flags import ERROR_MODEL, FASTMATH


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
def scatter_add_rows(ids, dy, dw) -> None:
    """dw[ids[i], :] += dy[i, :] for every i. ids (N,) int in [0, len(dw)), dy (N, D), dw (num, D) C-contiguous."""
    for i in range(ids.size):
        src = dy[i]
        dst = dw[ids[i]]
        for j in range(src.size):
            dst[j] += src[j]
