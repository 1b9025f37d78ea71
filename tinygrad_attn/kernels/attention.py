"""Fused, flash-style scaled-dot-product attention in Numba (forward and backward).

Math (per head b, query i, key j; `scale` is usually 1/sqrt(d)):

    s_ij  = scale * q_i . k_j                 (-inf where the pair is masked out)
    lse_i = log sum_j exp(s_ij)
    o_i   = sum_j exp(s_ij - lse_i) v_j

The forward never builds the (Tq, Tk) matrix: each task owns BQ query rows and streams over blocks of BK keys
with an *online softmax* (running max m, running sum l, and a rescale of the partial output whenever m grows).
Only lse is saved. The backward recomputes p_ij = exp(s_ij - lse_i) block by block, exactly like the forward.

Layouts. q, k, v (and o, do in the backward) are (B, H, T, c) arrays with any strides, or (BH, T, c) arrays
(taken as B = 1). In a multi-head layer they are head-split views of the projections, x @ W (B, T, H*dh)
seen as (B, T, H, dh).transpose(0, 2, 1, 3), and are read in place. Outputs follow their input's memory
layout (numpy's empty_like order="K", PyTorch's preserve_format): o is laid out like q, dq, dk, dv like q, k,
v, so for head-split inputs o and the gradients are (B, T, H, c) buffers seen as (B, H, T, c), and the
caller's transpose + reshape back to (B, T, H*c) costs nothing. lse is a C-contiguous (B, H, Tq) (or (BH, Tq)).

Implementation choices (read these before the code):

* Scores are kept in base 2: each block of q k^T is multiplied by scale * log2(e), so s2 = s * log2(e) and
  exp(s - m) becomes exp2(s2 - m2), which `_exp2` evaluates with a polynomial and an exponent-bit add
  (vectorises; no libm call).
* Blocked path: every product is C (+)= A @ B on matmul's register-blocked micro-kernel (`outer_tile`,
  `outer_tile_add` in matmul.py: MR x NR tiles of C as MR * NVEC vector accumulators in registers, one outer
  product A[:, p] B[p, :] per step). A operands (q and do rows, the p and ds blocks, p^T and ds^T read through
  strides) are read in place; B operands are NR-column panels, each a contiguous (k, NR) block, cut once per
  call by `_panels` (k^T and v for the forward; q, k and do for the backward, whose tasks copy their own
  64 keys' k^T and v^T).
* Inputs are used as zero-padded, C-contiguous layouts (one copy straight from the input's strides, made only
  when needed, plus the panels: O(T*d) extra memory): rows padded to the block sizes and feature dimensions to
  NR, so tiles need no edge cases. Padded keys are masked out, padded query rows are discarded; results are
  copied into the layout-following outputs (or returned as they are when those are the padded buffers).
* Tasks are spread over threads with `numba.prange`; problems too small to amortise the thread pool run the
  same block functions serially.

* Small T (Tq * Tk <= SMALL_TILE = 128 * 128): one task per head instead, on zero-padded per-task scratch
  copies (q rows to TR, keys to 2*SW, features to SW) read row by row from the inputs (any layout whose rows
  have unit stride, head-split views included; other layouts are copied to C order first): the whole
  score tile, a plain stable softmax and whole-head products on `_gemm_tile` (a 4 x W register tile on the
  thread's stack, which LLVM keeps in vector registers through the reduction), results written
  straight into the (strided) outputs. No 64-padding, no online rescaling, no whole-array copies, and the
  backward task owns its head (dq, dk, dv without races or per-thread buffers). Measured faster than the
  blocked path up to T = 128 (7-30x at T = 32, d = 16); see docs/kernels.md ("Fused attention").

lse is returned in natural-log units; a fully masked row has lse = -inf, o = 0 and zero gradients.
"""

import math
import time

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import threads
from .flags import ERROR_MODEL
from .matmul import MR, NVEC, VECTOR_BYTES, outer_tile, outer_tile_add

BQ = 64            # query rows per task (forward) / per inner block (backward)
BK = 64            # keys per block
TR = 4             # rows of the small-T path's register tiles (4 x 2*SW for scores, 4 x SW for features)
SW = 16            # columns of the small-T path's register tile (one AVX-512 vector of float32)
SMALL_TILE = 128 * 128  # Tq * Tk up to this: the small-T path (one task per head, no padding); 0 disables it
FORWARD_NS = 0.017      # single-thread ns per multiply-add (BH * Tq * Tk * (d + dv) of them): threads.py's
BACKWARD_NS = 0.027     # work estimate, which decides per call whether the thread pool pays (threads.use_threads)

LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)

# Fast-math without "ninf": masked scores are -inf and must compare and exponentiate correctly. "nnan" is safe
# because no step produces a NaN from finite inputs (-inf - -inf is avoided explicitly); it lets LLVM
# vectorise the row maximum.
_FASTMATH = {"nnan", "contract", "reassoc", "nsz", "arcp", "afn"}
_JIT = {"cache": True, "no_cfunc_wrapper": True, "fastmath": _FASTMATH, "nogil": True, "error_model": ERROR_MODEL}


# --------------------------------------------------------------------------------------------------------------
# Low-level building blocks: a stack tile, exp2, and the small-T path's tile matrix product
# --------------------------------------------------------------------------------------------------------------

def _make_stack_tile(rows: int, cols: int):
    """Build `tile(dtype)`: a (rows, cols) scratch array on the calling thread's stack (numpy when JIT is off)."""

    def tile(dtype):
        return np.empty((rows, cols), dtype)

    @intrinsic
    def _alloca(typingctx, dtype):
        def codegen(context, builder, signature, args):
            return cgutils.alloca_once(builder, context.get_value_type(dtype.dtype), size=rows * cols)
        return types.CPointer(dtype.dtype)(dtype), codegen

    # inline="always" puts the alloca in the caller's frame, so the buffer lives as long as the caller.
    @overload(tile, inline="always")
    def _tile_impl(dtype):
        return lambda dtype: numba.carray(_alloca(dtype), (rows, cols))

    return tile


