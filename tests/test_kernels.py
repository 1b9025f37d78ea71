"""The Numba kernels (`kernels.fast`) against their numpy twins (`kernels.reference`)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_attn.kernels import fast, reference, threads
from tinygrad_attn.kernels.elementwise import multiply_parallel, scale_parallel
from tinygrad_attn.kernels.fastexp import (
    exp_f32,
    exp_f64,
    exp_nonpositive_f32,
    exp_nonpositive_f64,
    fexp,
    fexp_nonpositive,
)
from tinygrad_attn.kernels.reduce import sum_blocks, sum_blocks_parallel, sum_flat

DTYPES = [np.float32, np.float64]
SIZES = [1, 7, 13, 31, 97, 130]
ELEMENTWISE = fast.ELEMENTWISE_BLOCK
BIG_ROWS = 515                                      # (BIG_ROWS, 64): an odd number of rows, many per thread


@pytest.fixture(params=["serial", "parallel"])
def path(request, monkeypatch):
    """Run the test with the thread policy sending every call to the `*_serial` or the `*_parallel` kernel."""
    monkeypatch.setattr(threads, "use_threads", lambda work_ns, kernel=None: request.param == "parallel")
    monkeypatch.setattr(threads, "record", lambda *a: None)   # no back-off state left for other tests
    return request.param


def tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def randn(*shape, dtype=np.float32, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def check(got, want, dtype):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **tol(dtype))


# ----------------------------------------------------------------------------- exp


def vectorised(scalar_exp):
    """A Numba loop y[i] = scalar_exp(x[i]), inlined as in the kernels."""
    from numba import njit

    @njit
    def apply(x, y):
        for i in range(x.size):
            y[i] = scalar_exp(x[i])

    return apply


@pytest.fixture(scope="module")
def vexp():
    return vectorised(fexp)


def ulp_error(x, y):
    """|y - exp(x)| in units of the spacing of the correctly rounded result."""
    exact = np.exp(x.astype(np.float64))
    with np.errstate(over="ignore"):
        spacing = np.spacing(exact.astype(x.dtype)).astype(np.float64)
    return np.abs(y.astype(np.float64) - exact) / spacing


def test_exp_f32_whole_range(vexp):
    # every 64th float32 between -87.3 (smallest normal result) and 88.72 (largest finite result)
    neg = np.arange(0, np.float32(87.3).view(np.int32), 64, dtype=np.int32).view(np.float32)
    pos = np.arange(0, np.float32(88.72).view(np.int32), 64, dtype=np.int32).view(np.float32)
    x = np.concatenate([-neg, pos])
    y = np.empty_like(x)
    vexp(x, y)
    assert ulp_error(x, y).max() <= 2.0


def test_exp_f64_accuracy(vexp):
    x = np.random.default_rng(0).uniform(-708, 709, 200_000)
    y = np.empty_like(x)
    vexp(x, y)
    assert ulp_error(x, y).max() <= 2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(vexp, dtype):
    big = 1e30 if dtype == np.float32 else 1e300
    x = np.array([-np.inf, np.inf, np.nan, -big, big, 0.0, -0.0, 1.0, -1000.0, 1000.0], dtype)
    y = np.empty_like(x)
    vexp(x, y)
    np.testing.assert_array_equal(y[[0, 1, 3, 4, 5, 6, 8, 9]], np.array([0, np.inf, 0, np.inf, 1, 1, 0, np.inf], dtype))
    assert np.isnan(y[2])
    np.testing.assert_allclose(y[7], np.e, rtol=1e-6)


def test_exp_underflow_to_denormals(vexp):
    x = np.linspace(-103.9, -87.4, 1001).astype(np.float32)
    y = np.empty_like(x)
    vexp(x, y)
    exact = np.exp(x.astype(np.float64))
    assert np.abs(y - exact).max() <= 2 * np.finfo(np.float32).smallest_subnormal
    assert (y >= 0).all()


@pytest.fixture(scope="module")
def vexp_nonpositive():
    return vectorised(fexp_nonpositive)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_of_nonpositive_inputs(vexp_nonpositive, dtype):
    """softmax's exp (of x - max <= 0): as accurate as fexp down to its cut-off, 0 below it, NaN kept."""
    if dtype == np.float32:                          # every 64th float32 from -0 to -87 (the cut-off)
        x = -np.arange(0, np.float32(87.0).view(np.int32), 64, dtype=np.int32).view(np.float32)
    else:
        x = np.random.default_rng(0).uniform(-708, 0, 200_000)
    y = np.empty_like(x)
    vexp_nonpositive(x, y)
    assert ulp_error(x, y).max() <= 2.0
    cut = -87.0 if dtype == np.float32 else -708.0
    special = np.array([-np.inf, np.nan, -0.0, 0.0, cut, np.nextafter(dtype(cut), dtype(-np.inf)), -1e30], dtype)
    y = np.empty_like(special)
    vexp_nonpositive(special, y)
    np.testing.assert_array_equal(y[[0, 2, 3, 5, 6]], np.array([0, 1, 1, 0, 0], dtype))
    assert np.isnan(y[1]) and y[4] == pytest.approx(np.exp(cut), rel=4 * float(np.finfo(dtype).eps))


