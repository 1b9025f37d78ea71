"""Bad input to the engine: every case raises the expected ValueError/TypeError (or IndexError/RuntimeError where
PyTorch does) before numpy or Numba complain, and the message names the op and the offending shape, dtype or value.

Each row: (call, exception type, substrings the message must hold)."""

import numpy as np
import pytest

import tinygrad_attn as ta

X = ta.Tensor(np.ones((2, 3)), requires_grad=True)          # [2, 3] float64
I64 = ta.Tensor([[1, 2]], dtype=np.int64)
MASK = np.ones((2, 3), bool)

CASES = [
    # Tensor(...)
    (lambda: ta.Tensor([[1, 2], [3]]), ValueError, ["Tensor", "rectangular"]),
    (lambda: ta.Tensor("abc"), TypeError, ["Tensor", "string", "'abc'"]),
    (lambda: ta.Tensor(["a", "b"]), TypeError, ["Tensor", "<U1"]),
    (lambda: ta.Tensor([1 + 2j]), TypeError, ["Tensor", "complex128"]),
    (lambda: ta.Tensor([1, 2], dtype=object), TypeError, ["Tensor", "object"]),
    (lambda: ta.Tensor([1, 2], dtype=str), TypeError, ["Tensor", "<U"]),
    (lambda: ta.Tensor([1], dtype=np.complex64), TypeError, ["Tensor", "complex64"]),
    (lambda: ta.Tensor([1], dtype="floaty"), TypeError, ["Tensor", "'floaty'"]),
    (lambda: ta.Tensor([True], requires_grad=True), TypeError, ["Tensor", "require grad", "bool"]),
    (lambda: ta.Tensor([1, 2], dtype=np.int64, requires_grad=True), TypeError, ["Tensor", "int64"]),
    (lambda: ta.Tensor({"a": 1}), TypeError, ["Tensor", "object"]),
    (lambda: ta.Tensor(None), TypeError, ["Tensor", "object"]),
    # creators
    (lambda: ta.zeros(-1, 3), ValueError, ["zeros", "(-1, 3)"]),
    (lambda: ta.ones(2, -5), ValueError, ["ones", "(2, -5)"]),
    (lambda: ta.randn(2.5), TypeError, ["randn", "2.5"]),
    (lambda: ta.rand(-1), ValueError, ["rand", "-1"]),
    (lambda: ta.zeros(2, 3, dtype=np.int32, requires_grad=True), TypeError, ["zeros", "int32"]),
    (lambda: ta.ones(2, dtype=object), TypeError, ["ones", "object"]),
    (lambda: ta.full((2, -2), 1.0), ValueError, ["full", "(2, -2)"]),
    (lambda: ta.full((2,), "a"), TypeError, ["full", "value", "'a'"]),
    (lambda: ta.eye(-1), ValueError, ["eye", "-1"]),
    (lambda: ta.eye(2.0), TypeError, ["eye", "2.0"]),
    (lambda: ta.eye(2, 3, dtype=np.int64, requires_grad=True), TypeError, ["eye", "int64"]),
    (lambda: ta.arange("5"), TypeError, ["arange", "'5'"]),
    (lambda: ta.arange(0, 5, 0), ValueError, ["arange", "step"]),
    (lambda: ta.arange(3, dtype=np.int64, requires_grad=True), TypeError, ["arange", "int64"]),
    (lambda: ta.randint(5, 2, (3,)), ValueError, ["randint", "low=5", "high=2"]),
    (lambda: ta.randint(0, 5, (-1,)), ValueError, ["randint", "(-1,)"]),
    (lambda: ta.randint(0.5, 5, (2,)), TypeError, ["randint", "0.5"]),
    (lambda: ta.randint(0, 5, (2,), requires_grad=True), TypeError, ["randint", "int64"]),
    (lambda: ta.randn(2, dtype=np.int32), TypeError, ["randn", "int32"]),
    (lambda: ta.rand(2, dtype=np.bool_), TypeError, ["rand", "bool"]),
    (lambda: ta.zeros_like(X, dtype=np.int8, requires_grad=True), TypeError, ["zeros_like", "int8"]),
    (lambda: ta.ones_like(X, dtype="x"), TypeError, ["ones_like", "'x'"]),
    (lambda: ta.zeros("3"), TypeError, ["zeros", "'3'"]),
    (lambda: ta.zeros(True), TypeError, ["zeros", "True"]),
    # shape
    (lambda: X.reshape(3.0, 2), TypeError, ["reshape", "3.0"]),
    (lambda: X.reshape(4, 2), ValueError, ["reshape", "(2, 3)", "(4, 2)"]),
    (lambda: X.reshape(-1, -1), ValueError, ["reshape", "(-1, -1)"]),
    (lambda: X.reshape(-2, 3), ValueError, ["reshape", "(-2, 3)"]),
    (lambda: X.permute(0, 3), ValueError, ["permute", "3"]),
    (lambda: X.permute(-3, 0), ValueError, ["permute", "-3"]),
    (lambda: X.permute(1.5, 0), TypeError, ["permute", "1.5"]),
    (lambda: X.permute(0), ValueError, ["permute", "(0,)", "(2, 3)"]),
    (lambda: X.permute(0, 0), ValueError, ["permute", "repeated"]),
    (lambda: X.transpose(0, 2), ValueError, ["transpose", "axis 2"]),
    (lambda: X.expand(3, 4), ValueError, ["expand", "(2, 3)", "(3, 4)"]),
    (lambda: X.expand(3), ValueError, ["expand", "(2, 3)", "(3,)"]),
    (lambda: X.expand(-1, 2, 3), ValueError, ["expand", "(-1, 2, 3)"]),
    (lambda: X.expand(2, 3.0), TypeError, ["expand", "3.0"]),
    (lambda: X.flatten(2), ValueError, ["flatten", "axis 2"]),
    (lambda: X.flatten(1, 0), ValueError, ["flatten", "start_dim 1", "end_dim 0"]),
    (lambda: X.squeeze(5), ValueError, ["squeeze", "axis 5"]),
    (lambda: X.unsqueeze(3), ValueError, ["unsqueeze", "axis 3"]),
    (lambda: X.unsqueeze(), TypeError, ["unsqueeze", "axis"]),
    (lambda: X.split(0), ValueError, ["split", "split_size", "0"]),
    (lambda: X.split([1, 1], axis=1), ValueError, ["split", "[1, 1]", "3"]),
    (lambda: X.split(1.5), TypeError, ["split", "1.5"]),
    (lambda: X.split(1, axis=2), ValueError, ["split", "axis 2"]),
    (lambda: X.chunk(0), ValueError, ["chunk", "chunks", "0"]),
    (lambda: X.chunk(2, axis=(0, 1)), TypeError, ["chunk", "(0, 1)"]),
    (lambda: ta.ones(3).tril(), ValueError, ["tril", "(3,)"]),
    (lambda: X.triu(1.5), TypeError, ["triu", "diagonal", "1.5"]),
    (lambda: ta.Tensor(2.0).split(1), ValueError, ["split", "0-d"]),
    # reductions
    (lambda: X.sum(axis=2), ValueError, ["sum", "axis 2"]),
    (lambda: X.mean(axis=0, dim=0), TypeError, ["mean", "dim="]),
    (lambda: X.max(axis=1.5), TypeError, ["max", "1.5"]),
    (lambda: X.min(axis=(0, 0)), ValueError, ["min", "repeated", "(0, 0)"]),
    (lambda: X.argmax(axis=(0, 1)), TypeError, ["argmax", "(0, 1)"]),
    (lambda: X.argmin(axis=5), ValueError, ["argmin", "axis 5"]),
    (lambda: X.logsumexp(axis=-3), ValueError, ["logsumexp", "-3"]),
    (lambda: X.var(correction="1"), TypeError, ["var", "correction", "'1'"]),
    (lambda: X.std(axis="0"), TypeError, ["std", "'0'"]),
    (lambda: X.std(correction=None), TypeError, ["std", "correction", "None"]),
    (lambda: X.sum(keepdims="yes"), TypeError, ["sum", "keepdims", "'yes'"]),
    (lambda: X.sum(keepdims=True, keepdim=True), TypeError, ["sum", "keepdim="]),
    (lambda: X.any(axis=3), ValueError, ["any", "axis 3"]),
    (lambda: X.all(dim=1.0), TypeError, ["all", "1.0"]),
    (lambda: ta.zeros(0, 3).max(), ValueError, ["max", "(0, 3)"]),
    (lambda: ta.zeros(0, 3).min(axis=0), ValueError, ["min", "(0, 3)"]),
    (lambda: ta.zeros(3, 0).argmax(axis=1), ValueError, ["argmax", "(3, 0)"]),
    (lambda: ta.zeros(0).logsumexp(), ValueError, ["logsumexp", "(0,)"]),
    (lambda: I64.sum(), TypeError, ["sum", "int64"]),
    # softmax family
    (lambda: X.softmax(dim=-3), ValueError, ["softmax", "-3"]),
    (lambda: X.log_softmax(axis=(0, 1)), TypeError, ["log_softmax", "(0, 1)"]),
    (lambda: ta.Tensor([1, 2], dtype=np.int32).softmax(), TypeError, ["softmax", "int32"]),
    # elementwise
    (lambda: X.clamp("a"), TypeError, ["clamp", "min", "'a'"]),
    (lambda: X.clamp(max=[1]), TypeError, ["clamp", "max", "[1]"]),
    (lambda: X.clip(min=True), TypeError, ["clamp", "min", "True"]),
    (lambda: X.leaky_relu("0.1"), TypeError, ["leaky_relu", "negative_slope", "'0.1'"]),
    (lambda: ta.Tensor([True]).sin(), TypeError, ["sin", "bool"]),
    (lambda: I64.softplus(), TypeError, ["softplus", "int64"]),
    (lambda: I64.cos(), TypeError, ["cos", "int64"]),
    (lambda: ta.Tensor([True]).silu(), TypeError, ["silu", "bool"]),
    (lambda: X + ta.ones(4), ValueError, ["add", "(2, 3)", "(4,)"]),
    (lambda: X.sub(ta.ones(4)), ValueError, ["sub", "(2, 3)", "(4,)"]),
    (lambda: X * np.ones((3, 2)), ValueError, ["mul", "(3, 2)"]),
    (lambda: X.div(np.ones(5)), ValueError, ["div", "(5,)"]),
    (lambda: X ** ta.ones(4), ValueError, ["pow", "(4,)"]),
    (lambda: ta.maximum(X, ta.ones(4)), ValueError, ["maximum", "(2, 3)", "(4,)"]),
    (lambda: ta.minimum(X, ta.ones(2, 2)), ValueError, ["minimum", "(2, 2)"]),
    (lambda: X < ta.ones(5), ValueError, ["lt", "(5,)"]),
    (lambda: X.astype(object), TypeError, ["astype", "object"]),
    (lambda: X.astype(np.complex64), TypeError, ["astype", "complex64"]),
    # matmul
    (lambda: X @ ta.ones(4, 5), ValueError, ["matmul", "(2, 3)", "(4, 5)"]),
    (lambda: ta.matmul(ta.ones(2, 3, 4), ta.ones(5, 4, 6)), ValueError, ["matmul", "(2, 3, 4)", "(5, 4, 6)"]),
    (lambda: X @ 2.0, ValueError, ["matmul", "scalars"]),
    (lambda: I64.matmul(X), TypeError, ["matmul", "int64"]),
    # indexing and masks
    (lambda: X[5], IndexError, ["getitem", "(2, 3)"]),
    (lambda: X[[0.5]], TypeError, ["getitem", "float64"]),
    (lambda: X["a"], IndexError, ["getitem", "'a'", "(2, 3)"]),
    (lambda: X[[[0, 1], [2]]], ValueError, ["getitem", "rectangular"]),
    (lambda: X[:, (5, 0)], IndexError, ["getitem", "(2, 3)"]),
    (lambda: X[ta.Tensor([0.5])], TypeError, ["getitem", "float32"]),
    (lambda: X.masked_fill(MASK, "a"), TypeError, ["masked_fill", "value", "'a'"]),
    (lambda: X.masked_fill(np.ones((3, 3), bool), 0.0), ValueError, ["masked_fill", "(3, 3)"]),
    (lambda: X.masked_fill([0.5, 1, 0], 0.0), TypeError, ["masked_fill", "float64"]),
    (lambda: ta.where(np.ones(4, bool), X, 0.0), ValueError, ["where", "(4,)", "(2, 3)"]),
    (lambda: ta.where([0.5], X, X), TypeError, ["where", "float64"]),
    # cat / stack
    (lambda: ta.cat([ta.Tensor(1.0), ta.Tensor(2.0)]), ValueError, ["cat", "zero-dimensional", "()"]),
    (lambda: ta.cat([X, X], axis=(0, 1)), TypeError, ["cat", "(0, 1)"]),
    (lambda: ta.stack([X, X], axis=(0, 1)), TypeError, ["stack", "(0, 1)"]),
    (lambda: ta.cat([X, ta.ones(3, 3)], axis=1), ValueError, ["cat", "(3, 3)"]),
    (lambda: ta.stack([X, ta.ones(3, 2)]), ValueError, ["stack", "(3, 2)"]),
    (lambda: ta.cat([]), ValueError, ["cat", "at least one"]),
    (lambda: ta.cat(X), TypeError, ["cat", "Tensor"]),
    (lambda: ta.stack([X, X], axis=3), ValueError, ["stack", "axis 3"]),
    (lambda: ta.cat([X, X], axis=2), ValueError, ["cat", "axis 2"]),
    # backward, hooks, item, backend
    (lambda: X.sum().backward("abc"), TypeError, ["backward", "<U3"]),
    (lambda: (X * 2).backward(), RuntimeError, ["backward", "(2, 3)"]),
    (lambda: (X * 2).backward(np.ones(3)), ValueError, ["backward", "(3,)", "(2, 3)"]),
    (lambda: ta.Tensor([1.0]).backward(), RuntimeError, ["backward", "does not require grad"]),
    (lambda: X.register_hook("fn"), TypeError, ["register_hook", "'fn'"]),
    (lambda: X.item(), ValueError, ["item", "(2, 3)"]),
    (lambda: ta.set_backend("cuda"), ValueError, ["set_backend", "cuda"]),
]


