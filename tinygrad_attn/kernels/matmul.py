"""Blocked matrix multiply C = A @ B in plain loops (no BLAS), batched.

The scheme, from the outside in:

1. Pack. Every operand is copied once into a scratch buffer where each row runs along the
   shared dimension k and is contiguous: A as its rows (m, k), B as its columns, i.e. B^T
   (n, k). Packing reads any layout (row-major or transposed views alike), pads rows with a
   few spare elements so that consecutive rows do not map to the same L1 cache sets (a
   power-of-two row length otherwise evicts itself), and zero-pads the row count to a whole
   number of tiles.
2. Split. One task is a (batch, block of MC rows of A); tasks run in parallel (`prange`) and
   each packs its own rows of A into a scratch buffer allocated inside the task.
3. Walk. For each NR-column panel of B^T (kept hot in L1) the task sweeps down its packed
   rows of A, MR rows at a time.
4. Micro-kernel. An MR x NR = 6 x 4 tile of C is 24 dot products of length k computed
   together: each step loads 6 values of A and 4 of B^T and does 24 multiply-adds, so every
   load feeds 4-6 FMAs. The 24 accumulators are scalar locals; LLVM vectorises the k loop
   (16 float32 lanes with AVX-512), turning each into a vector register, which 24 + 10
   loaded vectors just fit in the 32 registers AVX-512 provides. Each accumulator is
   reduced across lanes once per tile.

For a short shared dimension (k <= SMALL_K, e.g. the attention scores Q K^T with d = 32) that
per-tile lane reduction would cost more than the dot products themselves, so `rows_axpy`
uses the other loop order: each row of C is built as a sum of rows of B scaled by entries of
A, four rows of B per pass (`c_i += a_i0 b_0 + a_i1 b_1 + a_i2 b_2 + a_i3 b_3`), vectorised
along the row of C, which stays in L1.
"""

import numpy as np
from numba import njit, prange

from .flags import FASTMATH

MR = 6     # rows of A per micro-tile
NR = 4     # columns of B per micro-tile
PAD = 16   # spare elements at the end of each packed row (breaks cache-set aliasing)
PACK_B_ROWS = 64   # columns of B packed per parallel packing task
SMALL_K = 32       # up to this k, the row-axpy kernel beats the dot-product tiles


@njit(cache=True)
def packed_row_length(k: int) -> int:
    """Row length of a packed buffer: k rounded up to 16 elements, plus PAD."""
    return (k + 15) // 16 * 16 + PAD


@njit(cache=True)
def pack_rows(src: np.ndarray, transposed: bool, r0: int, nrows: int, k: int, dst: np.ndarray) -> None:
    """dst[i, :k] = row r0 + i of the matrix M, i < nrows, where M is src (r x k) or, when
    `transposed`, src.T (src is then (k x r) and is read row by row)."""
    if transposed:
        for p in range(k):
            for i in range(nrows):
                dst[i, p] = src[p, r0 + i]
    else:
        for i in range(nrows):
            for p in range(k):
                dst[i, p] = src[r0 + i, p]


