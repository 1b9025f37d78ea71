"""The graph engine: construction and dtypes, backward over long chains, accumulation, retain_grad,
no_grad, freeing the graph, memory in a loop, custom Functions, and clear errors on bad input."""

import gc
import re
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygrad_attn as ta

# ----------------------------------------------------------------------------- construction and dtypes


def test_construction_dtypes():
    assert ta.Tensor([1, 2, 3]).dtype == np.float32
    assert ta.Tensor([1.5, 2.5]).dtype == np.float32
    assert ta.Tensor(3.0).dtype == np.float32 and ta.Tensor(3.0).shape == ()
    assert ta.Tensor(np.ones(2)).dtype == np.float64
    assert ta.Tensor(np.ones(2, np.float32)).dtype == np.float32
    assert ta.Tensor(np.arange(3)).dtype == np.float32
    assert ta.Tensor([True, False]).dtype == np.bool_
    assert ta.Tensor(np.array([1, 0]) > 0).dtype == np.bool_
    assert ta.Tensor([1, 2], dtype=np.float64).dtype == np.float64
    t = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    copy = ta.Tensor(t)
    assert copy.dtype == np.float64 and not copy.requires_grad and copy.data is not t.data


def test_attributes_and_conversions():
    data = np.arange(6.0).reshape(2, 3)
    t = ta.Tensor(data)
    assert (t.shape, t.ndim, t.size, t.dtype) == ((2, 3), 2, 6, np.float64)
    assert t.grad is None and t.requires_grad is False
    np.testing.assert_array_equal(np.asarray(t), data)
    np.testing.assert_array_equal(t.numpy(), data)
    assert ta.Tensor([[4.0]]).item() == 4.0
    assert len(t) == 2
    with pytest.raises(ValueError, match="item"):
        t.item()


def test_scalar_operands_take_the_tensor_dtype():
    t64 = ta.Tensor(np.ones(3))
    assert (t64 * 0.1).dtype == np.float64
    np.testing.assert_array_equal((t64 * 0.1).data, np.full(3, 0.1))          # full float64 precision
    t32 = ta.Tensor(np.ones(3, np.float32))
    assert (np.float64(2) * t32).dtype == np.float32
    assert (t32 + 1).dtype == np.float32 and (2**t32).dtype == np.float32


def test_mixed_float_dtypes_promote_and_grads_keep_each_dtype():
    a = ta.Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    b = ta.Tensor(np.full((2, 2), 3.0), requires_grad=True)
    out = a * b
    assert out.dtype == np.float64
    (out @ a).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(b.grad, np.full((2, 2), 2.0))


def test_numpy_array_on_the_left_returns_a_tensor():
    t = ta.Tensor([1.0, 2.0], requires_grad=True)
    for out in (np.ones(2) * t, np.ones(2) + t, np.ones(2) - t, np.ones(2) / t, np.ones((3, 2)) @ t):
        assert isinstance(out, ta.Tensor) and out.requires_grad


def test_comparisons_are_boolean_and_carry_no_gradient():
    t = ta.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    results = [t < 2, t <= 2, t > 2, t >= 2, t == 2, 2 < t]
    expected = [[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [0, 0, 1]]
    for r, e in zip(results, expected):
        assert r.dtype == np.bool_ and not r.requires_grad
        np.testing.assert_array_equal(r.data, np.array(e, bool))


def test_bool_tensors_compute_as_float_in_arithmetic():
    mask = ta.Tensor([True, False])
    x = ta.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    out = x * mask
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.data, [2.0, 0.0])


def test_creators_and_seed():
    assert ta.zeros(2, 3).shape == (2, 3) and ta.zeros((2, 3)).dtype == np.float32
    assert ta.ones(4, dtype=np.float64).dtype == np.float64
    assert ta.ones(2, requires_grad=True).requires_grad
    np.testing.assert_array_equal(ta.arange(4).data, [0, 1, 2, 3])
    ta.manual_seed(7)
    first = ta.randn(3, 2).data
    ta.manual_seed(7)
    np.testing.assert_array_equal(first, ta.randn(3, 2).data)
    assert ta.randn(2, dtype=np.float64).dtype == np.float64