def test_scalar_exp_functions_callable_alone():
    assert exp_f32(np.float32(0.5)) == pytest.approx(np.exp(0.5), rel=1e-7)
    assert exp_f64(0.5) == pytest.approx(np.exp(0.5), rel=1e-15)
    assert exp_nonpositive_f32(np.float32(-0.5)) == pytest.approx(np.exp(-0.5), rel=1e-7)
    assert exp_nonpositive_f64(-0.5) == pytest.approx(np.exp(-0.5), rel=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_max_integer_keys(dtype):
    from tinygrad_attn.kernels.rowmax import row_max_f32, row_max_f64

    f = row_max_f32 if dtype == np.float32 else row_max_f64
    for x in ([-np.inf, -np.inf], [-3.0, -1.0, -2.0], [-0.0, 0.0], [1e30, -1e30, np.inf], [5.0], []):
        x = np.array(x, dtype)
        rows = np.stack([np.zeros_like(x), x])            # the max of row 1, not of the whole array
        assert f(rows, 1) == np.max(x, initial=-np.inf)
    assert np.isnan(f(np.array([[1.0, np.nan, 2.0]], dtype), 0))
    x = randn(7, 1000, dtype=dtype, seed=5)
    assert [f(x, i) for i in range(7)] == list(x.max(axis=1))


# ----------------------------------------------------------------------------- matmul


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 7, 1), (7, 1, 13), (13, 31, 7), (97, 13, 31), (130, 97, 131),
                                   (64, 64, 64)])