@njit(cache=True, fastmath=FASTMATH)
def micro_tile(ap: np.ndarray, i0: int, bp: np.ndarray, j0: int, k: int, tile: np.ndarray) -> None:
    """tile[r, j] = sum_p ap[i0 + r, p] * bp[j0 + j, p] for r < 6, j < 4 (packed A rows, packed B^T rows)."""
    a0 = ap[i0]
    a1 = ap[i0 + 1]
    a2 = ap[i0 + 2]
    a3 = ap[i0 + 3]
    a4 = ap[i0 + 4]
    a5 = ap[i0 + 5]
    b0 = bp[j0]
    b1 = bp[j0 + 1]
    b2 = bp[j0 + 2]
    b3 = bp[j0 + 3]
    z = ap.dtype.type(0)
    c00 = c01 = c02 = c03 = z
    c10 = c11 = c12 = c13 = z
    c20 = c21 = c22 = c23 = z
    c30 = c31 = c32 = c33 = z
    c40 = c41 = c42 = c43 = z
    c50 = c51 = c52 = c53 = z
    for p in range(k):
        x0 = a0[p]
        x1 = a1[p]
        x2 = a2[p]
        x3 = a3[p]
        x4 = a4[p]
        x5 = a5[p]
        y0 = b0[p]
        y1 = b1[p]
        y2 = b2[p]
        y3 = b3[p]
        c00 += x0 * y0
        c01 += x0 * y1
        c02 += x0 * y2
        c03 += x0 * y3
        c10 += x1 * y0
        c11 += x1 * y1
        c12 += x1 * y2
        c13 += x1 * y3
        c20 += x2 * y0
        c21 += x2 * y1
        c22 += x2 * y2
        c23 += x2 * y3
        c30 += x3 * y0
        c31 += x3 * y1
        c32 += x3 * y2
        c33 += x3 * y3
        c40 += x4 * y0
        c41 += x4 * y1
        c42 += x4 * y2
        c43 += x4 * y3
        c50 += x5 * y0
        c51 += x5 * y1
        c52 += x5 * y2
        c53 += x5 * y3
    tile[0, 0], tile[0, 1], tile[0, 2], tile[0, 3] = c00, c01, c02, c03
    tile[1, 0], tile[1, 1], tile[1, 2], tile[1, 3] = c10, c11, c12, c13
    tile[2, 0], tile[2, 1], tile[2, 2], tile[2, 3] = c20, c21, c22, c23
    tile[3, 0], tile[3, 1], tile[3, 2], tile[3, 3] = c30, c31, c32, c33
    tile[4, 0], tile[4, 1], tile[4, 2], tile[4, 3] = c40, c41, c42, c43
    tile[5, 0], tile[5, 1], tile[5, 2], tile[5, 3] = c50, c51, c52, c53


@njit(cache=True)
def pack_b_task(bt: np.ndarray, bt_trans: bool, t: int, nchunks: int, k: int, bp: np.ndarray) -> None:
    """Task t of packing B^T: rows [c0, c0 + PACK_B_ROWS) of distinct B batch t // nchunks into bp."""
    q = t // nchunks
    c0 = (t % nchunks) * PACK_B_ROWS
    n = bt.shape[1] if not bt_trans else bt.shape[2]
    pack_rows(bt[q], bt_trans, c0, min(PACK_B_ROWS, n - c0), k, bp[q, c0:])