# ----------------------------------------------------------------------------- backward


def test_chain_of_20000_ops_backprops_without_recursion():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001**20_000), rtol=1e-9)


def test_gradients_accumulate_until_cleared():
    x = ta.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_shared_subexpression_gets_both_contributions():
    x = ta.Tensor(np.array([3.0]), requires_grad=True)
    y = x * x            # dy/dx = 2x
    z = y + y * x        # z = x^2 + x^3
    z.backward()
    np.testing.assert_allclose(x.grad, 2 * 3 + 3 * 9)


def test_a_leaf_gradient_is_shared_with_no_other_array():
    """`.grad` may be changed in place: it never aliases another leaf's gradient, the user's `grad=`, an
    intermediate's retained gradient or an array an op kept; a fresh gradient nobody else holds is kept as is."""
    a, b = (ta.Tensor(np.ones(3), requires_grad=True) for _ in range(2))
    (a + b).sum().backward()                      # Add hands the same g to both inputs
    given = np.arange(3.0)
    c = ta.Tensor(np.ones(3), requires_grad=True)
    mid = c + 0.0
    mid.retain_grad()
    (mid + 0.0).backward(given)                   # Add passes the user's array straight down
    grads = [a.grad, b.grad, c.grad, mid.grad, given]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(grads) for q in grads[i + 1:])

    class Kept(ta.Function):                      # backward returns an array it keeps
        def forward(self, x):
            self.ones = np.ones_like(x)
            return x.copy()

        def backward(self, g):
            return self.ones

    class Fresh(ta.Function):                     # backward returns a new array, remembered only weakly
        def forward(self, x):
            return x.copy()

        def backward(self, g):
            out = g * 2.0
            self.made = weakref.ref(out)
            return out

    d, e = (ta.Tensor(np.ones(3), requires_grad=True) for _ in range(2))
    kept = Kept.apply(d)
    kept.sum().backward(retain_graph=True)
    assert not np.shares_memory(d.grad, kept._ctx.ones)
    fresh = Fresh.apply(e)
    fresh.sum().backward(retain_graph=True)
    np.testing.assert_array_equal(e.grad, [2.0, 2.0, 2.0])
    assert e.grad is fresh._ctx.made()            # no copy made


def test_backward_needs_grad_for_non_scalar_outputs():
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match="grad must be given"):
        (x * 2).backward()
    (x * 2).backward(np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        ta.Tensor([1.0]).backward()


def test_retain_grad_keeps_intermediate_gradients():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    h.retain_grad()
    other = x + 1
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    assert other.grad is None


def test_graph_is_freed_after_backward():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    y = (x * 2).exp()
    alive = weakref.ref(y)
    loss = y.sum()
    del y
    loss.backward()
    gc.collect()
    assert alive() is None
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.full(3, 4.0))


def test_no_grad_records_nothing():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    with ta.no_grad():
        y = (x * 2).exp().sum()
    assert not y.requires_grad and y._ctx is None

    @ta.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert (x * 2).requires_grad


def test_detach_cuts_the_graph():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d._ctx is None
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_training_loop_memory_does_not_grow():
    rng = np.random.default_rng(0)
    w = ta.Tensor(rng.standard_normal((32, 32)), requires_grad=True)
    x = ta.Tensor(rng.standard_normal((16, 32)))

    def step():
        loss = ((x @ w).tanh() @ w).softmax().log().mean()
        loss.backward()
        w.data -= 0.01 * w.grad
        w.grad = None

    for _ in range(20):
        step()
    tracemalloc.start()
    for _ in range(50):
        step()
    first, _ = tracemalloc.get_traced_memory()
    for _ in range(300):
        step()
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # One leaked graph holds > 10 KB of arrays, so 300 leaked steps would add > 3 MB. Allow for
    # interpreter free lists that fill up during the first steps.
    assert second - first < 256 * 1024, f"memory grew by {second - first} bytes over 300 steps"


class Cube(ta.Function):
    """out = a^3;  da = 3 a^2 g."""

    def forward(self, a):
        self.a = a
        return a**3

    def backward(self, g):
        return 3 * self.a**2 * g