_small_tile = _make_stack_tile(TR, SW)
_small_score_tile = _make_stack_tile(TR, 2 * SW)


@intrinsic
def _times_pow2(typingctx, x, n):
    """x * 2**n for an integer n of x's bit width, by adding n to the exponent field (no range checks)."""
    if not isinstance(x, types.Float) or not isinstance(n, types.Integer) or x.bitwidth != n.bitwidth:
        return None
    mantissa_bits = 23 if x.bitwidth == 32 else 52

    def codegen(context, builder, signature, args):
        xv, nv = args
        int_ty = context.get_value_type(n)
        bits = builder.add(builder.bitcast(xv, int_ty), builder.shl(nv, int_ty(mantissa_bits)))
        return builder.bitcast(bits, xv.type)
    return x(x, n), codegen


def _exp2(x):
    """2**x for x <= 0 (x may be -inf); the compiled version below is a polynomial, this is the no-JIT fallback."""
    return np.exp2(x)


@overload(_exp2, inline="always", jit_options={"fastmath": _FASTMATH})
def _exp2_impl(x):
    """2**x = 2**n * 2**f with n = round(x), f in [-1/2, 1/2]: a polynomial for 2**f, n added to the exponent.

    Results below 2**-125 (float32) / 2**-1021 (float64) are flushed to 0, which also maps -inf to 0.
    float32 uses the Cephes exp2f minimax polynomial (rel. error ~2e-7), float64 the degree-12 Taylor
    series of exp(f ln 2) (truncation error < 2e-16)."""
    if x == types.float32:
        f32 = np.float32
        lo, half, one = f32(-125.0), f32(0.5), f32(1.0)
        c0, c1, c2 = f32(1.535336188319500e-4), f32(1.339887440266574e-3), f32(9.618437357674640e-3)
        c3, c4, c5 = f32(5.550332471162809e-2), f32(2.402264791363012e-1), f32(6.931472028550421e-1)

        def impl32(x):
            t = max(x, lo)
            n = np.floor(t + half)
            f = t - n
            p = one + f * (c5 + f * (c4 + f * (c3 + f * (c2 + f * (c1 + f * c0)))))
            return _times_pow2(p, np.int32(n)) * f32(x >= lo)   # the product is finite: * 0 gives exactly 0
        return impl32
    if x == types.float64:
        c = tuple(LN2 ** i / math.factorial(i) for i in range(13))

        def impl64(x):
            t = max(x, -1021.0)
            n = np.floor(t + 0.5)
            f = t - n
            p = c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * (c[5] + f * (c[6] + f * (
                c[7] + f * (c[8] + f * (c[9] + f * (c[10] + f * (c[11] + f * c[12])))))))))))
            return _times_pow2(p, np.int64(n)) * np.float64(x >= -1021.0)
        return impl64
    return None


@numba.njit(inline="always", **_JIT)
def _gemm_tile(tile, c, cr, cc, a, ar, ac, b, br, bc, n, accumulate):
    """C[cr:cr+4, cc:cc+W] (+)= A[ar:ar+4, ac:ac+n] @ B[br:br+n, bc:bc+W], with (4, W) = tile.shape.

    The 4 x W partial sums live in `tile` (a stack tile, i.e. registers). Each step t reads one row of B
    contiguously (W/16 vector loads in float32) and broadcasts four elements of A: 4*W/16 vector FMAs for
    4 + W/16 loads. The four rows are written out by hand so that LLVM vectorises the w loop once and
    shares each B load between the rows. Column indices are unsigned so that Numba emits no negative-index
    wraparound: with a signed runtime offset LLVM cannot prove the columns contiguous and falls back to
    gathers and scatters (about 5x slower)."""
    width = tile.shape[1]
    for r in range(4):
        for w in range(width):
            tile[r, w] = c[cr + r, np.uint64(cc + w)] if accumulate else 0
    for t in range(n):
        x0, x1, x2, x3 = a[ar, ac + t], a[ar + 1, ac + t], a[ar + 2, ac + t], a[ar + 3, ac + t]
        for w in range(width):
            y = b[br + t, np.uint64(bc + w)]
            tile[0, w] += x0 * y
            tile[1, w] += x1 * y
            tile[2, w] += x2 * y
            tile[3, w] += x3 * y
    for r in range(4):
        for w in range(width):
            c[cr + r, np.uint64(cc + w)] = tile[r, w]