def test_matmul_2d(dtype, m, k, n):
    a, b = randn(m, k, dtype=dtype), randn(k, n, dtype=dtype, seed=1)
    check(fast.matmul(a, b), reference.matmul(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_transposed_views(dtype, path):
    a, b = randn(67, 45, dtype=dtype), randn(53, 45, dtype=dtype, seed=1)
    check(fast.matmul(a, b.T), a @ b.T, dtype)                      # A . B^T (backward's dA)
    check(fast.matmul(a.T, randn(67, 29, dtype=dtype)), a.T @ randn(67, 29, dtype=dtype), dtype)   # A^T . B
    check(fast.matmul(b.T.T, a.T), b @ a.T, dtype)
    s = randn(90, 80, dtype=dtype, seed=2)[::2, 1::3]               # neither row- nor column-contiguous
    check(fast.matmul(s, s.T), s @ s.T, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_attention_shapes(dtype):
    q, k = randn(2, 4, 33, 8, dtype=dtype), randn(2, 4, 33, 8, dtype=dtype, seed=1)
    scores = fast.matmul(q, k.swapaxes(-1, -2))
    check(scores, q @ k.swapaxes(-1, -2), dtype)
    check(fast.matmul(scores, k), scores @ k, dtype)
    check(fast.matmul(q.swapaxes(-1, -2), scores), q.swapaxes(-1, -2) @ scores, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_broadcast_batches(dtype, path):
    a = randn(3, 1, 5, 7, dtype=dtype)
    w = randn(7, 4, dtype=dtype, seed=1)
    check(fast.matmul(a, w), a @ w, dtype)                              # 2-D right operand
    b = np.broadcast_to(randn(1, 6, 7, 4, dtype=dtype, seed=2), (3, 6, 7, 4))   # zero-stride batch axis
    check(fast.matmul(a, b), a @ b, dtype)
    m = np.moveaxis(randn(5, 3, 7, dtype=dtype, seed=3), 0, 1)          # (3, 5, 7) moveaxis view
    check(fast.matmul(m, w), m @ w, dtype)


def test_matmul_parallel_path_and_batches(path):
    a, b = randn(4, 150, 70), randn(70, 130, seed=1)
    check(fast.matmul(a, b), a @ b, np.float32)
    big = randn(300, 200, seed=2)
    check(fast.matmul(big, big.T), big @ big.T, np.float32)


def test_matmul_degenerate_shapes():
    a = randn(3, 0)
    assert np.array_equal(fast.matmul(a, randn(0, 4)), np.zeros((3, 4), np.float32))
    assert fast.matmul(randn(0, 5), randn(5, 4)).shape == (0, 4)
    assert fast.matmul(randn(2, 0, 5), randn(5, 4)).shape == (2, 0, 4)


def test_matmul_other_dtypes_fall_back():
    a = np.arange(6).reshape(2, 3)
    assert np.array_equal(fast.matmul(a, a.T), a @ a.T)
    h = a.astype(np.float16)
    assert fast.matmul(h, h.T).dtype == np.float16


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,k,n", [(8, 1, 32), (9, 1, 33), (17, 5, 16), (7, 3, 8), (15, 40, 15), (16, 64, 17),
                                   (33, 9, 47), (65, 70, 95), (200, 3, 64)])
def test_matmul_tile_edges(dtype, trans_a, trans_b, m, k, n):
    """Edges of the 8-row x (2 or 1)-vector tiles: m not a multiple of 8, n not a multiple of the
    panel width (32/16 float32, 16/8 float64), k = 1, narrow n, both operands in place or transposed."""
    a = randn(k, m, dtype=dtype, seed=m).T if trans_a else randn(m, k, dtype=dtype, seed=m)
    b = randn(n, k, dtype=dtype, seed=n).T if trans_b else randn(k, n, dtype=dtype, seed=n)
    check(fast.matmul(a, b), a @ b, dtype)


def test_matmul_parallel_split_and_edges(path):
    a = randn(3, 70, 130, seed=4)                                   # 3 batches, m % 8 != 0, n % 32 != 0
    b = randn(90, 130, seed=5).T
    check(fast.matmul(a, b), a @ b, np.float32)
    at = randn(1000, 21, seed=6).T                                  # A^T . B with 21 rows: one partial tile per task
    check(fast.matmul(at, randn(1000, 50, seed=7)), at @ randn(1000, 50, seed=7), np.float32)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 40), trans_a=st.booleans(), trans_b=st.booleans())
def test_matmul_hypothesis(m, k, n, trans_a, trans_b):
    a = randn(k, m, seed=m).T if trans_a else randn(m, k, seed=m)
    b = randn(n, k, seed=n).T if trans_b else randn(k, n, seed=n)
    check(fast.matmul(a, b), a @ b, np.float32)


# ----------------------------------------------------------------------------- softmax family