class WrongCube(Cube):
    def backward(self, g):
        return 2 * self.a**2 * g


def test_custom_function_and_gradcheck_error_message():
    x = ta.Tensor(np.array([[1.0, -2.0], [0.5, 3.0]]), requires_grad=True)
    assert ta.gradcheck(lambda t: Cube.apply(t), [x])
    with pytest.raises(ta.GradcheckError) as err:
        ta.gradcheck(lambda t: WrongCube.apply(t), [x])
    message = str(err.value)
    assert "input 0" in message and "index (1, 1)" in message          # the largest |x| has the largest error
    found = re.search(r"analytic (\S+), numeric (\S+) ", message)
    analytic, numeric = float(found[1]), float(found[2])
    assert analytic / numeric == pytest.approx(2 / 3, rel=1e-6)      # WrongCube's 2a^2 against the true 3a^2


def test_gradcheck_casts_float32_inputs_and_requires_a_grad_input():
    x = ta.Tensor(np.array([0.3, 0.7], np.float32), requires_grad=True)
    assert ta.gradcheck(lambda t: (t * t).exp(), [x])
    assert x.dtype == np.float32 and x.grad is None
    with pytest.raises(ValueError, match="requires_grad"):
        ta.gradcheck(lambda t: t * 2, [ta.Tensor([1.0])])


def test_backend_switch():
    assert ta.get_backend() == "numba"
    with ta.backend("numpy"):
        assert ta.get_backend() == "numpy"
    assert ta.get_backend() == "numba"
    with pytest.raises(ValueError, match="unknown backend"):
        ta.set_backend("cuda")


# ----------------------------------------------------------------------------- clear errors

X = ta.Tensor(np.ones((2, 3)), requires_grad=True)
BAD_INPUTS = [
    (lambda: X @ ta.Tensor(np.ones((4, 5))), ValueError, r"matmul: shapes \(2, 3\) and \(4, 5\) do not align"),
    (lambda: ta.matmul(ta.ones(2, 2, 3), ta.ones(3, 3, 4)), ValueError, r"matmul: shapes \(2, 2, 3\) and \(3, 3, 4\)"),
    (lambda: X @ 2.0, ValueError, "matmul: scalars"),
    (lambda: X + ta.ones(4), ValueError, r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"),
    (lambda: X * np.ones((3, 2)), ValueError, r"mul: shapes \(2, 3\) and \(3, 2\)"),
    (lambda: X.sum(axis=2), ValueError, "sum: axis 2 is out of range"),
    (lambda: X.softmax(dim=-3), ValueError, "softmax: axis -3"),
    (lambda: X.mean(axis=0, dim=0), TypeError, "mean: give axis= or dim="),
    (lambda: X.max(axis=1.5), TypeError, "max: axis must be an int"),
    (lambda: X.reshape(4, 2), ValueError, r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    (lambda: X.permute(0, 0), ValueError, "permute"),
    (lambda: X[5], IndexError, r"getitem: .*shape \(2, 3\)"),
    (lambda: X[[0.5]], TypeError, "getitem: expected integer or boolean indices"),
    (lambda: X.masked_fill(np.ones((3, 3), bool), 0.0), ValueError, "masked_fill"),
    (lambda: ta.Tensor([True, False]).exp(), TypeError, "exp: expected a float32 or float64 tensor, got dtype bool"),
    (lambda: ta.Tensor([1, 2], dtype=np.int64).log(), TypeError, "log: .*int64"),
    (lambda: ta.Tensor([True], requires_grad=True), TypeError, "only float32/float64 tensors can require grad"),
    (lambda: ta.Tensor(["a"]), TypeError, "Tensor: cannot make a tensor"),
    (lambda: ta.cat([X, ta.ones(3, 3)], axis=1), ValueError, "cat: shapes"),
    (lambda: ta.stack([X, ta.ones(3, 2)]), ValueError, "stack"),
    (lambda: ta.where(np.ones(4, bool), X, 0.0), ValueError, "where: shapes"),
]


@pytest.mark.parametrize("call,error,message", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_index_errors_are_also_value_errors():
    with pytest.raises(ValueError):
        X[2, 0]