@njit(cache=True, fastmath=FASTMATH)
def row_block(a, a_trans, a_idx, bp, b_idx, out, t, nblk, mc, k) -> None:
    """Task t: rows [i_start, i_start + mc) of output batch t // nblk, against all columns."""
    batch = t // nblk
    i_start = (t % nblk) * mc
    m, n = out.shape[1], out.shape[2]
    rows = min(mc, m - i_start)
    # scratch for this task's rows of A, zero rows up to a whole number of MR-row tiles
    ap = np.zeros(((rows + MR - 1) // MR * MR, bp.shape[2]), out.dtype)
    pack_rows(a[a_idx[batch]], a_trans, i_start, rows, k, ap)
    bq = bp[b_idx[batch]]
    c = out[batch]
    tile = np.empty((MR, NR), out.dtype)
    for j0 in range(0, n, NR):                 # one NR-column panel of B^T stays in L1 ...
        for i0 in range(0, rows, MR):          # ... while every MR-row tile of packed A meets it
            micro_tile(ap, i0, bq, j0, k, tile)
            for r in range(min(MR, rows - i0)):
                for j in range(min(NR, n - j0)):
                    c[i_start + i0 + r, j0 + j] = tile[r, j]


@njit(cache=True, parallel=True)
def matmul_parallel(a, a_trans, a_idx, bt, bt_trans, b_idx, out, mc) -> None:
    """out[t] = A[a_idx[t]] @ B[b_idx[t]]; A stored as a (rows, k) or, if a_trans, (k, rows);
    B given as B^T: bt (n, k) or, if bt_trans, (k, n). All arrays C-contiguous and 3-D."""
    k = a.shape[1] if a_trans else a.shape[2]
    nb, m, n = out.shape
    nchunks = (n + PACK_B_ROWS - 1) // PACK_B_ROWS
    bp = np.zeros((bt.shape[0], nchunks * PACK_B_ROWS, packed_row_length(k)), out.dtype)
    for t in prange(bt.shape[0] * nchunks):
        pack_b_task(bt, bt_trans, t, nchunks, k, bp)
    nblk = (m + mc - 1) // mc
    for t in prange(nb * nblk):
        row_block(a, a_trans, a_idx, bp, b_idx, out, t, nblk, mc, k)


@njit(cache=True)
def matmul_serial(a, a_trans, a_idx, bt, bt_trans, b_idx, out, mc) -> None:
    """`matmul_parallel` on one thread, for small products."""
    k = a.shape[1] if a_trans else a.shape[2]
    nb, m, n = out.shape
    nchunks = (n + PACK_B_ROWS - 1) // PACK_B_ROWS
    bp = np.zeros((bt.shape[0], nchunks * PACK_B_ROWS, packed_row_length(k)), out.dtype)
    for t in range(bt.shape[0] * nchunks):
        pack_b_task(bt, bt_trans, t, nchunks, k, bp)
    nblk = (m + mc - 1) // mc
    for t in range(nb * nblk):
        row_block(a, a_trans, a_idx, bp, b_idx, out, t, nblk, mc, k)


@njit(cache=True, fastmath=FASTMATH)
def rows_axpy(a: np.ndarray, a_trans: bool, b: np.ndarray, c: np.ndarray, i_start: int, rows: int) -> None:
    """c[i] = sum_p A[i, p] * b[p] for rows i in [i_start, i_start + rows); A is a, or a.T if
    a_trans; b is row-major (k, n). Four rows of b per pass over c[i]."""
    k = b.shape[0]
    n = b.shape[1]
    for i in range(i_start, i_start + rows):
        ci = c[i]
        ci[:] = 0
        p = 0
        while p + 4 <= k:
            if a_trans:
                a0, a1, a2, a3 = a[p, i], a[p + 1, i], a[p + 2, i], a[p + 3, i]
            else:
                a0, a1, a2, a3 = a[i, p], a[i, p + 1], a[i, p + 2], a[i, p + 3]
            b0, b1, b2, b3 = b[p], b[p + 1], b[p + 2], b[p + 3]
            for j in range(n):
                ci[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
            p += 4
        while p < k:
            a0 = a[p, i] if a_trans else a[i, p]
            b0 = b[p]
            for j in range(n):
                ci[j] += a0 * b0[j]
            p += 1


@njit(cache=True)
def small_k_task(a, a_trans, a_idx, b, b_trans, b_idx, out, t, nblk, mc) -> None:
    """Task t of the short-k product: rows [i0, i0 + mc) of output batch t // nblk. B must be
    row-major (k, n) for `rows_axpy`; if it is stored as B^T (b_trans), this task transposes its
    batch's B into a scratch buffer first (k * n values, small since k is)."""
    batch = t // nblk
    i0 = (t % nblk) * mc
    bq = b[b_idx[batch]]
    if b_trans:
        n, k = bq.shape
        scratch = np.empty((k, n), bq.dtype)
        for j in range(n):
            for p in range(k):
                scratch[p, j] = bq[j, p]
        bq = scratch
    rows_axpy(a[a_idx[batch]], a_trans, bq, out[batch], i0, min(mc, out.shape[1] - i0))


@njit(cache=True, parallel=True)
def matmul_small_k_parallel(a, a_trans, a_idx, b, b_trans, b_idx, out, mc) -> None:
    """out[t] = A[a_idx[t]] @ B[b_idx[t]] for short k; b is (nb, k, n), or (nb, n, k) if b_trans."""
    nblk = (out.shape[1] + mc - 1) // mc
    for t in prange(out.shape[0] * nblk):
        small_k_task(a, a_trans, a_idx, b, b_trans, b_idx, out, t, nblk, mc)


@njit(cache=True)
def matmul_small_k_serial(a, a_trans, a_idx, b, b_trans, b_idx, out, mc) -> None:
    """`matmul_small_k_parallel` on one thread."""
    nblk = (out.shape[1] + mc - 1) // mc
    for t in range(out.shape[0] * nblk):
        small_k_task(a, a_trans, a_idx, b, b_trans, b_idx, out, t, nblk, mc)