def softmax_inputs(dtype):
    """2-D and 3-D, contiguous and strided/transposed, serial and parallel sizes."""
    yield randn(1, 1, dtype=dtype)
    for c in SIZES:
        yield randn(7, c, dtype=dtype, scale=3)
    yield randn(3, 5, 31, dtype=dtype, seed=1)
    yield randn(31, 13, dtype=dtype, seed=2).T                      # transposed view
    yield np.moveaxis(randn(6, 7, 9, dtype=dtype, seed=3), 0, -1)   # moveaxis view, as the ops layer passes
    yield randn(BIG_ROWS, 64, dtype=dtype, seed=4)                  # parallel path


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_backward(dtype, path):
    for x in softmax_inputs(dtype):
        y = fast.softmax(x)
        check(y, reference.softmax(x), dtype)
        dy = randn(*x.shape, dtype=dtype, seed=9)
        check(fast.softmax_backward(y, dy), reference.softmax_backward(y, dy), dtype)
        check(fast.softmax_backward(y, np.swapaxes(dy.swapaxes(0, -1).copy(), 0, -1)),
              reference.softmax_backward(y, dy), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_and_backward(dtype, path):
    for x in softmax_inputs(dtype):
        y = fast.log_softmax(x)
        check(y, reference.log_softmax(x), dtype)
        dy = randn(*x.shape, dtype=dtype, seed=9)
        check(fast.log_softmax_backward(y, dy), reference.log_softmax_backward(y, dy), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_masked_and_extreme_rows(dtype):
    x = randn(6, 13, dtype=dtype, scale=3)
    x[0, ::2] = -np.inf                          # partly masked
    x[1] = -np.inf                               # fully masked: zeros, not NaN
    x[2] = np.linspace(-1e4, 1e4, 13)            # huge magnitudes
    x[3, 5] = 1e4
    x[4] = -1e4
    y = fast.softmax(x)
    assert np.isfinite(y).all()
    assert np.array_equal(y[1], np.zeros(13, dtype))
    assert np.array_equal(y[0, ::2], np.zeros(7, dtype))
    check(y, reference.softmax(x), dtype)
    np.testing.assert_allclose(y[[0, 2, 3, 4, 5]].sum(axis=-1), 1, rtol=1e-5)
    dy = randn(6, 13, dtype=dtype)
    check(fast.softmax_backward(y, dy), reference.softmax_backward(y, dy), dtype)
    finite = x[[0, 2, 3, 4, 5]]
    check(fast.log_softmax(finite), reference.log_softmax(finite), dtype)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 20), cols=st.integers(1, 70), scale=st.sampled_from([0.1, 1.0, 30.0, 1e3]),
       seed=st.integers(0, 1000))
def test_softmax_hypothesis(rows, cols, scale, seed):
    x = randn(rows, cols, seed=seed, scale=scale)
    check(fast.softmax(x), reference.softmax(x), np.float32)


