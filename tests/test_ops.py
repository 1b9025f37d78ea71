"""Every Tensor op: forward values against numpy, and gradients against finite differences (float64),
on shapes that broadcast, scalars, size-1, odd and prime sizes, on both backends."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_attn as ta
from tinygrad_attn.kernels import fast, threads

BROADCAST_PAIRS = [((3, 1, 4), (5, 4)), ((), (7,)), ((1,), (13, 1)), ((2, 3), (2, 3)), ((5, 1), ())]
UNARY_SHAPES = [(), (1,), (7,), (3, 1, 5), (2, 13)]


def leaf(shape, rng, positive=False, dtype=np.float64):
    x = rng.standard_normal(shape)
    return ta.Tensor(np.abs(x) + 0.5 if positive else x, requires_grad=True, dtype=dtype)


BINARY = {  # name: (tensor op, numpy op, second operand must be positive)
    "add": (lambda a, b: a + b, np.add, False),
    "sub": (lambda a, b: a - b, np.subtract, False),
    "mul": (lambda a, b: a * b, np.multiply, False),
    "div": (lambda a, b: a / b, np.divide, True),
}


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
def test_binary_ops(name, shapes, backend, rng):
    op, reference, positive = BINARY[name]
    a, b = leaf(shapes[0], rng), leaf(shapes[1], rng, positive)
    np.testing.assert_allclose(op(a, b).data, reference(a.data, b.data))
    assert ta.gradcheck(op, [a, b])
    assert op(a, b).shape == np.broadcast_shapes(shapes[0], shapes[1])


@pytest.mark.parametrize("shapes", [((3, 1, 4), (5, 4)), ((2, 3), ()), ((7,), (1,))], ids=str)
def test_pow_tensor_exponent(shapes, backend, rng):
    a, b = leaf(shapes[0], rng, positive=True), leaf(shapes[1], rng)
    np.testing.assert_allclose((a**b).data, a.data**b.data)
    assert ta.gradcheck(lambda x, y: x**y, [a, b])


UNARY = {  # name: (tensor op, numpy op, needs positive input)
    "neg": (lambda a: -a, np.negative, False),
    "exp": (lambda a: a.exp(), np.exp, False),
    "log": (lambda a: a.log(), np.log, True),
    "sqrt": (lambda a: a.sqrt(), np.sqrt, True),
    "abs": (lambda a: a.abs(), np.abs, False),
    "tanh": (lambda a: a.tanh(), np.tanh, False),
    "sigmoid": (lambda a: a.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), False),
    "relu": (lambda a: a.relu(), lambda x: np.maximum(x, 0), False),
    "gelu": (lambda a: a.gelu(), lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))), False),
    "pow2": (lambda a: a**2, np.square, False),
    "rpow": (lambda a: 3.0**a, lambda x: 3.0**x, False),
    "rsub": (lambda a: 1.5 - a, lambda x: 1.5 - x, False),
    "rdiv": (lambda a: 2.0 / a, lambda x: 2.0 / x, True),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
def test_unary_ops(name, shape, backend, rng):
    op, reference, positive = UNARY[name]
    a = leaf(shape, rng, positive)
    np.testing.assert_allclose(op(a).data, reference(a.data), rtol=1e-12, atol=1e-12)
    assert ta.gradcheck(op, [a])


def test_sigmoid_is_stable_for_large_inputs():
    x = ta.Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = x.sigmoid()
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    y.sum().backward()
    assert np.all(np.isfinite(x.grad))


REDUCTIONS = {
    "sum": (lambda a, **k: a.sum(**k), np.sum),
    "mean": (lambda a, **k: a.mean(**k), np.mean),
    "max": (lambda a, **k: a.max(**k), np.max),
    "var": (lambda a, **k: a.var(**k), np.var),
}


@pytest.mark.parametrize("threads_on", [False, True])
def test_product_of_large_arrays_and_its_gradients(threads_on, backend, rng, monkeypatch):
    """x * y and x * one value past `fast.MULTIPLY_MIN_SIZE`, where the numba backend's thread policy picks
    numpy's product or the two-thread kernels (forced both ways here); too large for a quick gradcheck, so
    against the formula."""
    monkeypatch.setattr(threads, "use_threads", lambda work_ns, kernel=None: threads_on)
    monkeypatch.setattr(threads, "record", lambda *args: None)      # no back-off state left for other tests
    a, b = leaf((521, 523), rng), leaf((521, 523), rng)
    assert a.size >= fast.MULTIPLY_MIN_SIZE
    g = rng.standard_normal(a.shape)
    out = a * b
    out.backward(g)
    np.testing.assert_allclose(out.data, a.data * b.data, rtol=1e-15)
    np.testing.assert_allclose(a.grad, g * b.data, rtol=1e-15)
    np.testing.assert_allclose(b.grad, g * a.data, rtol=1e-15)
    a.grad = b.grad = None
    (a * b * 2.5).sum().backward()            # Sum's zero-stride gradient, then a number: the one-value product
    np.testing.assert_allclose(a.grad, 2.5 * b.data, rtol=1e-15)
    np.testing.assert_allclose(b.grad, 2.5 * a.data, rtol=1e-15)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(name, axis, keepdims, backend, rng):
    op, reference = REDUCTIONS[name]
    a = leaf((3, 1, 5), rng)
    np.testing.assert_allclose(op(a, axis=axis, keepdims=keepdims).data,
                               reference(a.data, axis=axis, keepdims=keepdims), rtol=1e-12)
    assert ta.gradcheck(lambda x: op(x, axis=axis, keepdims=keepdims), [a])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_array_sum_large_enough_for_the_kernel(keepdims, dtype, backend, rng):
    """x.sum() over an array past `fast.SUM_MIN_SIZE`, where the numba backend runs its kernel."""
    a = leaf((67, 71), rng)
    assert a.size >= fast.SUM_MIN_SIZE
    x = a.data.astype(dtype)
    got = ta.Tensor(x).sum(keepdims=keepdims).data
    assert got.dtype == dtype and got.shape == ((1, 1) if keepdims else ())
    want = np.sum(x.astype(np.float64), keepdims=keepdims)
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert ta.gradcheck(lambda t: t.sum(keepdims=keepdims), [a])


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_accept_dim_and_scalars(name, rng):
    op, reference = REDUCTIONS[name]
    a = leaf((2, 7), rng)
    np.testing.assert_allclose(op(a, dim=1).data, reference(a.data, axis=1), rtol=1e-12)
    s = leaf((), rng)
    np.testing.assert_allclose(op(s).data, reference(s.data), rtol=1e-12)
    assert ta.gradcheck(lambda x: op(x), [s])


def test_max_ties_share_the_gradient():
    a = ta.Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    a.max(axis=1).sum().backward()
    np.testing.assert_allclose(a.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    b = ta.Tensor([5.0, 5.0], requires_grad=True)
    b.max().backward()
    np.testing.assert_allclose(b.grad, [0.5, 0.5])


@pytest.mark.parametrize("shapes", [((3, 5), (5, 2)), ((2, 1, 3, 5), (4, 5, 3)), ((5,), (2, 5, 3)),
                                    ((7, 5), (5,)), ((13,), (13,)), ((1, 1), (1, 1)), ((4, 3, 2), (2, 1))],
                         ids=str)
def test_matmul(shapes, backend, rng):
    a, b = leaf(shapes[0], rng), leaf(shapes[1], rng)
    np.testing.assert_allclose((a @ b).data, np.matmul(a.data, b.data), rtol=1e-12, atol=1e-12)
    assert ta.gradcheck(lambda x, y: ta.matmul(x, y), [a, b])


def test_matmul_with_numpy_operands(rng):
    w = leaf((3, 2), rng)
    x = rng.standard_normal((4, 3))
    left, right = x @ w, w.T @ x.T
    assert isinstance(left, ta.Tensor) and isinstance(right, ta.Tensor)
    np.testing.assert_allclose(left.data, x @ w.data)
    np.testing.assert_allclose(right.data, w.data.T @ x.T)


MOVEMENT = {
    "reshape": (lambda a: a.reshape(5, -1), lambda x: x.reshape(5, -1), (3, 5, 2)),
    "reshape tuple": (lambda a: a.reshape((6, 5)), lambda x: x.reshape(6, 5), (3, 5, 2)),
    "transpose": (lambda a: a.transpose(0, 2), lambda x: x.swapaxes(0, 2), (3, 5, 2)),
    "T": (lambda a: a.T, lambda x: x.T, (3, 5, 2)),
    "permute": (lambda a: a.permute(1, 2, 0), lambda x: x.transpose(1, 2, 0), (3, 5, 2)),
    "slice": (lambda a: a[1:, ::2], lambda x: x[1:, ::2], (3, 5, 2)),
    "negative step, None, ellipsis": (lambda a: a[::-1, None, ..., 0], lambda x: x[::-1, None, ..., 0], (3, 5, 2)),
    "int": (lambda a: a[-1], lambda x: x[-1], (3, 5, 2)),
    "int array repeated": (lambda a: a[[0, 2, 0], 1], lambda x: x[[0, 2, 0], 1], (3, 5, 2)),
    "2-D int array": (lambda a: a[np.array([[0, 1], [1, 1]])], lambda x: x[np.array([[0, 1], [1, 1]])], (3, 5, 2)),
    "bool mask": (lambda a: a[a.data > 0], lambda x: x[x > 0], (3, 5, 2)),
    "tensor index": (lambda a: a[ta.Tensor([2.0, 0.0, 2.0])], lambda x: x[[2, 0, 2]], (3, 5, 2)),
}


@pytest.mark.parametrize("name", MOVEMENT)
def test_movement_and_indexing(name, backend, rng):
    op, reference, shape = MOVEMENT[name]
    a = leaf(shape, rng)
    np.testing.assert_array_equal(op(a).data, reference(a.data))
    assert ta.gradcheck(op, [a])


def test_repeated_indices_accumulate_gradient():
    a = ta.Tensor(np.arange(4.0), requires_grad=True)
    a[[1, 1, 3, 1]].sum().backward()
    np.testing.assert_array_equal(a.grad, [0, 3, 0, 1])


@pytest.mark.parametrize("shape,axis", [((7,), 0), ((7,), -1), ((3, 5), 0), ((3, 5), 1), ((2, 1, 13), 1),
                                        ((2, 1, 13), -1), ((1, 1), 0)], ids=str)
def test_softmax_and_log_softmax(shape, axis, backend, rng):
    a = leaf(shape, rng)
    e = np.exp(a.data - a.data.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(a.softmax(axis).data, expected, rtol=1e-12)
    np.testing.assert_allclose(a.log_softmax(dim=axis).data, np.log(expected), rtol=1e-10, atol=1e-12)
    assert ta.gradcheck(lambda x: x.softmax(axis=axis), [a])
    assert ta.gradcheck(lambda x: x.log_softmax(axis=axis), [a])


def test_softmax_float32_and_masked_rows(backend):
    x = ta.Tensor(np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [1e4, -1e4, 1e4]], np.float32))
    y = x.softmax()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, [[1 / (1 + np.e), 0, np.e / (1 + np.e)], [0, 0, 0], [0.5, 0, 0.5]], rtol=1e-6)


@pytest.mark.parametrize("mask_shape", [(3, 4), (4,), (1, 4), (2, 3, 4)], ids=str)
def test_masked_fill(mask_shape, backend, rng):
    a = leaf((2, 3, 4), rng)
    mask = rng.random(mask_shape) > 0.5
    np.testing.assert_array_equal(a.masked_fill(mask, -7.0).data, np.where(mask, -7.0, a.data))
    assert ta.gradcheck(lambda x: x.masked_fill(ta.Tensor(mask), 0.5), [a])
    a.masked_fill(mask, 0.0).sum().backward()
    np.testing.assert_array_equal(a.grad, np.broadcast_to(~mask, a.shape).astype(float))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cat_and_stack(axis, backend, rng):
    a, b, c = leaf((2, 3), rng), leaf((2, 3), rng), leaf((2, 3), rng)
    np.testing.assert_array_equal(ta.cat([a, b, c], axis=axis).data, np.concatenate([a.data, b.data, c.data], axis))
    np.testing.assert_array_equal(ta.stack([a, b], dim=axis).data, np.stack([a.data, b.data], axis))
    assert ta.gradcheck(lambda x, y, z: ta.cat([x, y, z, x], axis=axis), [a, b, c])
    assert ta.gradcheck(lambda x, y: ta.stack([x, y, x], axis=axis), [a, b])


def test_cat_different_sizes_along_axis(rng):
    a, b = leaf((2, 1, 4), rng), leaf((2, 5, 4), rng)
    assert ta.gradcheck(lambda x, y: ta.cat([x, y], axis=1), [a, b])


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (1, 4)), ((), (2, 5), ())], ids=str)
def test_where(shapes, backend, rng):
    cond = rng.random(shapes[0]) > 0.4
    a, b = leaf(shapes[1], rng), leaf(shapes[2], rng)
    np.testing.assert_array_equal(ta.where(cond, a, b).data, np.where(cond, a.data, b.data))
    assert ta.gradcheck(lambda x, y: ta.where(ta.Tensor(cond), x, y), [a, b])
    assert ta.where(cond, a, 0.0).dtype == np.float64


# ----------------------------------------------------------------------------- property tests

SAFE_UNARY = [lambda t: t.tanh(), lambda t: t.sigmoid(), lambda t: t * 1.5, lambda t: t.gelu(),
              lambda t: (t * t + 1.0).sqrt(), lambda t: t.softmax(-1), lambda t: t.exp() * 0.1,
              lambda t: t - t.mean(axis=-1, keepdims=True), lambda t: (t * t + 0.5).log(), lambda t: (t * t).tanh()]
# (t * t).tanh(), not t * t: five squares in a row make x**32, whose finite differences round badly (hypothesis
# found x = [-0.80, 0.24, -1.66]: the sum is 1e7, so the small entries' numeric gradient loses three digits)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       chain=st.lists(st.integers(0, len(SAFE_UNARY) - 1), min_size=1, max_size=5),
       seed=st.integers(0, 2**16))
def test_random_op_chains_match_finite_differences(shape, chain, seed):
    x = leaf(tuple(shape), np.random.default_rng(seed))

    def f(t):
        for i in chain:
            t = SAFE_UNARY[i](t)
        return t

    assert ta.gradcheck(f, [x])


@st.composite
def broadcastable_pair(draw):
    out = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    a = [n if draw(st.booleans()) else 1 for n in out]
    b = [n if draw(st.booleans()) else 1 for n in out][draw(st.integers(0, len(out))):]
    return tuple(a), tuple(b)


@settings(max_examples=30, deadline=None)
@given(shapes=broadcastable_pair(), op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_random_broadcasting_matches_finite_differences(shapes, op, seed):
    rng = np.random.default_rng(seed)
    fn, reference, positive = BINARY[op]
    a, b = leaf(shapes[0], rng), leaf(shapes[1], rng, positive)
    np.testing.assert_allclose(fn(a, b).data, reference(a.data, b.data))
    assert ta.gradcheck(lambda x, y: (fn(x, y) * fn(x, y)).tanh(), [a, b])


@pytest.mark.parametrize("shape", [(), (1,), (0, 3), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_whole_array_sum_sends_back_one_read_only_value(shape, keepdims):
    """Sum over every axis sends back its gradient as a zero-stride view, as np.broadcast_to would make it."""
    op = ta.ops.Sum()
    out = op.forward(np.ones(shape), axis=None, keepdims=keepdims)
    g = op.backward(np.full(out.shape, 2.5))
    assert g.shape == shape and not g.flags.writeable and not any(g.strides)
    np.testing.assert_array_equal(g, np.broadcast_to(2.5, shape))
