"""Fused attention kernels (Numba) against the numpy reference, and the reference against finite differences."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_attn.kernels import attention, attention_reference

TOL = {np.float32: 1e-5, np.float64: 1e-10}


@pytest.fixture(params=["small", "blocked"])
def path(request, monkeypatch):
    """Run the test on the small-T path (one tile per head; forced for every size) or on the blocked
    flash path (forced even for tiny T). The wrappers read SMALL_TILE at call time, so this adds no
    compiled signatures."""
    monkeypatch.setattr(attention, "SMALL_TILE", 1 << 40 if request.param == "small" else 0)
    return request.param


def _noncontiguous(x: np.ndarray) -> np.ndarray:
    """The same values as x in a strided view: every other element of a wider, transposed buffer."""
    wide = np.zeros((x.shape[2] * 2, x.shape[0], x.shape[1]), x.dtype)
    wide[::2] = x.transpose(2, 0, 1)
    view = wide[::2].transpose(1, 2, 0)
    assert not view.flags.c_contiguous and np.array_equal(view, x)
    return view


def _make_mask(kind: str, rng, bh: int, tq: int, tk: int) -> np.ndarray | None:
    """None, a padding mask (BH, 1, Tk) broadcast over queries, a shared (Tq, Tk) mask broadcast over heads,
    or a full (BH, Tq, Tk) mask; always passed as np.broadcast_to(..., (BH, Tq, Tk)) like the ops layer."""
    if kind == "none":
        return None
    if kind == "padding":
        lengths = rng.integers(1, tk + 1, size=bh)
        mask = np.arange(tk)[None, None, :] < lengths[:, None, None]
    elif kind == "shared":
        mask = rng.random((tq, tk)) < 0.7
    else:
        mask = rng.random((bh, tq, tk)) < 0.6
    return np.broadcast_to(mask, (bh, tq, tk))


def _compare(got, want, dtype, what):
    """Close within TOL relative to the largest magnitude of the reference (element-wise rtol and atol)."""
    tol = TOL[dtype]
    assert got.shape == want.shape and got.dtype == want.dtype, what
    assert np.all(np.isfinite(got)), f"{what}: non-finite values"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(want)))), err_msg=what)


def _check(bh, tq, tk, d, dv, causal, mask_kind, dtype, contiguous=True, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in [(bh, tq, d), (bh, tk, d), (bh, tk, dv)])
    do = rng.standard_normal((bh, tq, dv)).astype(dtype)
    if not contiguous:
        q, k, v, do = (_noncontiguous(x) for x in (q, k, v, do))
    mask = _make_mask(mask_kind, rng, bh, tq, tk)
    scale = 1.0 / np.sqrt(d)
    return _check_against_reference(q, k, v, do, mask, causal, scale, dtype)


def _check_against_reference(q, k, v, do, mask, causal, scale, dtype):
    """Fused forward and backward against the reference on the same inputs; returns (o, lse, grads)."""
    o, lse = attention.attention_forward(q, k, v, mask, causal, scale)
    o_ref, lse_ref = attention_reference.attention_forward(q, k, v, mask, causal, scale)
    _compare(o, o_ref, dtype, "o")
    assert lse.shape == lse_ref.shape and lse.dtype == lse_ref.dtype
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse_ref)), "fully masked rows differ"
    live = np.isfinite(lse_ref)
    _compare(lse[live], lse_ref[live], dtype, "lse")
    grads = attention.attention_backward(q, k, v, o, do, lse, mask, causal, scale)
    grads_ref = attention_reference.attention_backward(q, k, v, o_ref, do, lse_ref, mask, causal, scale)
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref):
        _compare(g, g_ref, dtype, name)
    return o, lse, grads


SHAPES = [   # (BH, Tq, Tk, d, dv)
    (1, 1, 1, 1, 1),
    (2, 1, 9, 5, 3),
    (2, 7, 1, 4, 4),
    (3, 37, 37, 17, 17),
    (2, 65, 130, 33, 7),      # T not a multiple of the block size, Tq != Tk, odd d, dv != d
    (2, 130, 65, 64, 48),     # Tq > Tk (causal: top-left aligned)
    (4, 150, 150, 64, 64),    # large enough for the threaded path
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
def test_fused_matches_reference(shape, causal, dtype, path):
    _check(*shape, causal, "none", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_kind", ["padding", "shared", "full"])
@pytest.mark.parametrize("causal", [False, True])
def test_fused_matches_reference_with_mask(mask_kind, causal, dtype, path):
    _check(3, 70, 90, 24, 40, causal, mask_kind, dtype, seed=1)
    _check(2, 140, 140, 64, 64, causal, mask_kind, dtype, seed=2)   # threaded path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
def test_noncontiguous_inputs(causal, dtype, path):
    _check(2, 70, 66, 20, 12, causal, "padding", dtype, contiguous=False)
    _check(2, 150, 150, 64, 64, causal, "none", dtype, contiguous=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_give_zeros_and_no_nan(dtype, path):
    bh, tq, tk = 2, 70, 80
    rng = np.random.default_rng(3)
    mask = rng.random((bh, tq, tk)) < 0.5
    mask[0, 5] = False                       # one fully masked query row
    mask[1, 60:] = False                     # a run of them, across a block boundary
    mask[:, :, 7] = False                    # a key nobody attends to
    q, k, v, do = (rng.standard_normal((bh, n, 16)).astype(dtype) for n in (tq, tk, tk, tq))
    o, lse = attention.attention_forward(q, k, v, mask, False, 0.25)
    dq, dk, dv = attention.attention_backward(q, k, v, o, do, lse, mask, False, 0.25)
    for x in (o, dq, dk, dv):
        assert np.all(np.isfinite(x))
    assert np.all(o[0, 5] == 0) and np.all(o[1, 60:] == 0)
    assert np.isneginf(lse[0, 5]) and np.all(np.isneginf(lse[1, 60:]))
    assert np.all(dq[0, 5] == 0) and np.all(dq[1, 60:] == 0)
    assert np.all(dk[:, 7] == 0) and np.all(dv[:, 7] == 0)
    o_ref, lse_ref = attention_reference.attention_forward(q, k, v, mask, False, 0.25)
    _compare(o, o_ref, dtype, "o")
    for name, g, g_ref in zip(("dq", "dk", "dv"), (dq, dk, dv),
                              attention_reference.attention_backward(q, k, v, o_ref, do, lse_ref, mask, False, 0.25)):
        _compare(g, g_ref, dtype, name)


def test_causal_with_more_keys_than_queries_is_top_left_aligned(path):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, n, 8)) for n in (3, 5, 5))
    o, _ = attention.attention_forward(q, k, v, None, True, 0.5)
    np.testing.assert_allclose(o[0, 0], v[0, 0], rtol=1e-12)   # query 0 sees key 0 only


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("threads", ["serial", "parallel"])
def test_small_path_serial_and_threaded(threads, causal, monkeypatch):
    """Both drivers of the small-T path (serial loop / prange over heads) on odd sizes, Tq != Tk, dv != d and
    a full mask; by default the thread policy (kernels/threads.py) picks one of them by the work in the call."""
    monkeypatch.setattr(attention.threads, "use_threads", lambda work_ns, kernel=None: threads == "parallel")
    monkeypatch.setattr(attention.threads, "record", lambda *a: None)   # no back-off state left for other tests
    _check(5, 23, 29, 7, 3, causal, "full", np.float32, seed=6)
    _check(3, 1, 1, 1, 2, causal, "padding", np.float64, seed=7)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("threads", ["serial", "parallel"])
def test_blocked_path_serial_and_threaded(threads, causal, monkeypatch):
    """Both drivers of the blocked path: the parallel backward gives each worker its own dq buffer and sums
    them after, so several heads and key blocks (Tk > BK) must give the same result as the serial one."""
    monkeypatch.setattr(attention, "SMALL_TILE", 0)
    monkeypatch.setattr(attention.threads, "use_threads", lambda work_ns, kernel=None: threads == "parallel")
    monkeypatch.setattr(attention.threads, "record", lambda *a: None)
    _check(3, 70, 131, 7, 5, causal, "padding", np.float32, seed=9)
    _check(2, 65, 67, 3, 2, causal, "full", np.float64, seed=10)


@pytest.mark.parametrize("tq, tk, small", [(32, 32, True), (128, 128, True), (64, 256, True),
                                           (129, 128, False), (128, 129, False)])
def test_threshold_selects_the_path(tq, tk, small, monkeypatch):
    """Tq * Tk <= SMALL_TILE runs the small-T kernels, anything larger the blocked ones (both directions)."""
    calls = []
    for name in ("_small_forward_serial", "_small_forward_parallel", "_forward_serial", "_forward_parallel",
                 "_small_backward_serial", "_small_backward_parallel", "_backward_serial", "_backward_parallel"):
        kernel = getattr(attention, name)
        monkeypatch.setattr(attention, name, lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    assert attention.SMALL_TILE == 128 * 128
    _check(1, tq, tk, 3, 5, True, "none", np.float32, seed=8)
    assert len(calls) == 2 and all(name.startswith("_small") == small for name in calls), calls


# --------------------------------------------------------------------------------------------------------------
# 4-D (B, H, T, c) inputs in any layout
# --------------------------------------------------------------------------------------------------------------

LAYOUTS = ["contiguous", "split", "heads-outer", "strided"]


def _in_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """x (B, H, T, c), same values, in another memory layout: C-contiguous; "split", the head-split view
    y.reshape(B, T, H, c).transpose(0, 2, 1, 3) of a (B, T, H*c) projection as a multi-head layer makes it;
    "heads-outer", memory running (H, B, T, c); "strided", memory running (c, B, H, T) with every other element
    (no axis of unit stride)."""
    b, h, t, c = x.shape
    if layout == "contiguous":
        view = np.ascontiguousarray(x)
    elif layout == "split":
        view = np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(b, t, h * c).reshape(b, t, h, c)
        view = view.transpose(0, 2, 1, 3)
    elif layout == "heads-outer":
        view = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    else:
        wide = np.zeros((c, b, h, 2 * t), x.dtype)
        wide[..., ::2] = x.transpose(3, 0, 1, 2)
        view = wide[..., ::2].transpose(1, 2, 3, 0)
    assert np.array_equal(view, x)
    return view


def _make_mask_4d(kind: str, rng, b: int, h: int, tq: int, tk: int) -> np.ndarray | None:
    """None; a (B, 1, Tq, Tk) mask shared by the heads; a key-padding mask (B, 1, 1, Tk); a full (B, H, Tq, Tk)
    mask; or one (Tq, Tk) mask for everything. Passed as they are: the kernels broadcast them."""
    if kind == "none":
        return None
    if kind == "heads":
        return rng.random((b, 1, tq, tk)) < 0.7
    if kind == "padding":
        return np.arange(tk)[None, None, None, :] < rng.integers(1, tk + 1, size=(b, 1, 1, 1))
    if kind == "full":
        return rng.random((b, h, tq, tk)) < 0.6
    return rng.random((tq, tk)) < 0.7


def _same_memory_order(x: np.ndarray, like: np.ndarray) -> bool:
    """x's axes run in memory in the same order as like's (axes of size 1 in either, whose strides say
    nothing, left out), and x is dense (a fresh output, not a view into something bigger)."""
    axes = [a for a in range(x.ndim) if x.shape[a] > 1 and like.shape[a] > 1]
    order = [sorted(axes, key=lambda a: -abs(y.strides[a])) for y in (x, like)]
    dense = sum(abs(s) * (n - 1) for s, n in zip(x.strides, x.shape)) + x.itemsize == x.nbytes
    return order[0] == order[1] and dense


def _check_4d(shape, causal, mask, dtype, layouts, seed=0):
    """The fused kernels on 4-D q, k, v, do in the given layouts: against the reference on the same views,
    against themselves on 3-D (B*H, T, c) copies, and the layout promises (o like q, dq, dk, dv like q, k, v;
    lse (B, H, Tq))."""
    b, h, tq, tk, d, dv = shape
    rng = np.random.default_rng(seed)
    shapes = [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv), (b, h, tq, dv)]
    data = [rng.standard_normal(s).astype(dtype) for s in shapes]
    q, k, v, do = (_in_layout(x, layout) for x, layout in zip(data, layouts))
    scale = 1.0 / np.sqrt(d)
    o, lse, grads = _check_against_reference(q, k, v, do, mask, causal, scale, dtype)
    assert lse.shape == (b, h, tq) and lse.flags.c_contiguous
    for out, like in zip((o, *grads), (q, q, k, v)):
        assert _same_memory_order(out, like), (out.strides, like.strides)

    def flat(x):
        return np.ascontiguousarray(x).reshape(b * h, *x.shape[2:])
    mask3 = None if mask is None else flat(np.broadcast_to(mask, (b, h, tq, tk)))
    o3, lse3 = attention.attention_forward(flat(q), flat(k), flat(v), mask3, causal, scale)
    grads3 = attention.attention_backward(flat(q), flat(k), flat(v), o3, flat(do), lse3, mask3, causal, scale)
    for name, got, want in zip(("o", "lse", "dq", "dk", "dv"), (o, lse, *grads), (o3, lse3, *grads3)):
        got = got.reshape(want.shape)
        live = np.isfinite(want)
        assert np.array_equal(live, np.isfinite(got)), name
        _compare(got[live], want[live], dtype, f"{name} vs 3-D")


SHAPES_4D = [   # (B, H, Tq, Tk, d, dv)
    (2, 3, 37, 37, 17, 17),     # odd d, T not a multiple of any block or tile size
    (1, 2, 70, 66, 20, 12),     # B = 1, Tq != Tk, dv != d
    (3, 1, 9, 13, 5, 3),        # H = 1; small enough for the serial small-T driver
    (2, 2, 1, 1, 1, 1),         # T = 1, d = 1
    (2, 2, 150, 140, 64, 32),   # T > 128 (the blocked path unless forced), threaded
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_4d_inputs_in_any_layout(layout, causal, dtype, path):
    for seed, shape in enumerate(SHAPES_4D):
        _check_4d(shape, causal, None, dtype, [layout] * 4, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_kind", ["heads", "padding", "full", "shared"])
@pytest.mark.parametrize("causal", [False, True])
def test_4d_masks(mask_kind, causal, dtype, path):
    rng = np.random.default_rng(9)
    for shape in [(2, 3, 37, 45, 16, 8), (2, 2, 140, 130, 32, 32)]:
        mask = _make_mask_4d(mask_kind, rng, *shape[:4])
        if mask_kind == "heads":                  # broadcast over the heads as a view, never materialised
            assert attention._mask_arg(mask, shape[:4]).strides[1] == 0
        _check_4d(shape, causal, mask, dtype, ["split"] * 4)


def test_4d_mixed_layouts(path):
    """q, k, v, do each in its own layout; every output follows its own input."""
    for shape in [(2, 3, 33, 29, 12, 20), (2, 2, 130, 129, 16, 24)]:
        _check_4d(shape, True, None, np.float32, ["split", "contiguous", "heads-outer", "strided"])
        _check_4d(shape, False, None, np.float64, ["strided", "split", "contiguous", "split"])


def test_head_split_views_round_trip_without_copies(path):
    """The multi-head layer's use: q, k, v, do are head-split views of (B, T, H*dh) arrays, and o, dq, dk, dv
    come back as (B, T, H, dh) buffers, so the reshape back to (B, T, H*dh) is a view, not a copy."""
    b, h, t, dh = 2, 4, 40, 8
    rng = np.random.default_rng(10)
    q, k, v, do = (rng.standard_normal((b, t, h * dh)).reshape(b, t, h, dh).transpose(0, 2, 1, 3) for _ in range(4))
    o, lse = attention.attention_forward(q, k, v, None, True, 0.3)
    grads = attention.attention_backward(q, k, v, o, do, lse, None, True, 0.3)
    for out in (o, *grads):
        assert out.transpose(0, 2, 1, 3).flags.c_contiguous
        assert np.shares_memory(out.transpose(0, 2, 1, 3).reshape(b, t, h * dh), out)
    assert lse.shape == (b, h, t)
    contiguous = [np.ascontiguousarray(x) for x in (q, k, v, do)]
    o, lse = attention.attention_forward(*contiguous[:3], None, True, 0.3)
    grads = attention.attention_backward(*contiguous[:3], o, contiguous[3], lse, None, True, 0.3)
    assert all(x.flags.c_contiguous for x in (o, lse, *grads))


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 3), tq=st.integers(1, 40), tk=st.integers(1, 40), d=st.integers(1, 20),
       dv=st.integers(1, 20), layout=st.sampled_from(LAYOUTS), causal=st.booleans(), blocked=st.booleans(),
       seed=st.integers(0, 2**16))
def test_4d_hypothesis(b, h, tq, tk, d, dv, layout, causal, blocked, seed):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attention, "SMALL_TILE", 0 if blocked else attention.SMALL_TILE)
        _check_4d((b, h, tq, tk, d, dv), causal, None, np.float64, [layout] * 4, seed)


def test_head_views_are_typed_layout_a():
    """`_head` hands every input to the per-head kernels as a layout-'A' (T, c) view, C-contiguous or not, so
    those kernels compile once per dtype and mask type for all input layouts (compile time of a cold cache)."""
    head = numba.njit(lambda x: attention._head(x, 1))
    x = np.zeros((2, 3, 4, 5), np.float32)
    for view in (x, _in_layout(x, "split"), _in_layout(x, "heads-outer")):
        np.testing.assert_array_equal(head(view), view[0, 1])
    assert {sig.return_type.layout for sig in head.nopython_signatures} == {"A"}


@pytest.mark.parametrize("causal", [False, True])
def test_reference_backward_matches_finite_differences(causal):
    """The ground truth itself: central differences of L = sum(o * do) in float64."""
    rng = np.random.default_rng(5)
    bh, tq, tk, d, dv = 2, 3, 4, 3, 2
    q, k, v = rng.standard_normal((bh, tq, d)), rng.standard_normal((bh, tk, d)), rng.standard_normal((bh, tk, dv))
    do = rng.standard_normal((bh, tq, dv))
    mask = np.broadcast_to(rng.random((bh, tq, tk)) < 0.7, (bh, tq, tk)).copy()
    mask[1, 2] = False                                           # a fully masked row
    scale = 0.7

    def loss(q, k, v):
        return np.sum(attention_reference.attention_forward(q, k, v, mask, causal, scale)[0] * do)

    o, lse = attention_reference.attention_forward(q, k, v, mask, causal, scale)
    grads = attention_reference.attention_backward(q, k, v, o, do, lse, mask, causal, scale)
    eps = 1e-6
    for which, g in enumerate(grads):
        args = [q, k, v]
        numeric = np.zeros_like(args[which])
        for idx in np.ndindex(*args[which].shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which][idx] += eps
            minus[which][idx] -= eps
            numeric[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("small_tile", [None, 0], ids=["small", "blocked"])
def test_runs_with_jit_disabled(small_tile):
    """NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (the stack tiles, matmul's micro-kernel with and
    without accumulation, and exp2 have numpy fallbacks), on the small-T path and on the blocked one."""
    code = (
        "import numpy as np\n"
        "from tinygrad_attn.kernels import attention as A, attention_reference as R\n"
        f"A.SMALL_TILE = {small_tile} if {small_tile} is not None else A.SMALL_TILE\n"
        "rng = np.random.default_rng(0)\n"
        "q, k, v, do = (rng.standard_normal((1, n, 3)) for n in (3, 5, 5, 3))\n"
        "mask = np.broadcast_to(np.array([True, True, False, True, True]), (1, 3, 5))\n"
        "o, lse = A.attention_forward(q, k, v, mask, True, 0.5)\n"
        "g = A.attention_backward(q, k, v, o, do, lse, mask, True, 0.5)\n"
        "o2, lse2 = R.attention_forward(q, k, v, mask, True, 0.5)\n"
        "g2 = R.attention_backward(q, k, v, o2, do, lse2, mask, True, 0.5)\n"
        "for a, b in zip((o, lse) + g, (o2, lse2) + g2):\n"
        "    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