def test_softmax_edge_shapes_and_dtypes():
    assert fast.softmax(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert fast.softmax(np.zeros((3, 0), np.float32)).shape == (3, 0)
    np.testing.assert_array_equal(fast.softmax(np.array([2.0], np.float32)), [1.0])
    h = np.array([[1.0, 2.0]], np.float16)
    assert fast.softmax(h).dtype == np.float16


def exact_log_softmax(x):
    """log_softmax in extended precision (np.longdouble), from the inputs as given."""
    xl = x.astype(np.longdouble)
    m = np.max(xl, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return (xl - m) - np.log(np.sum(np.exp(xl - m), axis=-1, keepdims=True))


def large_logit_rows(dtype):
    """Rows where log s is tiny next to the max: magnitudes 1e2, 1e4, 1e30, equal entries, -inf entries."""
    rows = [[10000.0, 9994.0, 9990.0], [1e30, 1e30, 1e30], [100.0, 99.0, -np.inf], [-1e4, -1e4 - 3, -1e4 - 7],
            [1e30, 1e30 * (1 - 1e-6), -np.inf], [-np.inf, 0.0, -np.inf], [3.0, 3.0, 3.0]]
    return np.array(rows, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernels", [fast, reference], ids=["numba", "numpy"])
def test_log_softmax_and_cross_entropy_at_large_magnitudes(dtype, kernels):
    """(x - m) - log s, not x - (m + log s): float32 [10000, 9994] gave -0.0029297 (exact -0.0024757)."""
    x = large_logit_rows(dtype)
    want = exact_log_softmax(x)
    ulps = 4 * np.finfo(dtype).eps * np.maximum(1, np.abs(want))
    finite = np.isfinite(want)
    got = kernels.log_softmax(x)
    assert (np.isneginf(got) == np.isneginf(want)).all()
    assert (np.abs(got[finite] - want[finite]) <= ulps[finite]).all(), got - want
    t = np.array([0, 1, 0, 2, 1, 1, 2])
    loss, logsum = kernels.cross_entropy_forward(x, t, -100)
    picked = -want[np.arange(len(t)), t]
    assert (np.abs(loss - picked) <= ulps[np.arange(len(t)), t]).all(), loss - picked
    np.testing.assert_allclose(loss[1], np.log(3), rtol=4 * np.finfo(dtype).eps)      # equal 1e30 logits: ln 3
    d = kernels.cross_entropy_backward(x, t, logsum, -100, 1.0)
    p = np.exp(want)
    p[np.arange(len(t)), t] -= 1
    np.testing.assert_allclose(d, p.astype(dtype), atol=4 * np.finfo(dtype).eps)


# ----------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", [(1, 1), (7, 13), (97, 31), (BIG_ROWS, 64)])
def test_cross_entropy(dtype, n, c, path):
    x = randn(n, c, dtype=dtype, scale=3)
    t = np.random.default_rng(1).integers(0, c, n)
    t[::3] = -100                                    # ignored rows
    loss, logsum = fast.cross_entropy_forward(x, t, -100)
    want_loss, want_logsum = reference.cross_entropy_forward(x, t, -100)
    check(loss, want_loss, dtype)
    check(logsum, want_logsum, dtype)
    assert (loss[::3] == 0).all()
    d = fast.cross_entropy_backward(x, t, logsum, -100, 0.25)
    check(d, reference.cross_entropy_backward(x, t, want_logsum, -100, 0.25), dtype)
    assert (d[::3] == 0).all()


def test_cross_entropy_strided_logits_and_no_ignore(path):
    x = randn(40, 9, scale=2).T                      # (9, 40) transposed view
    t = np.arange(9) % 40
    for ignore in (None, 5):
        loss, lse = fast.cross_entropy_forward(x, t, ignore)
        want = reference.cross_entropy_forward(x, t, ignore)
        check(loss, want[0], np.float32)
        check(fast.cross_entropy_backward(x, t, lse, ignore, 1.0),
              reference.cross_entropy_backward(x, t, want[1], ignore, 1.0), np.float32)


# ----------------------------------------------------------------------------- gelu, layer norm


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu(dtype, path):
    for x in [randn(1, dtype=dtype), randn(97, dtype=dtype, scale=4), randn(13, 31, dtype=dtype).T,
              randn(BIG_ROWS, 64, dtype=dtype, scale=3), np.array([-50.0, -10.0, 0.0, 10.0, 50.0], dtype)]:
        check(fast.gelu(x), reference.gelu(x), dtype)
        dy = randn(*x.shape, dtype=dtype, seed=1)
        check(fast.gelu_backward(x, dy), reference.gelu_backward(x, dy), dtype)
    assert fast.gelu(np.zeros((0, 3), dtype)).shape == (0, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (3, 5, 31), (130, 97), (BIG_ROWS, 64)])
def test_layer_norm(dtype, shape, path):
    x = randn(*shape, dtype=dtype, scale=2) + 1
    w, b = randn(shape[-1], dtype=dtype, seed=1), randn(shape[-1], dtype=dtype, seed=2)
    got, want = fast.layer_norm(x, w, b, 1e-5), reference.layer_norm(x, w, b, 1e-5)
    for g, r in zip(got, want):
        check(g, r, dtype)
    dy = randn(*shape, dtype=dtype, seed=3)
    got = fast.layer_norm_backward(dy, x, w, want[1], want[2])
    ref = reference.layer_norm_backward(dy, x, w, want[1], want[2])
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_allclose(g, r, rtol=tol(dtype)["rtol"], atol=tol(dtype)["atol"] * np.sqrt(x.size))


def test_layer_norm_strided_input(path):
    x = randn(16, 40, scale=2)[:, ::2]              # (16, 20), not contiguous
    w, b = np.ones(20, np.float32), np.zeros(20, np.float32)
    for g, r in zip(fast.layer_norm(x, w, b, 1e-5), reference.layer_norm(x, w, b, 1e-5)):
        check(g, r, np.float32)


# ----------------------------------------------------------------------------- product


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 13), (1 << 18,), (521, 523), (3, 5, 17477)])
def test_multiply(dtype, shape, path):
    a, b = randn(*shape, dtype=dtype), randn(*shape, dtype=dtype, seed=1)
    check(fast.multiply(a, b), a * b, dtype)
    check(reference.multiply(a, b), a * b, dtype)
    wide = randn(*shape[:-1], 2 * shape[-1], dtype=dtype)[..., ::2]          # strided: numpy's product
    check(fast.multiply(wide, b), wide * b, dtype)
    check(fast.multiply(a, b[..., :1]), a * b[..., :1], dtype)              # broadcast: numpy's product
    one = np.broadcast_to(np.asarray(1.5, dtype), shape)                     # one value, zero strides (Sum's
    check(fast.multiply(one, b), 1.5 * b, dtype)                             # gradient): the scale kernel
    check(fast.multiply(a, dtype(-2.0)), a * dtype(-2.0), dtype)             # a 0-d operand ...
    check(fast.multiply(np.full((1,) * len(shape), 3, dtype), b), 3 * b, dtype)   # ... and a size-1 one
    row = np.broadcast_to(b[:1], shape)                                      # one value per column: numpy's
    check(fast.multiply(row, a), row * a, dtype)


