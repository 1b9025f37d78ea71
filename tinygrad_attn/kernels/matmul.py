"""Blocked matrix multiply C = A @ B in plain loops (no BLAS), batched: outer-product micro-kernel.

The scheme, from the outside in (BLIS / GotoBLAS style):

1. Pack B. Each distinct B (k x n) is copied once into panels of NR columns: panel jp is a
   contiguous (k, NR) block holding B[:, jp*NR : jp*NR + NR], the last panel zero-padded.
   NR is NVEC = 2 vector registers' worth (32 float32 / 16 float64 columns), or one register
   when n fits in one (the caller, fast.py, sizes the packing buffer and so picks NR).
   Packing reads row-major B or a transposed view (stored as B^T) alike.
2. Split. One task is a (batch, block of rows of A); tasks run in parallel (`prange`). A is
   not packed: the micro-kernel reads it in place through a base offset and two strides, so
   row-major A and a transposed view cost the same. Only a last group of fewer than MR = 8
   rows is copied, zero-padded, into a small scratch panel.
3. Walk. For each panel of B (k * NR values, in L1/L2) the task sweeps down its rows, MR at a
   time.
4. Micro-kernel (`outer_tile`). The MR x NR block of C is a sum of k outer products,
   C[r, :] += A[r, p] * B[p, :]. At step p it loads the NR values of B (NVEC vectors),
   broadcasts each of the MR values of A and does MR x NVEC vector FMAs into accumulators that
   stay in registers for the whole k loop (16 of the 32 AVX-512 registers). Every lane of
   every accumulator is a finished element of C: nothing is reduced across lanes, so a short k
   costs no per-tile overhead and one kernel serves every k.

The micro-kernel is written as LLVM IR (a Numba `intrinsic`) because the accumulator tile has to
be vector registers: a Numba array tile (heap or stack) is kept in memory by LLVM, which turns
every FMA into a load, an FMA and a store (2.4 GFLOP/s here against ~115 for the intrinsic).
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .flags import ERROR_MODEL

MR = 8              # rows of A (and C) per micro-tile
NVEC = 2            # vector registers per row of a micro-tile: NR = 32 float32 / 16 float64 columns
VECTOR_BYTES = 64   # one AVX-512 register; LLVM splits wider vectors into native ones on other CPUs


def _make_outer_tile(nvec: int, accumulate: bool = False):
    """Build `outer_tile` for tiles of MR rows x `nvec` vectors (NR = nvec * lanes columns):
    compiled, the LLVM IR below; with NUMBA_DISABLE_JIT, the same sum in numpy. With
    `accumulate` the tile adds to C (c[...] += ...) instead of overwriting it."""

    def outer_tile(a, a_off, a_rs, a_ps, bp, k, c, i0, j0):
        """c[i0 + r, j0 + j] (+)= sum_{p < k} A[r, p] * bp[p, j] for r < MR, j < NR.

        A[r, p] is the element a.flat[a_off + r * a_rs + p * a_ps] (any C-contiguous array: a
        row-major matrix has a_rs = row length, a_ps = 1; a transposed one a_rs = 1, a_ps = row
        length), bp a packed B panel (k, NR), c a C-contiguous 2-D array with room for the
        MR x NR block at (i0, j0). All three share one float dtype.
        """
        tile_a = a.ravel()[a_off + a_rs * np.arange(MR)[:, None] + a_ps * np.arange(k)]
        tile = (tile_a[:, :, None] * bp[None, :k]).sum(axis=1)
        c[i0:i0 + MR, j0:j0 + bp.shape[1]] = c[i0:i0 + MR, j0:j0 + bp.shape[1]] + tile if accumulate else tile

    @intrinsic
    def _outer_tile(typingctx, a, a_off, a_rs, a_ps, bp, k, c, i0, j0):
        """Typing: C-contiguous float arrays and integer offsets/strides; code from `_outer_tile_codegen`."""
        if not all(isinstance(x, types.Array) and x.layout == "C" for x in (a, bp, c)):
            return None
        ints = (types.intp,) * 3
        signature = types.none(a, *ints, bp, types.intp, c, types.intp, types.intp)
        return signature, _outer_tile_codegen(c.dtype, nvec, accumulate)

    @overload(outer_tile, inline="always")
    def _outer_tile_impl(a, a_off, a_rs, a_ps, bp, k, c, i0, j0):
        return lambda a, a_off, a_rs, a_ps, bp, k, c, i0, j0: _outer_tile(a, a_off, a_rs, a_ps, bp, k, c, i0, j0)

    return outer_tile


def _outer_tile_codegen(dtype, nvec: int, accumulate: bool = False):
    """LLVM IR for `outer_tile`: MR * nvec vector accumulators (zeros, or C's tile when `accumulate`),
    a k loop of broadcast-FMAs, one store."""
    itemsize = dtype.bitwidth // 8
    lanes = VECTOR_BYTES // itemsize      # elements per vector register
    nr = nvec * lanes                     # columns of the tile (NR)

    def codegen(context, builder, signature, args):
        a_v, a_off, a_rs, a_ps, bp_v, k_v, c_v, i0_v, j0_v = args
        a_data = context.make_array(signature.args[0])(context, builder, a_v).data
        b_data = context.make_array(signature.args[4])(context, builder, bp_v).data
        c_arr = context.make_array(signature.args[6])(context, builder, c_v)
        i64 = ir.IntType(64)
        vty = ir.VectorType(context.get_value_type(dtype), lanes)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             f"llvm.fma.v{lanes}f{dtype.bitwidth}")
        undef = ir.Constant(vty, ir.Undefined)
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)

        def vector_at(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vty.as_pointer())

        # MR * nvec accumulators; allocas of whole vectors, which LLVM promotes to registers.
        # The tile's row r is c.flat[(i0 + r) * ldc + j0 ...].
        ldc = builder.extract_value(c_arr.shape, 1)
        c_rows = [builder.gep(c_arr.data, [builder.add(builder.mul(builder.add(i0_v, i64(r)), ldc), j0_v)])
                  for r in range(MR)]
        acc = [cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in range(MR * nvec)]
        if accumulate:
            for r in range(MR):
                for v in range(nvec):
                    builder.store(builder.load(vector_at(c_rows[r], i64(v * lanes)), align=itemsize),
                                  acc[r * nvec + v])
        with cgutils.for_range(builder, k_v) as loop:     # step p: one outer product A[:, p] B[p, :]
            p = loop.index
            b_row = builder.gep(b_data, [builder.mul(p, i64(nr))])
            b = [builder.load(vector_at(b_row, i64(v * lanes)), align=itemsize) for v in range(nvec)]
            a_col = builder.gep(a_data, [builder.add(a_off, builder.mul(p, a_ps))])
            for r in range(MR):
                x = builder.load(builder.gep(a_col, [builder.mul(a_rs, i64(r))]))
                a_splat = builder.shuffle_vector(builder.insert_element(undef, x, i64(0)), undef, splat_mask)
                for v in range(nvec):
                    y = acc[r * nvec + v]
                    builder.store(builder.call(fma, [a_splat, b[v], builder.load(y)]), y)
        # the finished tile goes to C once
        for r in range(MR):
            for v in range(nvec):
                builder.store(builder.load(acc[r * nvec + v]), vector_at(c_rows[r], i64(v * lanes)), align=itemsize)
        return context.get_dummy_value()

    return codegen


outer_tile = _make_outer_tile(NVEC)       # the main kernel: MR rows x 2 vectors
outer_tile_narrow = _make_outer_tile(1)   # for n <= one vector (e.g. n = 16 in float32)
outer_tile_add = _make_outer_tile(NVEC, accumulate=True)   # C += A B (the attention kernels' accumulations)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def micro_tile(a, a_off, a_rs, a_ps, bp, k, c, i0, j0) -> None:
    """`outer_tile` or `outer_tile_narrow`, whichever matches the width of the B panel bp."""
    if bp.shape[1] * c.itemsize == VECTOR_BYTES:
        outer_tile_narrow(a, a_off, a_rs, a_ps, bp, k, c, i0, j0)
    else:
        outer_tile(a, a_off, a_rs, a_ps, bp, k, c, i0, j0)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def pack_b_panel(b: np.ndarray, b_trans: bool, j0: int, dst: np.ndarray) -> None:
    """dst[p, j] = B[p, j0 + j] for dst (k, NR), zero past column n; B is b (k, n) or, if
    b_trans, b.T (b is then (n, k) and is read along its rows)."""
    k, nr = dst.shape
    n = b.shape[0] if b_trans else b.shape[1]
    cols = min(nr, n - j0)
    if b_trans:
        for j in range(cols):
            src = b[j0 + j]
            for p in range(k):
                dst[p, j] = src[p]
    else:
        for p in range(k):
            src = b[p, j0:j0 + cols]      # a slice indexed from 0 vectorises; b[p, j0 + j] does not
            row = dst[p]
            for j in range(cols):
                row[j] = src[j]
    for p in range(k):
        for j in range(cols, nr):
            dst[p, j] = 0


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def pack_b_task(b, b_trans, t, npan, bp) -> None:
    """Task t of packing B: panel t % npan of distinct B matrix t // npan into bp."""
    q, jp = t // npan, t % npan
    pack_b_panel(b[q], b_trans, jp * bp.shape[3], bp[q, jp])


@njit(inline="always", cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def row_block(a, a_trans, a_idx, bp, b_idx, out, t, nblk, mc) -> None:
    """Task t: rows [i_start, i_start + mc) of output batch t // nblk, against all columns.

    A is read in place (a tile's MR rows are MR strided streams of broadcast loads, which the
    cache serves as well as a packed copy would); only a final group of fewer than MR rows is
    copied, zero-padded, into `a_edge`. Tiles that overhang C land in `c_edge` and are copied.
    """
    batch = t // nblk
    i_start = (t % nblk) * mc
    m, n = out.shape[1], out.shape[2]
    k, nr = bp.shape[2], bp.shape[3]
    rows = min(mc, m - i_start)
    i_end = i_start + rows
    aq = a_idx[batch]
    a_base = aq * m * k                    # offset of this batch's A in a (m * k elements each)
    a_rs, a_ps = (1, m) if a_trans else (k, 1)
    full_end = i_start + rows // MR * MR   # rows before this are covered by whole MR-row tiles
    a_edge = np.zeros((k if full_end < i_end else 0, MR), out.dtype)
    for i in range(full_end, i_end):
        for p in range(k):
            a_edge[p, i - full_end] = a[aq, p, i] if a_trans else a[aq, i, p]
    a_flat, edge_flat = a.reshape(-1), a_edge.reshape(-1)   # flat views: one compiled micro_tile for both
    bq = bp[b_idx[batch]]
    c = out[batch]
    c_edge = np.empty((MR, nr), out.dtype)
    for jp in range(bq.shape[0]):              # one panel of B stays hot ...
        j0 = jp * nr
        cols = min(nr, n - j0)
        for i0 in range(i_start, i_end, MR):   # ... while every row tile of the task meets it
            direct = i0 < full_end and cols == nr
            dst, di, dj = (c, i0, j0) if direct else (c_edge, 0, 0)
            if i0 < full_end:
                micro_tile(a_flat, a_base + i0 * a_rs, a_rs, a_ps, bq[jp], k, dst, di, dj)
            else:
                micro_tile(edge_flat, 0, 1, MR, bq[jp], k, dst, di, dj)
            if not direct:
                for r in range(min(MR, i_end - i0)):
                    for j in range(cols):
                        c[i0 + r, j0 + j] = c_edge[r, j]


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL, parallel=True)
def matmul_parallel(a, a_trans, a_idx, b, b_trans, b_idx, bp, out, mc) -> None:
    """out[t] = A[a_idx[t]] @ B[b_idx[t]]; A stored as a (m, k) or, if a_trans, (k, m); B stored
    as b (k, n) or, if b_trans, (n, k). All arrays C-contiguous and 3-D; k >= 1; mc a multiple
    of MR (rows per task). bp (nb_b, npan, k, NR) receives the packed B: the caller passes it (fast.py
    reuses one buffer), so a step's matmuls allocate nothing."""
    nb, m = out.shape[:2]
    npan = bp.shape[1]
    for t in prange(b.shape[0] * npan):
        pack_b_task(b, b_trans, t, npan, bp)
    nblk = (m + mc - 1) // mc
    for t in prange(nb * nblk):
        row_block(a, a_trans, a_idx, bp, b_idx, out, t, nblk, mc)


@njit(cache=True, no_cfunc_wrapper=True, error_model=ERROR_MODEL)
def matmul_serial(a, a_trans, a_idx, b, b_trans, b_idx, bp, out, mc) -> None:
    """`matmul_parallel` on one thread, for small products."""
    nb, m = out.shape[:2]
    npan = bp.shape[1]
    for t in range(b.shape[0] * npan):
        pack_b_task(b, b_trans, t, npan, bp)
    nblk = (m + mc - 1) // mc
    for t in range(nb * nblk):
        row_block(a, a_trans, a_idx, bp, b_idx, out, t, nblk, mc)