@numba.njit(inline="always", **_JIT)
def _scale_and_mask(s, factor, mask, causal, b, i0, j0, tq, tk):
    """s *= factor (scale * log2(e)), then s[i, j] = -inf unless query i0+i may attend key j0+j in head b: the
    (B, H, Tq, Tk) mask is True there, j <= i when causal, and neither index is padding. Row i allows at most
    keys j < stop, a prefix."""
    for i in range(BQ):
        gi = i0 + i
        stop = min(BK, tk - j0, gi - j0 + 1) if causal else min(BK, tk - j0)
        if gi >= tq:
            stop = 0
        stop = max(stop, 0)
        for j in range(stop):
            s[i, j] *= factor
        if mask is not None:
            for j in range(stop):
                if not mask[b // mask.shape[1], b % mask.shape[1], gi, j0 + j]:
                    s[i, j] = -np.inf
        for j in range(stop, BK):                 # unsigned: no wraparound code, which would become scatters
            s[i, np.uint64(j)] = -np.inf


# --------------------------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _forward_block(q, ktp, vpan, factor, mask, causal, tq, tk, b, i0, o, lse2):
    """Rows i0:i0+BQ of head b: stream over key blocks with an online softmax, write o and lse2 = lse*log2(e).

    Scores are kept in base 2: s2 = factor * q k^T with factor = scale * log2(e).
    Per row i the invariants after each key block are m_i = max_j s2_ij, l_i = sum_j 2**(s2_ij - m_i) and
    o_i = sum_j 2**(s2_ij - m_i) v_j over the keys seen so far; a new block with a larger max rescales l_i and
    o_i by alpha_i = 2**(m_old - m_new). At the end o_i /= l_i and lse2_i = m_i + log2(l_i).
    q (BH, Tq', d) rows; ktp (BH, Tk'/NR, d, NR) panels of k^T; vpan (BH, dv'/NR, Tk', NR) panels of v."""
    dtype = q.dtype
    s = np.empty((BQ, BK), dtype)                 # scores of the current block, then its probabilities
    m = np.full(BQ, -np.inf, dtype)               # running max of s2 per row
    l = np.zeros(BQ, dtype)                       # running sum of 2**(s2 - m) per row
    alpha = np.empty(BQ, dtype)                   # rescale factor of the current block
    nr, d = ktp.shape[3], q.shape[2]
    ob = o[b]                                     # (Tq', dv'), zeros on entry: the unnormalised accumulator
    q_rows = b * q.shape[1] * d                   # flat offset of head b's q
    key_end = min(i0 + BQ, tq, tk) if causal else tk  # causal: keys after the block's last query are unused
    for j0 in range(0, key_end, BK):
        for jp in range(BK // nr):                # s2 = q @ k^T (scaled below), MR x NR micro-tiles
            panel = ktp[b, j0 // nr + jp]
            for i in range(0, BQ, MR):
                outer_tile(q, q_rows + (i0 + i) * d, d, 1, panel, d, s, i, jp * nr)
        _scale_and_mask(s, factor, mask, causal, b, i0, j0, tq, tk)
        for i in range(BQ):                       # online softmax: new max, rescale, probabilities
            m_new = m[i]
            for j in range(BK):
                m_new = max(m_new, s[i, j])
            if m_new == -np.inf:                  # no allowed key yet in this row
                alpha[i] = 1.0
                for j in range(BK):
                    s[i, j] = 0.0
                continue
            alpha[i] = _exp2(m[i] - m_new)
            total = 0.0
            for j in range(BK):
                p = _exp2(s[i, j] - m_new)
                s[i, j] = p
                total += p
            l[i] = l[i] * alpha[i] + total
            m[i] = m_new
        for i in range(BQ):                       # acc *= alpha: old terms re-expressed relative to m_new
            row = ob[i0 + i]
            for c in range(ob.shape[1]):
                row[c] *= alpha[i]
        for cp in range(vpan.shape[1]):           # acc += p @ v_block
            panel = vpan[b, cp, j0:j0 + BK]
            for i in range(0, BQ, MR):
                outer_tile_add(s, i * BK, BK, 1, panel, BK, ob, i0 + i, cp * nr)
    for i in range(BQ):
        inv = 1.0 / l[i] if l[i] > 0 else 0.0     # fully masked row: o = 0, lse = -inf
        row = ob[i0 + i]
        for c in range(ob.shape[1]):
            row[c] *= inv
        lse2[b, i0 + i] = m[i] + np.log2(l[i]) if l[i] > 0 else -np.inf


@numba.njit(parallel=True, **_JIT)
def _forward_parallel(q, ktp, vpan, factor, mask, causal, tq, tk, o, lse2):
    """One thread-pool task per (head, query block)."""
    n_qb = q.shape[1] // BQ
    for task in numba.prange(q.shape[0] * n_qb):
        _forward_block(q, ktp, vpan, factor, mask, causal, tq, tk, task // n_qb, (task % n_qb) * BQ, o, lse2)


@numba.njit(**_JIT)
def _forward_serial(q, ktp, vpan, factor, mask, causal, tq, tk, o, lse2):
    """The same tasks as `_forward_parallel`, one after another (small problems)."""
    n_qb = q.shape[1] // BQ
    for task in range(q.shape[0] * n_qb):
        _forward_block(q, ktp, vpan, factor, mask, causal, tq, tk, task // n_qb, (task % n_qb) * BQ, o, lse2)


# --------------------------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _backward_block(ops, factor, scale, lse2, big_d, mask, causal, tq, tk, b, j0, dq, dk, dv):
    """Keys j0:j0+BK of head b against every query block that can see them.

    Race-free by construction: this task is the only writer of dk, dv rows j0:j0+BK, so they accumulate in
    place across query blocks; dq rows are shared by all key blocks, so each worker passes its own dq buffer
    and the caller sums the buffers (O(workers * T * d) memory, and no second pass over all (query, key)
    blocks, which would recompute the scores and dp once more).
    ds is scale * dL/ds for the scores s = scale * q k^T (the chain rule's factor, applied here once): dk and dq
    accumulate ds^T @ q and ds @ k, final as they are. lse2 = lse * log2(e), factor = scale * log2(e).
    `ops` = (q, do, k, v) as padded rows (q, do: A operands; k, v: copied here into k^T, v^T panels) and
    (q, k, do) as NR-column panels (B operands), as `attention_backward` builds them."""
    q, do, k, v, qpan, kpan, dopan = ops
    dtype = q.dtype
    nr, d, dvw = qpan.shape[3], q.shape[2], do.shape[2]
    p = np.empty((BQ, BK), dtype)                 # scores, then probabilities
    ds = np.empty((BQ, BK), dtype)                # dp, then ds
    ktb = np.empty((BK // nr, d, nr), dtype)      # this task's k^T and v^T as panels: the B operands of s, dp
    vtb = np.empty((BK // nr, dvw, nr), dtype)
    for j in range(BK):
        k_row, v_row = k[b, j0 + j], v[b, j0 + j]
        for c in range(d):
            ktb[j // nr, c, j % nr] = k_row[c]
        for c in range(dvw):
            vtb[j // nr, c, j % nr] = v_row[c]
    dqb, dkb, dvb = dq[b], dk[b], dv[b]
    q_rows, do_rows = b * q.shape[1] * d, b * do.shape[1] * dvw   # flat offsets of head b's q and do
    query_start = (j0 // BQ) * BQ if causal else 0  # causal: queries before key j0 never attend this block
    for i0 in range(query_start, q.shape[1], BQ):
        for jp in range(BK // nr):                # forward s2 = factor * q @ k^T, and o = p @ v => dp = do @ v^T
            kt_panel, vt_panel = ktb[jp], vtb[jp]
            for i in range(0, BQ, MR):
                outer_tile(q, q_rows + (i0 + i) * d, d, 1, kt_panel, d, p, i, jp * nr)
                outer_tile(do, do_rows + (i0 + i) * dvw, dvw, 1, vt_panel, dvw, ds, i, jp * nr)
        _scale_and_mask(p, factor, mask, causal, b, i0, j0, tq, tk)
        for i in range(BQ):                       # forward: p = exp(s - lse), normalised by the saved lse
            row_lse = lse2[b, i0 + i]
            if row_lse == -np.inf:                # fully masked row: p = 0 (exp(-inf - -inf) would be NaN)
                for j in range(BK):
                    p[i, j] = 0.0
                continue
            for j in range(BK):
                p[i, j] = _exp2(p[i, j] - row_lse)
        for i in range(BQ):                       # softmax backward: ds = scale p (dp - D), D_i = do_i . o_i
            row_d = big_d[b, i0 + i]
            for j in range(BK):
                ds[i, j] = p[i, j] * (ds[i, j] - row_d) * scale
        for cp in range(dopan.shape[1]):          # forward o = p @ v   =>  dv += p^T @ do
            panel = dopan[b, cp, i0:i0 + BQ]
            for j in range(0, BK, MR):
                outer_tile_add(p, j, 1, BK, panel, BQ, dvb, j0 + j, cp * nr)
        for cp in range(qpan.shape[1]):           # forward s = q k^T  =>  dk += ds^T @ q
            panel = qpan[b, cp, i0:i0 + BQ]
            for j in range(0, BK, MR):
                outer_tile_add(ds, j, 1, BK, panel, BQ, dkb, j0 + j, cp * nr)
        for cp in range(kpan.shape[1]):           # forward s = q k^T  =>  dq += ds @ k
            panel = kpan[b, cp, j0:j0 + BK]
            for i in range(0, BQ, MR):
                outer_tile_add(ds, i * BK, BK, 1, panel, BK, dqb, i0 + i, cp * nr)


@numba.njit(parallel=True, **_JIT)
def _backward_parallel(ops, factor, scale, lse2, big_d, mask, causal, tq, tk, dq_part, dk, dv):
    """One prange iteration per worker w = 0 .. len(dq_part)-1; worker w takes the (head, key block) tasks
    w, w + workers, ... (interleaved, which also balances causal work) and accumulates dq in dq_part[w]."""
    n_kb = dk.shape[1] // BK
    n_tasks = dk.shape[0] * n_kb
    workers = dq_part.shape[0]
    for w in numba.prange(workers):
        for task in range(w, n_tasks, workers):
            _backward_block(ops, factor, scale, lse2, big_d, mask, causal, tq, tk,
                            task // n_kb, (task % n_kb) * BK, dq_part[w], dk, dv)


@numba.njit(**_JIT)
def _backward_serial(ops, factor, scale, lse2, big_d, mask, causal, tq, tk, dq_part, dk, dv):
    """The same tasks as `_backward_parallel`, one after another, all into dq_part[0] (small problems)."""
    n_kb = dk.shape[1] // BK
    for task in range(dk.shape[0] * n_kb):
        _backward_block(ops, factor, scale, lse2, big_d, mask, causal, tq, tk,
                        task // n_kb, (task % n_kb) * BK, dq_part[0], dk, dv)


# --------------------------------------------------------------------------------------------------------------
# Small-T path: one task per head, no padding, rows processed one query at a time
# --------------------------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _ceil_to(n, multiple):
    return (n + multiple - 1) // multiple * multiple


@numba.njit(**_JIT)
def _head(x, b):
    """Head b of a (B, H, T, c) array, x[b // H, b % H], as a (T, c) view through x's strides. Indexed with
    the trailing ':, :' the view is typed layout 'A' even when x is C-contiguous, so the per-head kernels
    compile once for every input layout; only the thin drivers are specialised per layout."""
    return x[b // x.shape[1], b % x.shape[1], :, :]


def _head_or_none(x, b):
    """_head(x, b), or None when x is None (the mask)."""
    return None if x is None else _head(x, b)


@overload(_head_or_none)
def _head_or_none_impl(x, b):
    # Chosen by type: the callee then sees None itself, not an Optional array checked at every use.
    if isinstance(x, types.NoneType):
        return lambda x, b: None
    return lambda x, b: _head(x, b)


@intrinsic
def _row_pointer(typingctx, x, i):
    """Pointer to x[i, 0] of a 2-D array with any strides."""
    if not isinstance(x, types.Array) or x.ndim != 2 or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(x)(context, builder, args[0])
        index = context.cast(builder, args[1], i, types.intp)
        return cgutils.get_item_pointer(context, builder, x, ary, [index, context.get_constant(types.intp, 0)])
    return types.CPointer(x.dtype)(x, i), codegen


def _row(x, i):
    """Row i of a 2-D array whose rows have unit stride, typed C-contiguous (compiled below; numpy when JIT is off)."""
    return x[i]


@overload(_row, inline="always")
def _row_impl(x, i):
    """x[i] of an 'A' array is typed 'A' too, and LLVM turns loops over it into gathers and scatters (the
    stride is a runtime value); the same memory as a 'C' carray gets plain vector loads and stores."""
    return lambda x, i: numba.carray(_row_pointer(x, i), x.shape[1])


@numba.njit(inline="always", **_JIT)
def _copy_row(src, out, i, transpose):
    """out[i, :n] = src, or out[:n, i] = src when `transpose` (n = len(src))."""
    if transpose:
        for c in range(src.shape[0]):
            out[c, i] = src[c]
    else:
        for c in range(src.shape[0]):
            out[i, c] = src[c]


@numba.njit(**_JIT)
def _small_copy(x, rows, cols, transpose, dtype):
    """x (T, c), or x^T, as a fresh zero-padded C-contiguous (rows, cols) scratch: the per-task operand, read
    once, row by row (x's rows have unit stride: `_unit_rows`)."""
    out = np.zeros((rows, cols), dtype)
    for i in range(x.shape[0]):
        _copy_row(_row(x, i), out, i, transpose)
    return out


@numba.njit(**_JIT)
def _small_store(x, src):
    """x[i, c] = src[i, c] over x's (T, c) entries: a result written from its padded scratch straight into
    the output, whose rows have unit stride (`_unit_rows`)."""
    for i in range(x.shape[0]):
        row = _row(x, i)
        for c in range(x.shape[1]):
            row[c] = src[i, c]


@numba.njit(**_JIT)
def _score_product(s, a, bt, causal):
    """s = a bt over the whole padded tile on 4 x 2*SW register tiles (a (Tq', n), bt (n, Tk')); when causal,
    column blocks wholly above the diagonal are skipped (their entries are left undefined). One compiled copy
    for q k^T and do v^T: `_gemm_tile` is inlined here once instead of at every call site."""
    tile = _small_score_tile(s.dtype)
    sw = tile.shape[1]
    for i0 in range(0, s.shape[0], TR):
        j_end = min(s.shape[1], i0 + TR) if causal else s.shape[1]
        for j0 in range(0, j_end, sw):
            _gemm_tile(tile, s, i0, j0, a, i0, 0, bt, 0, j0, a.shape[1], False)


@numba.njit(**_JIT)
def _feature_product(c, a, b, n, causal, keys_first):
    """c = a[:, :n] b[:n] on 4 x SW register tiles, c (R, W') with R a multiple of TR and W' of SW. When causal
    the inner index is cut to the pairs that can attend: a = p or ds (rows queries, columns keys) uses keys
    j < i0 + TR only; a = p^T or ds^T (`keys_first`: rows keys, columns queries) uses queries i >= i0 only."""
    tile = _small_tile(c.dtype)
    sw = tile.shape[1]
    for i0 in range(0, c.shape[0], TR):
        lo = min(i0, n) if causal and keys_first else 0
        hi = min(n, i0 + TR) if causal and not keys_first else n
        for c0 in range(0, c.shape[1], sw):
            _gemm_tile(tile, c, i0, c0, a, i0, lo, b, lo, c0, hi - lo, False)


@numba.njit(**_JIT)
def _small_scores(qs, kt, s, factor, mask, causal, tq, tk):
    """s2 = factor * q k^T for the whole (padded) tile of one head (`_score_product`), then masking.
    Returns nothing; afterwards row i < tq holds scores for keys j < stop_i (the allowed prefix, -inf where
    mask is False), and s[i, j] for j >= stop_i is undefined (causal blocks above the diagonal are skipped)."""
    _score_product(s, qs, kt, causal)
    for i in range(tq):
        stop = min(tk, i + 1) if causal else tk
        for j in range(stop):
            s[i, j] *= factor
        if mask is not None:
            for j in range(stop):
                if not mask[i, j]:
                    s[i, j] = -np.inf


@numba.njit(inline="always", **_JIT)
def _small_forward_head(q, k, v, factor, mask, causal, o, lse):
    """One head as one tile: s2 = factor * q k^T (base 2) for all (Tq, Tk) pairs, a stable softmax per row,
    o = p v; lse in natural-log units. q (Tq, d), k (Tk, d), v (Tk, dv), mask (Tq, Tk) or None and the
    outputs o (Tq, dv), lse (Tq,) are views with any strides; the products run on per-task zero-padded
    scratch copies (q rows to TR, keys to 2*SW, features to SW), so `_gemm_tile` needs no edge cases.
    Inlined into its driver: a run compiles one driver (usually the serial one), and a separately compiled
    head would be optimised twice, alone and again inside the driver that links it."""
    dtype = q.dtype
    tq, tk, d, dv = q.shape[0], k.shape[0], q.shape[1], v.shape[1]
    tqp, tkp, dvp = _ceil_to(tq, TR), _ceil_to(tk, 2 * SW), _ceil_to(dv, SW)
    qs = _small_copy(q, tqp, d, False, dtype)
    kt = _small_copy(k, d, tkp, True, dtype)
    vs = _small_copy(v, tkp, dvp, False, dtype)
    s = np.empty((tqp, tkp), dtype)
    os = np.empty((tqp, dvp), dtype)
    _small_scores(qs, kt, s, factor, mask, causal, tq, tk)
    for i in range(tqp):
        stop = (min(tk, i + 1) if causal else tk) if i < tq else 0
        m = s[i, 0]                               # q's dtype (a float64 constant would make exp2 float64)
        for j in range(1, stop):
            m = max(m, s[i, j])
        if stop == 0 or m == -np.inf:             # fully masked (or padding) row: o = 0, lse = -inf
            for j in range(tkp):
                s[i, j] = 0.0
            if i < tq:
                lse[i] = -np.inf
            continue
        total = m - m                             # 0 in q's dtype (m is finite here)
        for j in range(stop):
            p = _exp2(s[i, j] - m)
            s[i, j] = p
            total += p
        inv = total / total / total               # 1 / total in q's dtype (1.0 / total would be float64)
        for j in range(stop):
            s[i, j] *= inv
        for j in range(stop, tkp):                # unsigned: no wraparound code, which would become scatters
            s[i, np.uint64(j)] = 0.0
        lse[i] = (m + np.log2(total)) * LN2
    _feature_product(os, s, vs, tk, causal, False)                           # o = p v
    _small_store(o, os)


@numba.njit(parallel=True, **_JIT)
def _small_forward_parallel(q, k, v, factor, mask, causal, o, lse):
    """One task per head b of the B*H heads; q, k, v, mask, o are (B, H, ...) arrays, lse (B*H, Tq)."""
    for b in numba.prange(q.shape[0] * q.shape[1]):
        _small_forward_head(_head(q, b), _head(k, b), _head(v, b), factor, _head_or_none(mask, b), causal,
                            _head(o, b), lse[b])


@numba.njit(**_JIT)
def _small_forward_serial(q, k, v, factor, mask, causal, o, lse):
    for b in range(q.shape[0] * q.shape[1]):
        _small_forward_head(_head(q, b), _head(k, b), _head(v, b), factor, _head_or_none(mask, b), causal,
                            _head(o, b), lse[b])


@numba.njit(inline="always", **_JIT)
def _small_backward_head(q, k, v, o, do, lse2, factor, scale, mask, causal, dq, dk, dv):
    """One head as one tile: p = exp2(s2 - lse2) recomputed, dp = do v^T, ds = scale * p (dp - D) with
    D_i = do_i . o_i, dv = p^T do, dk = ds^T q, dq = ds k. The task owns its head: no races, no per-thread
    buffers. Operands and outputs are one head's strided views, as in `_small_forward_head`."""
    dtype = q.dtype
    tq, tk, d, dvw = q.shape[0], k.shape[0], q.shape[1], v.shape[1]
    tqp, tkp, dp, dvp = _ceil_to(tq, TR), _ceil_to(tk, 2 * SW), _ceil_to(d, SW), _ceil_to(dvw, SW)
    qs = _small_copy(q, tqp, dp, False, dtype)
    ks = _small_copy(k, tkp, dp, False, dtype)
    kt = _small_copy(k, dp, tkp, True, dtype)     # rows padded to dp, like qs's columns: one _small_scores
    vt = _small_copy(v, dvp, tkp, True, dtype)    # rows padded to dvp, like dos's columns
    dos = _small_copy(do, tqp, dvp, False, dtype)
    os = _small_copy(o, tqp, dvp, False, dtype)
    p = np.empty((tqp, tkp), dtype)
    ds = np.empty((tqp, tkp), dtype)
    dqs = np.empty((tqp, dp), dtype)
    dks = np.empty((tkp, dp), dtype)
    dvs = np.empty((tkp, dvp), dtype)
    _small_scores(qs, kt, p, factor, mask, causal, tq, tk)
    _score_product(ds, dos, vt, causal)                                      # dp = do v^T
    for i in range(tqp):
        stop = (min(tk, i + 1) if causal else tk) if i < tq else 0
        row_lse = lse2[min(i, tq - 1)]
        if row_lse == -np.inf:                    # fully masked row: no gradient
            stop = 0
        row_d = dos[i, 0] - dos[i, 0]             # D_i = do_i . o_i, in q's dtype (x * 0 would be float64)
        if stop > 0:
            for c in range(dvw):
                row_d += dos[i, c] * os[i, c]
        for j in range(stop):
            pj = _exp2(p[i, j] - row_lse)
            p[i, j] = pj
            ds[i, j] = pj * (ds[i, j] - row_d) * scale     # s = scale * q k^T: dk, dq need scale * ds
        for j in range(stop, tkp):                # unsigned, as in the forward
            p[i, np.uint64(j)] = 0.0
            ds[i, np.uint64(j)] = 0.0
    _feature_product(dvs, p.T, dos, tq, causal, True)                        # dv = p^T do
    _feature_product(dks, ds.T, qs, tq, causal, True)                        # dk = ds^T q
    _feature_product(dqs, ds, ks, tk, causal, False)                         # dq = ds k
    _small_store(dq, dqs)
    _small_store(dk, dks)
    _small_store(dv, dvs)


@numba.njit(parallel=True, **_JIT)
def _small_backward_parallel(q, k, v, o, do, lse2, factor, scale, mask, causal, dq, dk, dv):
    """One task per head b of the B*H heads; all arrays (B, H, ...) except lse2 (B*H, Tq)."""
    for b in numba.prange(q.shape[0] * q.shape[1]):
        _small_backward_head(_head(q, b), _head(k, b), _head(v, b), _head(o, b), _head(do, b), lse2[b], factor,
                             scale, _head_or_none(mask, b), causal, _head(dq, b), _head(dk, b), _head(dv, b))


@numba.njit(**_JIT)
def _small_backward_serial(q, k, v, o, do, lse2, factor, scale, mask, causal, dq, dk, dv):
    for b in range(q.shape[0] * q.shape[1]):
        _small_backward_head(_head(q, b), _head(k, b), _head(v, b), _head(o, b), _head(do, b), lse2[b], factor,
                             scale, _head_or_none(mask, b), causal, _head(dq, b), _head(dk, b), _head(dv, b))


# --------------------------------------------------------------------------------------------------------------
# Python wrappers: layouts, padding, units
# --------------------------------------------------------------------------------------------------------------

def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _as_4d(x: np.ndarray) -> np.ndarray:
    """A (BH, T, c) array as a (1, BH, T, c) view: one batch axis. 4-D arrays are returned as they are."""
    return x[None] if x.ndim == 3 else x


def _empty_like(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A fresh array of `shape` (as many axes as x) whose axes run in memory in the same order as x's (numpy's
    order="K", PyTorch's preserve_format). For a head-split q, whose memory runs (B, T, H, d), that is a
    C-contiguous (B, T, H, c) buffer seen as (B, H, T, c): the caller's transpose + reshape back to
    (B, T, H*c) is then free."""
    return np.empty_like(x, shape=shape)


def _has_unit_rows(x: np.ndarray) -> bool:
    return x.shape[-1] <= 1 or x.strides[-1] == x.itemsize     # a row of one element has any stride


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """x itself if its last axis has unit stride (C-contiguous and head-split arrays), else a C-contiguous
    copy: the small-T kernels read and write rows as contiguous vectors (one compiled path, no gathers)."""
    return x if _has_unit_rows(x) else np.ascontiguousarray(x)


def _out_and_rows(like: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An output of `shape` laid out like `like` (`_empty_like`), and the array the small-T kernel writes: the
    output itself when its rows have unit stride (C-contiguous and head-split layouts), else a C-contiguous
    buffer that `_rows_done` copies into it."""
    out = _empty_like(like, shape)
    return out, (out if _has_unit_rows(out) else np.empty(shape, out.dtype))


def _rows_done(out: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if rows is not out:
        out[...] = rows
    return out


def _padded(x: np.ndarray, rows: int, cols: int, transpose: bool = False) -> np.ndarray:
    """x (B, H, n, c), or x with its last two axes swapped when `transpose`, as a zero-padded C-contiguous
    (B*H, rows, cols) array: one copy straight through x's strides, or x itself (reshaped) when it already is
    one (fresh buffers cost page faults, which matter at these sizes)."""
    src = x.swapaxes(2, 3) if transpose else x
    if src.shape[2:] == (rows, cols):             # nothing to pad: no zero fill either
        return np.ascontiguousarray(src).reshape(-1, rows, cols)
    out = np.zeros((src.shape[0] * src.shape[1], rows, cols), x.dtype)
    out.reshape(src.shape[:2] + (rows, cols))[:, :, :src.shape[2], :src.shape[3]] = src
    return out


def _panel_width(dtype: np.dtype) -> int:
    """NR, the columns of a micro-tile: NVEC vector registers (32 float32 / 16 float64)."""
    return NVEC * VECTOR_BYTES // dtype.itemsize


def _panels(x: np.ndarray, rows: int, cols: int, nr: int, transpose: bool = False) -> np.ndarray:
    """The matrix x (B, H, n, c), or its transpose when `transpose`, zero-padded to (rows, cols) and cut into
    column panels, the micro-kernel's B operand: a C-contiguous (B*H, cols // nr, rows, nr) array whose
    [b, jp, i, j] is the matrix's [i, jp * nr + j]. One copy through x's strides (O(T * d))."""
    src = x.swapaxes(2, 3) if transpose else x
    b, h, n, c = src.shape
    padded = (rows, cols) != (n, c)
    out = (np.zeros if padded else np.empty)((b * h, cols // nr, rows, nr), x.dtype)
    out5 = out.reshape(b, h, cols // nr, rows, nr)
    for jp in range(-(-c // nr)):
        width = min(nr, c - jp * nr)
        out5[:, :, jp, :n, :width] = src[:, :, :, jp * nr:jp * nr + width]
    return out


def _unpadded(buf: np.ndarray, like: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The result of `shape` ((B, H, n, c) or (BH, n, c)) from its zero-padded C-contiguous (B*H, rows, cols)
    buffer, laid out like `like`: buf itself (reshaped) when that already is such an array, else one copy."""
    out = _empty_like(like, shape)
    if out.flags.c_contiguous and buf.shape[1:] == shape[-2:]:
        return buf.reshape(shape)
    out4 = _as_4d(out)
    out4[...] = buf.reshape(out4.shape[:2] + buf.shape[1:])[:, :, :out4.shape[2], :out4.shape[3]]
    return out


def _mask_arg(mask: np.ndarray | None, shape: tuple[int, int, int, int]) -> np.ndarray | None:
    """The mask as a read-only bool view of shape (B, H, Tq, Tk) (any strides, including 0), or None. Always
    read-only, so that writable and broadcast masks share one compiled specialisation."""
    return None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), shape)


def _use_small(tq: int, tk: int) -> bool:
    return 0 < tq * tk <= SMALL_TILE             # the small kernels read s[i, 0]: Tk >= 1


def _work_ns(bh: int, tq: int, tk: int, d: int, dv: int, ns_per_madd: float, itemsize: int) -> float:
    """Estimated single-thread time of one call, for the thread policy (`threads.py`)."""
    return bh * tq * tk * (d + dv) * ns_per_madd * (itemsize / 4)    # float64 costs double


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, causal: bool,
                      scale: float) -> tuple[np.ndarray, np.ndarray]:
    """o = softmax(scale * q k^T, masked) @ v and lse_i = log sum_j exp(s_ij), without a (Tq, Tk) matrix.

    q (B, H, Tq, d), k (B, H, Tk, d), v (B, H, Tk, dv) with any strides (e.g. head-split views), or 3-D
    (BH, T, .) arrays (one batch axis); one float dtype. mask None or bool broadcastable to (B, H, Tq, Tk)
    (3-D: (BH, Tq, Tk)), True = may attend; causal: key j <= query i. Returns o (B, H, Tq, dv), laid out in
    memory like q, and a C-contiguous lse (B, H, Tq) (3-D: (BH, Tq, dv) and (BH, Tq)), in q's dtype; a fully
    masked row has o = 0 and lse = -inf."""
    q4, k4, v4 = _as_4d(q), _as_4d(k), _as_4d(v)
    b, h, tq, d = q4.shape
    tk, dv = v4.shape[2:]
    o_shape = q.shape[:-1] + (dv,)
    factor, mask4 = q.dtype.type(scale * LOG2E), _mask_arg(mask, (b, h, tq, tk))
    lse = np.empty(q.shape[:-1], q.dtype)
    if _use_small(tq, tk):
        o, o_rows = _out_and_rows(q, o_shape)
        work_ns = _work_ns(b * h, tq, tk, d, dv, FORWARD_NS, q.itemsize)
        threads.run(_small_forward_serial, _small_forward_parallel, work_ns, _unit_rows(q4), _unit_rows(k4),
                    _unit_rows(v4), factor, mask4, bool(causal), _as_4d(o_rows), lse.reshape(b * h, tq))
        return _rows_done(o, o_rows), lse
    nr = _panel_width(q.dtype)
    tqp, tkp, dvp = _round_up(tq, BQ), _round_up(tk, BK), _round_up(dv, nr)
    qp = _padded(q4, tqp, d)                                  # A operand: rows of q
    ktp, vpan = _panels(k4, d, tkp, nr, transpose=True), _panels(v4, tkp, dvp, nr)   # B operands
    o = np.zeros((b * h, tqp, dvp), q.dtype)
    lse2 = np.empty((b * h, tqp), q.dtype)
    threads.run(_forward_serial, _forward_parallel, _work_ns(b * h, tq, tk, d, dv, FORWARD_NS, q.itemsize),
                qp, ktp, vpan, factor, mask4, bool(causal), tq, tk, o, lse2)
    np.multiply(lse2[:, :tq], q.dtype.type(LN2), out=lse.reshape(b * h, tq))
    return _unpadded(o, q, o_shape), lse


def attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray, do: np.ndarray,
                       lse: np.ndarray, mask: np.ndarray | None, causal: bool,
                       scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of sum(o * do) w.r.t. q, k, v, recomputing p = exp(s - lse) block by block.

    Shapes and layouts as in `attention_forward` (o and do like o there, lse (B, H, Tq) or (BH, Tq)); dq, dk,
    dv are laid out in memory like q, k, v. With D_i = sum_c do_ic o_ic: ds_ij = p_ij (do_i . v_j - D_i);
    dq_i = scale sum_j ds_ij k_j; dk_j = scale sum_i ds_ij q_i; dv_j = sum_i p_ij do_i. Fully masked rows
    (lse = -inf) contribute nothing."""
    q4, k4, v4, o4, do4 = (_as_4d(x) for x in (q, k, v, o, do))
    b, h, tq, d = q4.shape
    tk, dv = v4.shape[2:]
    dtype = q.dtype
    factor, mask4 = dtype.type(scale * LOG2E), _mask_arg(mask, (b, h, tq, tk))
    if tq == 0 or tk == 0:                              # no scores at all: nothing flows back (no keys is the
        return np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)   # limit of a fully masked row)
    lse2 = lse.reshape(b * h, tq) * dtype.type(LOG2E)   # a fresh (B*H, Tq) array in q's dtype
    if _use_small(tq, tk):
        outs = [_out_and_rows(x, x.shape) for x in (q, k, v)]        # dq, dk, dv
        work_ns = _work_ns(b * h, tq, tk, d, dv, BACKWARD_NS, q.itemsize)
        threads.run(_small_backward_serial, _small_backward_parallel, work_ns,
                    *(_unit_rows(x) for x in (q4, k4, v4, o4, do4)), lse2, factor, dtype.type(scale), mask4,
                    bool(causal), *(_as_4d(rows) for _, rows in outs))
        return tuple(_rows_done(out, rows) for out, rows in outs)
    nr = _panel_width(dtype)
    tqp, tkp, dp, dvp = _round_up(tq, BQ), _round_up(tk, BK), _round_up(d, nr), _round_up(dv, nr)
    ops = (_padded(q4, tqp, d), _padded(do4, tqp, dv), _padded(k4, tkp, d), _padded(v4, tkp, dv),   # rows
           _panels(q4, tqp, dp, nr), _panels(k4, tkp, dp, nr), _panels(do4, tqp, dvp, nr))   # B panels
    lse2p = np.full((b * h, tqp), -np.inf, dtype)
    lse2p[:, :tq] = lse2
    big_d = np.zeros((b * h, tqp), dtype)
    big_d[:, :tq] = np.einsum("bhic,bhic->bhi", do4, o4).reshape(b * h, tq)
    work_ns = _work_ns(b * h, tq, tk, d, dv, BACKWARD_NS, q.itemsize)
    parallel = threads.use_threads(work_ns, _backward_parallel)   # decided first: it sets how many dq buffers
    dq_part = np.zeros((threads.num_threads() if parallel else 1, b * h, tqp, dp), dtype)
    dk = np.zeros((b * h, tkp, dp), dtype)
    dvo = np.zeros((b * h, tkp, dvp), dtype)
    t0 = time.perf_counter()
    (_backward_parallel if parallel else _backward_serial)(ops, factor, dtype.type(scale), lse2p, big_d, mask4,
                                                           bool(causal), tq, tk, dq_part, dk, dvo)
    (threads.record if parallel else threads.record_serial)(work_ns, time.perf_counter() - t0, _backward_parallel)
    dq = dq_part[0]                                 # in place: every fresh buffer costs page faults
    for other in dq_part[1:]:
        dq += other
    return _unpadded(dq, q, q.shape), _unpadded(dk, k, k.shape), _unpadded(dvo, v, v.shape)