def test_multiply_by_one_value_that_broadcasts_the_other_operand_up():
    a, one = randn(5, 7), np.full((2, 1, 1), 2, np.float32)               # the output is (2, 5, 7), not a's shape
    big = randn(1 << 16)
    check(fast.multiply(a, one), a * one, np.float32)
    check(fast.multiply(big, np.ones((3, 1), np.float32)), big * np.ones((3, 1), np.float32), np.float32)
    check(fast.multiply(big, np.float64(2)), big * np.float64(2), np.float32)  # mixed dtypes: numpy's rules


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiply_kernel_alone_contiguous_and_strided(dtype):
    n = 3 * ELEMENTWISE + 5                                                  # blocks and a ragged last one
    a, b = randn(2 * n, dtype=dtype), randn(2 * n, dtype=dtype, seed=1)
    for x, y in ((a[:n], b[:n]), (a[::2], b[1::2])):
        out = np.empty(n, dtype)
        multiply_parallel(x, y, out, ELEMENTWISE)
        check(out, x * y, dtype)
        scale_parallel(x, dtype(0.75), out, ELEMENTWISE)
        check(out, x * dtype(0.75), dtype)


# ----------------------------------------------------------------------------- whole-array sum


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 13), (4099,), (3, 5, 331), (BIG_ROWS, 64)])
def test_sum_all(dtype, shape, path):
    x = randn(*shape, dtype=dtype)
    want = np.asarray(x.astype(np.float64).sum(), dtype)           # exact to float64, then rounded
    check(reference.sum_all(x), want, dtype)
    check(fast.sum_all(x), want, dtype)
    check(np.asarray(sum_flat(x.reshape(-1)), dtype), want, dtype)  # the kernel alone, contiguous ...
    every_third = randn(3 * (x.size + 1), dtype=dtype)[1::3]        # ... and on a strided 1-D view (no copy)
    assert not every_third.flags.c_contiguous
    check(np.asarray(sum_flat(every_third), dtype), reference.sum_all(every_third), dtype)
    for v in (x.reshape(-1), every_third):                          # in blocks, on one thread or several
        serial, parallel = sum_blocks(v, 1000), sum_blocks_parallel(v, 1000)
        assert serial == parallel                                   # the same blocks: the same bits
        check(np.asarray(serial, dtype), reference.sum_all(v), dtype)
    strided = randn(*shape, 3, dtype=dtype)[..., 1]                 # the wrapper: numpy's sum, same result
    check(fast.sum_all(strided), reference.sum_all(strided), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_all_special_values(dtype, path):
    x = np.ones(fast.SUM_MIN_SIZE, dtype)
    x[5] = np.inf
    assert fast.sum_all(x) == np.inf
    x[6] = -np.inf
    assert np.isnan(fast.sum_all(x))
    x[5:7] = [np.nan, 1.0]
    assert np.isnan(fast.sum_all(x))


# ----------------------------------------------------------------------------- embedding backward, Adam


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ids_shape,num", [((1,), 1), ((7,), 3), ((2, 13), 5), ((32, 32), 16)])
def test_embedding_backward(dtype, ids_shape, num):
    ids = np.random.default_rng(1).integers(0, num, ids_shape)     # small tables: ids repeat
    dy = randn(*ids_shape, 11, dtype=dtype)
    want = np.zeros((num, 11), dtype)
    for i, r in enumerate(ids.reshape(-1)):                        # by hand: row r gets every dy row that used it
        want[r] += dy.reshape(-1, 11)[i]
    check(reference.embedding_backward(ids, dy, num), want, dtype)
    check(fast.embedding_backward(ids, dy, num), want, dtype)
    strided = randn(*ids_shape, 22, dtype=dtype)[..., ::2]          # not contiguous
    check(fast.embedding_backward(ids, strided, num), reference.embedding_backward(ids, strided, num), dtype)


def test_embedding_backward_out_of_range_goes_to_numpy():
    with pytest.raises(IndexError):                               # never a write outside the table
        fast.embedding_backward(np.array([0, 3]), randn(2, 4), 3)


def _adam_args(dtype, shape, seed=0):
    p, g = randn(*shape, dtype=dtype, seed=seed), randn(*shape, dtype=dtype, seed=seed + 1)
    m, v = randn(*shape, dtype=dtype, seed=seed + 2) * 0.1, np.abs(randn(*shape, dtype=dtype, seed=seed + 3))
    return p, g, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 13), (3, 5, 31), (BIG_ROWS, 64)])