@pytest.mark.parametrize("call,error,parts", CASES, ids=[f"{i}-{c[2][0]}" for i, c in enumerate(CASES)])
def test_bad_input_names_the_op_and_the_value(call, error, parts):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert X.grad is None                                     # nothing ran half-way


def test_the_table_is_large():
    assert len(CASES) >= 100


def test_validate_module_api():
    """The shared checks other modules (optim, nn, functional) call: normal form out, or an error in the op's name."""
    from tinygrad_attn import validate as v

    assert v.check_axis("sum", -1, 3) == 2 and v.check_axis("sum", [0, -1], 3) == (0, 2)
    assert v.check_axis("sum", None, 3, dim=1) == 1 and v.check_axis("softmax", 0, 0, single=True) == 0
    assert v.check_keepdims("sum", False, keepdim=True) is True
    assert v.check_shape("zeros", (2, np.int64(3))) == (2, 3) and v.check_shape("zeros", ((4, 1),)) == (4, 1)
    assert v.check_shape("reshape", (-1, 2), allow_minus_one=True) == (-1, 2)
    assert v.check_int("Linear", "out_features", np.int32(4), min=1) == 4
    assert v.check_number("SGD", "lr", 1) == 1.0 and v.check_number("SGD", "lr", ta.Tensor(0.5)) == 0.5
    assert v.check_dtype("Tensor", "float64") == np.float64
    np.testing.assert_array_equal(v.index_array("embedding", ta.Tensor([1.0, 2.0])), [1, 2])
    assert v.broadcast_shape("add", (3, 1), (4,)) == (3, 4)
    for call, error, parts in [
        (lambda: v.check_number("SGD", "lr", "0.1", min=0), TypeError, ["SGD: lr must be a number", "'0.1'"]),
        (lambda: v.check_number("SGD", "lr", -0.1, min=0), ValueError, ["SGD: lr must be >= 0", "-0.1"]),
        (lambda: v.check_number("Dropout", "p", 1.0, min=0, max=1, min_open=True), None, []),
        (lambda: v.check_number("Dropout", "p", 0.0, min=0, max=1, min_open=True), ValueError, ["Dropout", "> 0"]),
        (lambda: v.check_number("Adam", "eps", True), TypeError, ["Adam: eps", "True"]),
        (lambda: v.check_int("Linear", "out_features", -3, min=1), ValueError, ["Linear: out_features", "-3"]),
        (lambda: v.check_int("Linear", "in_features", 4.0), TypeError, ["Linear: in_features must be an int", "4.0"]),
        (lambda: v.check_requires_grad("Parameter", np.int64, True), TypeError, ["Parameter", "int64"]),
    ]:
        if error is None:
            call()
            continue
        with pytest.raises(error) as info:
            call()
        assert all(p in str(info.value) for p in parts), str(info.value)
