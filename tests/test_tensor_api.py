"""The Tensor API of SPEC "More methods", casts, creators, hooks and detect_anomaly; and the wrong results of
issue 10 (nested-tuple indexing, ** gradients at edges, 0-d `.data`). Every new op: values against numpy and
gradients against finite differences in float64 on both backends, at broadcast, 0-d, size-1, odd and prime shapes."""

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn

SHAPES = [(), (1,), (7,), (3, 1, 5), (2, 13)]


def leaf(shape, rng, dtype=np.float64, low=None):
    x = rng.standard_normal(shape) if low is None else rng.uniform(low, low + 2, shape)
    return ta.Tensor(np.asarray(x, dtype), requires_grad=True)


def distinct(shape, rng):
    """Values with no ties and none at 0 or at the clamp boundaries (where the op is not differentiable)."""
    n = math.prod(shape)
    x = (rng.permutation(n) - n / 2 + 0.37) * (1.9 / max(n, 1))
    return ta.Tensor(x.reshape(shape), requires_grad=True)


# ----------------------------------------------------------------------------- wrong results, fixed


@pytest.mark.parametrize("index,expected", [
    (((0, 0), slice(None)), [[2, 2, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
    (((0, 0, 3),), [[2, 2, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]),
    ((slice(None), (2, 2)), [[0, 0, 2, 0]] * 4),
    (((1, 1), (2, 2)), [[0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
], ids=["x[(0,0),:]", "x[(0,0,3),]", "x[:,(2,2)]", "x[(1,1),(2,2)]"])
def test_tuple_in_index_is_an_integer_array_and_repeats_accumulate(index, expected, backend):
    x = ta.Tensor(np.arange(16.0).reshape(4, 4), requires_grad=True)
    out = x[index]
    np.testing.assert_array_equal(out.data, x.data[index])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, expected)


POW_EDGES = [  # (base, exponent, d/d base, d/d exponent), from PyTorch
    (0.0, 0.0, 0.0, 0.0),
    (2.0, 0.0, 0.0, math.log(2.0)),
    (0.0, 2.0, 0.0, 0.0),
    (0.0, -1.0, -math.inf, -math.inf),
    (0.0, 0.5, math.inf, 0.0),
    (-2.0, 2.0, -4.0, math.nan),
    (-2.0, 0.5, math.nan, math.nan),
]


@pytest.mark.parametrize("base,exponent,d_base,d_exponent", POW_EDGES, ids=str)
def test_pow_gradients_at_edges_follow_pytorch(base, exponent, d_base, d_exponent, backend):
    a = ta.Tensor(np.array(base), requires_grad=True)
    b = ta.Tensor(np.array(exponent), requires_grad=True)
    (a**b).backward()
    np.testing.assert_array_equal(a.grad, d_base)
    np.testing.assert_allclose(b.grad, d_exponent, rtol=1e-12)


def test_pow_edges_with_scalar_operands():
    x = ta.Tensor(np.array([0.0, 1.0, -3.0]), requires_grad=True)
    (x**0.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])              # d/dx x^0 = 0, even at 0
    e = ta.Tensor(np.array([-1.0, -2.0, 1.0]), requires_grad=True)
    (0.0**e).sum().backward()
    np.testing.assert_array_equal(e.grad, [-np.inf, -np.inf, 0.0])
    e.grad = None
    ((-2.0) ** e).sum().backward()
    assert np.all(np.isnan(e.grad))


ZERO_D = {
    "a + b": lambda a, v: a + a, "v.mean()": lambda a, v: v.mean(), "v.sum()": lambda a, v: v.sum(),
    "v[0]": lambda a, v: v[0], "a < b": lambda a, v: a < a, "v.max()": lambda a, v: v.max(),
    "a * 2": lambda a, v: a * 2, "exp": lambda a, v: a.exp(), "v @ v": lambda a, v: v @ v,
    "F.mse_loss": lambda a, v: F.mse_loss(v, v * 2), "argmax": lambda a, v: v.argmax(), "any": lambda a, v: v.any(),
    "logsumexp": lambda a, v: v.logsumexp(), "min": lambda a, v: v.min(), "std": lambda a, v: v.std(),
}


@pytest.mark.parametrize("name", ZERO_D)
def test_zero_d_results_hold_an_ndarray(name, backend):
    a, v = ta.Tensor(np.array(1.5), requires_grad=True), ta.Tensor([1.0, 2.0, 4.0], requires_grad=True)
    out = ZERO_D[name](a, v)
    assert type(out.data) is np.ndarray and out.data.shape == ()
    if out.requires_grad:
        out.backward()
        assert type(v.grad if v.grad is not None else a.grad) is np.ndarray


def test_max_over_a_nonempty_axis_of_an_empty_tensor():
    x = ta.zeros(0, 3, requires_grad=True)
    assert x.max(axis=1).shape == (0,) and x.min(dim=1).shape == (0,)
    x.max(axis=1).sum().backward()
    assert x.grad.shape == (0, 3)
    with pytest.raises(ValueError, match=r"max: cannot reduce over an empty axis .*\(0, 3\)"):
        x.max(axis=0)


# ----------------------------------------------------------------------------- new elementwise ops

UNARY = {  # name: (op, numpy reference, input maker)
    "square": (lambda t: t.square(), np.square, leaf),
    "sin": (lambda t: t.sin(), np.sin, leaf),
    "cos": (lambda t: t.cos(), np.cos, leaf),
    "silu": (lambda t: t.silu(), lambda x: x / (1 + np.exp(-x)), leaf),
    "softplus": (lambda t: t.softplus(), lambda x: np.log1p(np.exp(x)), leaf),
    "leaky_relu": (lambda t: t.leaky_relu(), lambda x: np.where(x > 0, x, 0.01 * x), distinct),
    "leaky_relu 0.2": (lambda t: t.leaky_relu(negative_slope=0.2), lambda x: np.where(x > 0, x, 0.2 * x), distinct),
    "clamp": (lambda t: t.clamp(-0.5, 0.4), lambda x: np.clip(x, -0.5, 0.4), distinct),
    "clamp min": (lambda t: t.clamp(min=0.1), lambda x: np.maximum(x, 0.1), distinct),
    "clip max": (lambda t: t.clip(max=-0.2), lambda x: np.minimum(x, -0.2), distinct),
    "F.silu": (F.silu, lambda x: x / (1 + np.exp(-x)), leaf),
    "F.leaky_relu": (lambda t: F.leaky_relu(t, 0.3), lambda x: np.where(x > 0, x, 0.3 * x), distinct),
    "F.softplus": (F.softplus, lambda x: np.log1p(np.exp(x)), leaf),
    "nn.SiLU": (lambda t: nn.SiLU()(t), lambda x: x / (1 + np.exp(-x)), leaf),
    "nn.Tanh": (lambda t: nn.Tanh()(t), np.tanh, leaf),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_new_elementwise_ops(name, shape, backend, rng):
    op, reference, make = UNARY[name]
    x = make(shape, rng)
    np.testing.assert_allclose(op(x).data, reference(x.data), rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(op, [x])


def test_clamp_gradient_is_one_at_the_boundaries():
    x = ta.Tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    x.clamp(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])


def test_softplus_and_leaky_relu_at_extremes():
    x = ta.Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = x.softplus()
    np.testing.assert_allclose(y.data, [0.0, math.log(2.0), 1000.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.5, 1.0])
    z = ta.Tensor([0.0], requires_grad=True)
    z.leaky_relu(0.1).sum().backward()
    np.testing.assert_allclose(z.grad, [0.1])                          # PyTorch: slope at 0


@pytest.mark.parametrize("shapes", [((3, 1, 4), (5, 4)), ((), (7,)), ((1,), (13, 1)), ((2, 3), (2, 3))], ids=str)
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum(name, shapes, backend, rng):
    fn, reference = getattr(ta, name), getattr(np, name)
    a, b = leaf(shapes[0], rng), leaf(shapes[1], rng)
    np.testing.assert_array_equal(fn(a, b).data, reference(a.data, b.data))
    assert ta.gradcheck(fn, [a, b])
    assert fn(a, 0.25).shape == a.shape and fn(0.25, b).shape == b.shape


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_share_the_gradient(name):
    a = ta.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = ta.Tensor([1.0, 0.0, 5.0], requires_grad=True)
    getattr(ta, name)(a, b).sum().backward()
    big = name == "maximum"
    np.testing.assert_array_equal(a.grad, [0.5, 1 if big else 0, 0 if big else 1])
    np.testing.assert_array_equal(b.grad, [0.5, 0 if big else 1, 1 if big else 0])


def test_method_forms_match_operators(rng):
    a, b = leaf((3, 4), rng), leaf((4,), rng, low=0.5)
    pairs = [(a.add(b), a + b), (a.sub(b), a - b), (a.mul(b), a * b), (a.div(b), a / b), (b.pow(a), b**a),
             (a.neg(), -a), (a.matmul(b), a @ b), (a.add(2.0), a + 2.0)]
    for method, operator in pairs:
        np.testing.assert_array_equal(method.data, operator.data)
    assert ta.gradcheck(lambda x, y: x.mul(y).sub(y.pow(x)).div(y).add(x.neg()).matmul(y), [a, b])


# ----------------------------------------------------------------------------- reductions

REDUCE = {  # name: (op with axis/keepdims, numpy reference, input maker)
    "min": (lambda t, **k: t.min(**k), np.min, leaf),
    "logsumexp": (lambda t, **k: t.logsumexp(**k), lambda x, **k: np.log(np.sum(np.exp(x), **k)), leaf),
    "std": (lambda t, **k: t.std(**k), np.std, leaf),
    "std correction=1": (lambda t, **k: t.std(correction=1, **k), lambda x, **k: np.std(x, ddof=1, **k), leaf),
    "var correction=1": (lambda t, **k: t.var(**k, correction=1), lambda x, **k: np.var(x, ddof=1, **k), leaf),
}


@pytest.mark.parametrize("name", REDUCE)
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_new_reductions(name, axis, keepdims, backend, rng):
    op, reference, make = REDUCE[name]
    x = make((3, 2, 5), rng)
    np.testing.assert_allclose(op(x, axis=axis, keepdims=keepdims).data,
                               reference(x.data, axis=axis, keepdims=keepdims), rtol=1e-12)
    assert ta.gradcheck(lambda t: op(t, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("name", ["min", "logsumexp", "std"])
def test_new_reductions_on_0d_and_size_1(name, backend, rng):
    op, reference, _ = REDUCE[name]
    for shape in [(), (1,), (1, 1)]:
        x = leaf(shape, rng)
        np.testing.assert_allclose(op(x).data, reference(x.data), rtol=1e-12)
        if name != "std":                                          # std of one value: sqrt at 0
            assert ta.gradcheck(lambda t: op(t), [x])


def test_min_ties_share_the_gradient():
    a = ta.Tensor([[1.0, -3.0, -3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    a.min(dim=1).sum().backward()
    np.testing.assert_allclose(a.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_logsumexp_is_stable_at_any_magnitude(dtype, scale, backend):
    x = np.array([[1.0, 0.5, -0.25], [1.0, 1.0, 1.0], [-np.inf, 0.0, -np.inf]]) * np.array([[scale], [scale], [1]])
    t = ta.Tensor(x.astype(dtype), requires_grad=True)
    out = t.logsumexp(axis=1)
    m = x.max(axis=1)
    expected = m + np.log(np.exp(x - m[:, None]).sum(axis=1))          # float64 reference
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, expected, rtol=4 * np.finfo(dtype).eps)
    out.sum().backward()
    np.testing.assert_allclose(t.grad.sum(axis=1), 1.0, rtol=1e-6)
    all_masked = ta.Tensor(np.full((2, 3), -np.inf, dtype), requires_grad=True)
    assert np.all(all_masked.logsumexp(-1).data == -np.inf)


def test_argmax_argmin_any_all(rng):
    x = ta.Tensor(rng.standard_normal((3, 4, 5)), requires_grad=True)
    for name in ["argmax", "argmin"]:
        for kw in [{}, {"axis": 1}, {"dim": -1, "keepdim": True}]:
            ours = getattr(x, name)(**kw)
            expected = getattr(np, name)(x.data, axis=kw.get("axis", kw.get("dim")), keepdims=kw.get("keepdim", False))
            assert ours.dtype == np.int64 and not ours.requires_grad
            np.testing.assert_array_equal(ours.data, expected)
    b = x > 0
    np.testing.assert_array_equal(b.any(axis=0).data, b.data.any(axis=0))
    np.testing.assert_array_equal(b.all(dim=(0, 2), keepdim=True).data, b.data.all(axis=(0, 2), keepdims=True))
    assert x.any().dtype == np.bool_ and ta.Tensor([0.0, 1.0]).all().item() is False


def test_bool_reductions_count_and_act_as_any_all():
    b = ta.Tensor([[True, False, True], [False, False, True]])
    s, m = b.sum(axis=1), b.mean()
    assert s.dtype == np.float32 and m.dtype == np.float32 and not s.requires_grad
    np.testing.assert_array_equal(s.data, [2, 1])
    np.testing.assert_allclose(m.data, 0.5)
    np.testing.assert_array_equal(b.max(axis=0).data, [True, False, True])
    np.testing.assert_array_equal(b.min(axis=1).data, [False, False])
    assert b.max().dtype == np.bool_


def test_softmax_of_a_0d_tensor(backend):
    x = ta.Tensor(np.array(3.0), requires_grad=True)
    assert x.softmax().item() == 1.0 and x.log_softmax(dim=0).item() == 0.0
    assert x.softmax().shape == ()
    assert ta.gradcheck(lambda t: t.softmax() + t.log_softmax(), [x])


def test_dim_and_keepdim_spellings(rng):
    x = leaf((3, 4), rng)
    for name in ["sum", "mean", "max", "min", "var", "std", "logsumexp"]:
        a = getattr(x, name)(axis=1, keepdims=True)
        b = getattr(x, name)(dim=1, keepdim=True)
        np.testing.assert_array_equal(a.data, b.data)
        assert a.shape == (3, 1)
    np.testing.assert_array_equal(x.squeeze(dim=0).data, x.data)
    assert x.unsqueeze(dim=1).shape == (3, 1, 4) and len(x.split(2, dim=1)) == 2 and len(x.chunk(3, dim=0)) == 3


# ----------------------------------------------------------------------------- shape ops

SHAPE_OPS = {  # name: (op, numpy reference, input shape)
    "expand": (lambda t: t.expand(4, -1, 3), lambda x: np.broadcast_to(x, (4, 2, 3)), (2, 1)),
    "expand same": (lambda t: t.expand(2, 3), lambda x: x, (2, 3)),
    "expand 0-d": (lambda t: t.expand(5), lambda x: np.broadcast_to(x, (5,)), ()),
    "expand size 1": (lambda t: t.expand((7, 1, 13)), lambda x: np.broadcast_to(x, (7, 1, 13)), (1, 1, 1)),
    "flatten": (lambda t: t.flatten(), np.ravel, (2, 3, 5)),
    "flatten 1..": (lambda t: t.flatten(1), lambda x: x.reshape(2, 15), (2, 3, 5)),
    "flatten 0-d": (lambda t: t.flatten(), lambda x: x.reshape(1), ()),
    "flatten middle": (lambda t: t.flatten(1, 2), lambda x: x.reshape(2, 15, 1), (2, 3, 5, 1)),
    "squeeze": (lambda t: t.squeeze(), np.squeeze, (1, 3, 1, 5)),
    "squeeze axis": (lambda t: t.squeeze(2), lambda x: x.squeeze(2), (1, 3, 1, 5)),
    "squeeze non-1 axis": (lambda t: t.squeeze(1), lambda x: x, (1, 3, 1, 5)),
    "squeeze axes": (lambda t: t.squeeze((0, 2)), lambda x: x.squeeze((0, 2)), (1, 3, 1, 5)),
    "unsqueeze": (lambda t: t.unsqueeze(0), lambda x: x[None], (3, 5)),
    "unsqueeze -1": (lambda t: t.unsqueeze(-1), lambda x: x[..., None], (3, 5)),
    "unsqueeze 0-d": (lambda t: t.unsqueeze(0), lambda x: x.reshape(1), ()),
    "tril": (lambda t: t.tril(), np.tril, (5, 5)),
    "tril -1 batched": (lambda t: t.tril(-1), lambda x: np.tril(x, -1), (2, 3, 7)),
    "triu": (lambda t: t.triu(), np.triu, (5, 3)),
    "triu 2": (lambda t: t.triu(diagonal=2), lambda x: np.triu(x, 2), (3, 1, 7)),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_ops(name, backend, rng):
    op, reference, shape = SHAPE_OPS[name]
    x = leaf(shape, rng)
    np.testing.assert_array_equal(op(x).data, reference(x.data))
    assert ta.gradcheck(op, [x])


def test_expand_gradient_is_a_sum():
    x = ta.Tensor([[1.0], [2.0]], requires_grad=True)
    x.expand(3, 2, 4).sum().backward()
    np.testing.assert_array_equal(x.grad, [[12.0], [12.0]])


@pytest.mark.parametrize("shape,arg,axis,sizes", [
    ((7, 3), 3, 0, [3, 3, 1]), ((7, 3), [2, 0, 5], 0, [2, 0, 5]), ((2, 13), 13, 1, [13]), ((2, 5), 2, -1, [2, 2, 1]),
], ids=str)
def test_split(shape, arg, axis, sizes, backend, rng):
    x = leaf(shape, rng)
    parts = x.split(arg, axis=axis)
    assert isinstance(parts, tuple) and [p.shape[axis] for p in parts] == sizes
    np.testing.assert_array_equal(ta.cat(parts, axis=axis).data, x.data)
    assert ta.gradcheck(lambda t: ta.cat([p * (i + 1) for i, p in enumerate(t.split(arg, axis))], axis), [x])


@pytest.mark.parametrize("n,chunks,sizes", [(7, 3, [3, 3, 1]), (6, 4, [2, 2, 2]), (5, 5, [1] * 5), (1, 3, [1])])
def test_chunk_as_pytorch(n, chunks, sizes, rng):
    x = leaf((2, n), rng)
    parts = x.chunk(chunks, axis=1)
    assert [p.shape[1] for p in parts] == sizes
    assert ta.gradcheck(lambda t: ta.cat([p.exp() for p in t.chunk(chunks, 1)], 1), [x])


# ----------------------------------------------------------------------------- casts


def test_float_casts_are_differentiable_with_grad_in_the_input_dtype(backend):
    x = ta.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    z = ta.Tensor(np.ones(3), requires_grad=True)
    out = z.float()
    assert out.dtype == np.float32 and z.astype(np.float64) is z and z.double() is z
    out.sum().backward()
    assert z.grad.dtype == np.float64
    assert ta.gradcheck(lambda t: t.astype(np.float64) * t, [ta.Tensor(np.ones(3), requires_grad=True)])


def test_bool_and_int_casts_carry_no_gradient():
    x = ta.Tensor([0.0, 1.5, -2.7], requires_grad=True)
    for dtype, expected in [(np.bool_, [False, True, True]), (np.int64, [0, 1, -2]), (np.int32, [0, 1, -2])]:
        y = x.astype(dtype)
        assert y.dtype == dtype and not y.requires_grad
        np.testing.assert_array_equal(y.data, expected)
    assert ta.Tensor([True, False]).float().dtype == np.float32


# ----------------------------------------------------------------------------- creators


def test_creators_follow_the_spec():
    assert ta.arange(2, 5).data.tolist() == [2, 3, 4] and ta.arange(1, 10, 2).data.tolist() == [1, 3, 5, 7, 9]
    assert ta.arange(5).dtype == np.float32 and not ta.arange(5).requires_grad and ta.arange(3, 1).shape == (0,)
    assert ta.arange(0, 1, 0.25).data.tolist() == [0, 0.25, 0.5, 0.75]
    assert ta.arange(4, dtype=np.int64).dtype == np.int64 and ta.arange(3, requires_grad=True).requires_grad
    assert ta.zeros(2, 3, dtype=np.int32).dtype == np.int32 and ta.ones((4,)).data.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(ta.full((2, 2), 7.5).data, np.full((2, 2), 7.5, np.float32))
    assert ta.full(3, 1.0, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(ta.eye(3).data, np.eye(3))
    assert ta.eye(2, 4).shape == (2, 4) and ta.eye(2, 4).data[1, 1] == 1
    t = ta.Tensor(np.ones((2, 3)))
    assert ta.zeros_like(t).dtype == np.float64 and ta.ones_like(t, dtype=np.float32).dtype == np.float32
    assert ta.zeros_like(t).shape == (2, 3) and ta.ones_like(t, requires_grad=True).requires_grad
    assert ta.zeros(0, 3).shape == (0, 3) and ta.zeros().shape == ()


def test_random_creators_are_seeded_and_in_range():
    ta.manual_seed(3)
    first = [ta.randn(4).data, ta.rand(2, 3).data, ta.randint(0, 5, (20,)).data]
    ta.manual_seed(3)
    again = [ta.randn(4).data, ta.rand(2, 3).data, ta.randint(0, 5, (20,)).data]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    r = ta.rand(1000, dtype=np.float64)
    assert r.dtype == np.float64 and 0 <= r.data.min() and r.data.max() < 1
    k = ta.randint(-2, 3, (1000,))
    assert k.dtype == np.int64 and set(k.data.tolist()) == {-2, -1, 0, 1, 2}
    assert ta.randint(4, (3, 2)).shape == (3, 2) and ta.randn((2, 2), requires_grad=True).requires_grad


# ----------------------------------------------------------------------------- hooks and anomaly


def test_hook_sees_the_complete_gradient_once_per_backward():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2
    calls = []
    handle = y.register_hook(lambda g: calls.append(g.copy()))
    (y * y + y).sum().backward()                       # y used twice: dL/dy = 2y + 1, complete, in one call
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [5.0, 9.0])
    handle.remove()
    (x * 2).sum().backward()
    assert len(calls) == 1


def test_hook_on_a_leaf_used_twice_and_returning_a_replacement():
    w = ta.Tensor(np.array([1.0, -1.0]), requires_grad=True)
    calls = []
    w.register_hook(lambda g: calls.append(g.copy()) or g * 10)
    (w * w + w * 3).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [5.0, 1.0])
    np.testing.assert_array_equal(w.grad, [50.0, 10.0])                 # the replacement accumulates
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.exp()
    y.register_hook(lambda g: np.zeros_like(g))
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])                  # the replacement flows upstream
    with pytest.raises(RuntimeError, match="register_hook"):
        ta.Tensor([1.0]).register_hook(print)


def test_detect_anomaly_names_the_op_shapes_and_forward_line():
    with ta.detect_anomaly():
        x = ta.Tensor(np.array([[0.0, 1.0, 4.0]]), requires_grad=True)
        line, y = inspect.currentframe().f_lineno, x.sqrt()               # the line the error must name
        with pytest.raises(RuntimeError) as info, np.errstate(divide="ignore"):
            (y * 2).sum().backward()
    message = str(info.value)
    assert "Sqrt" in message and "(1, 3)" in message and f"test_tensor_api.py:{line}" in message, message


def test_no_anomaly_error_when_upstream_is_already_nan_or_outside_the_context():
    with ta.detect_anomaly():
        x = ta.Tensor(np.array([1.0]), requires_grad=True)
        (x * 2).sum().backward(np.array(np.nan))                          # NaN from above: not this op's fault
        assert np.isnan(x.grad).all()
    z = ta.Tensor(np.array([0.0]), requires_grad=True)
    with np.errstate(divide="ignore"):
        z.sqrt().sum().backward()                                         # outside the context: no check
    assert np.isinf(z.grad).all()


# ----------------------------------------------------------------------------- property test: chains of ops

CHAIN = [lambda t: t.tanh(), lambda t: t.sin(), lambda t: t.cos() * 0.5, lambda t: t.silu(), lambda t: t.softplus(),
         lambda t: t.square() * 0.3, lambda t: t.sigmoid(), lambda t: t.leaky_relu(0.3) + 0.01,
         lambda t: t - t.logsumexp(axis=-1, keepdim=True), lambda t: t.softmax(-1),
         lambda t: (t.var(-1, keepdims=True) + 1).sqrt() + t,
         lambda t: t.flatten().reshape(t.shape), lambda t: t.unsqueeze(0).squeeze(0) * 1.3, lambda t: t.exp() * 0.1,
         lambda t: ta.maximum(t, t * 0.5 + 0.1), lambda t: ta.minimum(t, 0.3 - t), lambda t: t.tril() + t.triu(1) * 2
         if t.ndim >= 2 else t * 2]


@st.composite
def broadcast_pair(draw):
    out = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    a = [n if draw(st.booleans()) else 1 for n in out]
    b = [n if draw(st.booleans()) else 1 for n in out][draw(st.integers(0, len(out))):]
    return tuple(a), tuple(b)


@settings(max_examples=25, deadline=None)
@given(shapes=broadcast_pair(), chain=st.lists(st.integers(0, len(CHAIN) - 1), min_size=1, max_size=4),
       combine=st.sampled_from(["add", "mul", "maximum", "sub"]), seed=st.integers(0, 2**16))
def test_random_chains_of_old_and_new_ops(shapes, chain, combine, seed):
    rng = np.random.default_rng(seed)
    a, b = leaf(shapes[0], rng), leaf(shapes[1], rng)

    def f(x, y):
        t = ta.maximum(x, y) if combine == "maximum" else getattr(x, combine)(y)
        t = t.expand(*t.shape) + 0.0 * y
        for i in chain:
            t = CHAIN[i](t)
        return t

    assert ta.gradcheck(f, [a, b], atol=1e-5, rtol=1e-3)