@pytest.mark.parametrize("l2,shrink", [(0.0, 1.0), (0.3, 1.0), (0.0, 0.99)])
def test_adam_update(dtype, shape, l2, shrink):
    scalars = (0.9, 0.999, 0.01 / (1 - 0.9 ** 3), np.sqrt(1 - 0.999 ** 3), 1e-8, l2, shrink)
    want, got = _adam_args(dtype, shape), _adam_args(dtype, shape)
    reference.adam_update(*want, *scalars)
    fast.adam_update(*got, *scalars)
    for g, w in zip(got, want):                                   # p, m and v all updated in place alike
        np.testing.assert_allclose(g, w, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).tiny)


def test_adam_update_non_contiguous_falls_back():
    p, g, m, v = _adam_args(np.float32, (6, 8))
    pt, mt, vt = p.T, m.T, v.T                                    # transposed views, updated in place
    want = [x.copy() for x in (pt, g.T, mt, vt)]
    reference.adam_update(*want, 0.9, 0.999, 0.1, 0.5, 1e-8, 0.0, 1.0)
    fast.adam_update(pt, g.T, mt, vt, 0.9, 0.999, 0.1, 0.5, 1e-8, 0.0, 1.0)
    for got, w in zip((pt, mt, vt), (want[0], want[2], want[3])):
        np.testing.assert_array_equal(got, w)


# ----------------------------------------------------------------------------- package plumbing


def test_kernels_package_exports():
    import tinygrad_attn.kernels as K

    for name in fast.__all__:
        assert getattr(K, name) is getattr(fast, name)
        assert callable(getattr(reference, name))


def test_runs_without_jit():
    """With NUMBA_DISABLE_JIT=1 the kernels run as plain Python and still match the reference."""
    code = """
import numpy as np
from tinygrad_attn.kernels import fast, reference
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 5)).astype(np.float32)
w = rng.standard_normal((5, 4)).astype(np.float32)
np.testing.assert_allclose(fast.matmul(x, w), x @ w, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(fast.softmax(x), reference.softmax(x), rtol=1e-5, atol=1e-7)
t = np.array([0, 4, -100])
np.testing.assert_allclose(fast.cross_entropy_forward(x, t, -100)[0], reference.cross_entropy_forward(x, t, -100)[0],
                           rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(fast.gelu(x), reference.gelu(x), rtol=1e-5, atol=1e-6)
print("ok")
"""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
