"""tinygrad_attn.functional: values against numpy, gradients against finite differences (float64),
and clear errors on bad input. Attention has its own file (test_attention.py)."""

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F


def leaf(rng, *shape, dtype=np.float64):
    return ta.Tensor(rng.standard_normal(shape), requires_grad=True, dtype=dtype)


def np_log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------- softmax family


def test_softmax_and_log_softmax(backend, rng):
    x = leaf(rng, 3, 7)
    np.testing.assert_allclose(F.softmax(x).data, np.exp(np_log_softmax(x.data)))
    np.testing.assert_allclose(F.log_softmax(x, dim=0).data, np_log_softmax(x.data.T).T)
    assert ta.gradcheck(lambda a: F.softmax(a, axis=0), [x])
    assert ta.gradcheck(F.log_softmax, [x])


def test_softmax_of_a_fully_masked_row_is_zero(backend):
    x = ta.Tensor(np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]]))
    out = F.softmax(x).data
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1].sum(), 1.0)


def test_softmax_rejects_integer_tensors():
    with pytest.raises(TypeError, match="softmax: input must be a float32 or float64 tensor"):
        F.softmax(ta.Tensor(np.arange(3), dtype=np.int64))


# ----------------------------------------------------------------------------- cross_entropy


def np_cross_entropy(logits, targets, ignore_index=None):
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    keep = np.ones(len(targets), bool) if ignore_index is None else targets != ignore_index
    rows = -np_log_softmax(logits)[np.arange(len(targets)), np.where(keep, targets, 0)]
    return rows[keep].mean()


@pytest.mark.parametrize("shape", [(1, 1), (4, 5), (13, 2), (2, 3, 7), (1, 1, 3)], ids=str)
def test_cross_entropy_matches_numpy_and_gradcheck(shape, backend, rng):
    logits = leaf(rng, *shape)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    loss = F.cross_entropy(logits, targets)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), np_cross_entropy(logits.data, targets), rtol=1e-12)
    assert ta.gradcheck(lambda a: F.cross_entropy(a, targets), [logits])


def test_cross_entropy_ignore_index(backend, rng):
    logits = leaf(rng, 2, 4, 5)
    targets = np.array([[1, -100, 4, 0], [-100, 2, 2, 3]])
    loss = F.cross_entropy(logits, targets, ignore_index=-100)
    np.testing.assert_allclose(loss.item(), np_cross_entropy(logits.data, targets, -100), rtol=1e-12)
    loss.backward()
    np.testing.assert_array_equal(logits.grad[0, 1], 0.0)     # ignored positions get no gradient
    np.testing.assert_array_equal(logits.grad[1, 0], 0.0)
    assert ta.gradcheck(lambda a: F.cross_entropy(a, targets, ignore_index=-100), [logits])


def test_cross_entropy_ignore_index_inside_the_class_range(backend, rng):
    logits, targets = leaf(rng, 6, 3), np.array([0, 1, 2, 0, 0, 1])
    loss = F.cross_entropy(logits, targets, ignore_index=0)   # e.g. a padding token with id 0
    np.testing.assert_allclose(loss.item(), np_cross_entropy(logits.data, targets, 0), rtol=1e-12)


def test_cross_entropy_all_ignored_is_nan_like_pytorch(backend, rng):
    logits = leaf(rng, 3, 4)
    loss = F.cross_entropy(logits, [-1, -1, -1], ignore_index=-1)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(logits.grad, 0.0)


def test_cross_entropy_targets_as_lists_and_float_tensors(backend, rng):
    logits = leaf(rng, 3, 4, dtype=np.float32)
    a = F.cross_entropy(logits, [0, 3, 1])
    b = F.cross_entropy(logits, ta.Tensor([0.0, 3.0, 1.0]))
    assert a.dtype == np.float32 and a.item() == b.item()


@pytest.mark.parametrize("logits_shape, targets, error, message", [
    ((4, 5), [0, 1, 2], ValueError,
     r"cross_entropy: logits of shape \(4, 5\) need targets of shape \(4,\), got \(3,\)"),
    ((2, 3), [0, 3], ValueError, r"cross_entropy: target 3 is out of range for 3 classes \(logits shape \(2, 3\)"),
    ((2, 3), [0, -1], ValueError, r"cross_entropy: target -1 is out of range for 3 classes"),
    ((2, 3), [0.5, 1.0], TypeError, r"cross_entropy: expected integer or boolean indices"),
    ((2, 3), [True, False], TypeError, r"cross_entropy: targets must be integer class indices"),
    ((5,), [1], ValueError, r"cross_entropy: logits must be \(N, C\) or \(B, T, C\), got shape \(5,\)"),
    ((1, 2, 3, 4), np.zeros((1, 2, 3), int), ValueError, r"cross_entropy: logits must be \(N, C\) or \(B, T, C\)"),
], ids=["shape", "too-big", "negative", "fractional", "bool", "1-D", "4-D"])
def test_cross_entropy_errors(logits_shape, targets, error, message):
    with pytest.raises(error, match=message):
        F.cross_entropy(ta.Tensor(np.zeros(logits_shape)), targets)


def test_cross_entropy_bad_ignore_index():
    with pytest.raises(TypeError, match="cross_entropy: ignore_index must be an int, got"):
        F.cross_entropy(ta.Tensor(np.zeros((2, 3))), [0, 1], ignore_index=0.5)


# ----------------------------------------------------------------------------- mse_loss


def test_mse_loss(backend, rng):
    a, b = leaf(rng, 3, 5), leaf(rng, 3, 5)
    np.testing.assert_allclose(F.mse_loss(a, b).item(), np.mean((a.data - b.data) ** 2))
    np.testing.assert_allclose(F.mse_loss(a, b.data).item(), np.mean((a.data - b.data) ** 2))
    assert ta.gradcheck(F.mse_loss, [a, b])


def test_mse_loss_warns_when_shapes_broadcast(rng):
    a, b = leaf(rng, 4, 1), leaf(rng, 4)
    with pytest.warns(UserWarning, match=r"mse_loss: input shape \(4, 1\) and target shape \(4,\) differ"):
        assert F.mse_loss(a, b).shape == ()
    with pytest.raises(ValueError, match=r"mse_loss: shapes \(3,\) and \(4,\) cannot be broadcast"):
        F.mse_loss(leaf(rng, 3), leaf(rng, 4))


# ----------------------------------------------------------------------------- layer pieces


def test_linear(backend, rng):
    x, w, b = leaf(rng, 2, 3, 4), leaf(rng, 4, 5), leaf(rng, 5)
    np.testing.assert_allclose(F.linear(x, w, b).data, x.data @ w.data + b.data)
    np.testing.assert_allclose(F.linear(x, w).data, x.data @ w.data)
    assert ta.gradcheck(F.linear, [x, w, b])
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3, 4\) does not fit weight of shape \(5, 4\)"):
        F.linear(x, leaf(rng, 5, 4))


@pytest.mark.parametrize("x_shape", [(1, 1), (7, 1), (13, 1), (2, 1, 1), (3, 5, 1), (1, 1, 1)])
@pytest.mark.parametrize("n_in,n_out", [(1, 1), (3, 7), (13, 2)])
def test_linear_fused_op_gradcheck(backend, rng, x_shape, n_in, n_out):
    """The one-node x W + b (ops.Linear) on batch axes and edge sizes; a transposed x too."""
    x, w, b = leaf(rng, *x_shape[:-1], n_in), leaf(rng, n_in, n_out), leaf(rng, n_out)
    out = F.linear(x, w, b)
    assert type(out._ctx).__name__ == "Linear"
    np.testing.assert_allclose(out.data, x.data @ w.data + b.data, rtol=1e-12)
    assert ta.gradcheck(F.linear, [x, w, b])
    xt = ta.Tensor(rng.standard_normal((n_in, *x_shape[:-1][::-1])).T, requires_grad=True)   # [..., in], F-order
    assert ta.gradcheck(F.linear, [xt, w, b])


def test_linear_other_bias_shapes_and_dtypes(backend, rng):
    x, w = leaf(rng, 4, 3), leaf(rng, 3, 2)
    b_col = leaf(rng, 4, 1)                                         # broadcast bias: the plain x @ W + b path
    np.testing.assert_allclose(F.linear(x, w, b_col).data, x.data @ w.data + b_col.data)
    assert ta.gradcheck(F.linear, [x, w, b_col])
    v = leaf(rng, 3)                                                # a single vector in
    np.testing.assert_allclose(F.linear(v, w, leaf(rng, 2)).shape, (2,))
    w32, b32 = leaf(rng, 3, 2, dtype=np.float32), leaf(rng, 2, dtype=np.float32)
    out = F.linear(x, w32, b32)                                     # float64 x, float32 layer: float64 out
    assert out.dtype == np.float64
    out.sum().backward()
    assert w32.grad.dtype == np.float32 and b32.grad.dtype == np.float32
    np.testing.assert_allclose(b32.grad, [4.0, 4.0])
    with pytest.raises(TypeError, match=r"linear: bias must be a float32 or float64 tensor"):
        F.linear(x, w, ta.Tensor(np.array([True, False])))


def test_layer_norm(backend, rng):
    x, w, b = leaf(rng, 2, 7), leaf(rng, 7), leaf(rng, 7)
    xhat = (x.data - x.data.mean(-1, keepdims=True)) / np.sqrt(x.data.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(F.layer_norm(x, w, b).data, xhat * w.data + b.data, rtol=1e-10)
    assert ta.gradcheck(F.layer_norm, [x, w, b])
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(2, 7\) needs weight and bias of shape \(7,\)"):
        F.layer_norm(x, leaf(rng, 6), b)


def test_layer_norm_promotes_mixed_dtypes(backend, rng):
    x, w, b = leaf(rng, 3, 4), leaf(rng, 4, dtype=np.float32), leaf(rng, 4, dtype=np.float32)
    out = F.layer_norm(x, w, b)
    assert out.dtype == np.float64
    out.sum().backward()
    assert w.grad.dtype == np.float32 and x.grad.dtype == np.float64


def test_gelu_and_relu(backend, rng):
    x = leaf(rng, 3, 5)
    c = np.sqrt(2 / np.pi)
    np.testing.assert_allclose(F.gelu(x).data, 0.5 * x.data * (1 + np.tanh(c * (x.data + 0.044715 * x.data**3))))
    np.testing.assert_array_equal(F.relu(x).data, np.maximum(x.data, 0))


def test_dropout(rng):
    x = ta.Tensor(np.ones((200, 100)), requires_grad=True)
    ta.manual_seed(0)
    y = F.dropout(x, 0.25)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)        # survivors are scaled by 1/(1-p)
    assert abs(kept.mean() - 0.75) < 0.01
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad, kept / 0.75)         # the gradient goes through the same mask
    ta.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, 0.25).data, y.data)    # the mask comes from ta's generator
    assert F.dropout(x, 0.25, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0.0)
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)


def test_embedding(backend, rng):
    w = leaf(rng, 5, 3)
    ids = np.array([[0, 4, 4], [2, 4, 0]])
    out = F.embedding(ids, w)
    np.testing.assert_array_equal(out.data, w.data[ids])
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(w.grad[:, 0], [2, 0, 1, 0, 3])   # counts: repeated indices accumulate
    with pytest.raises(ValueError, match=r"embedding: index 5 is out of range for a table of 5 rows"):
        F.embedding([1, 5], w)
    with pytest.raises(ValueError, match=r"embedding: index -1 is out of range"):
        F.embedding([-1], w)
    with pytest.raises(TypeError, match="embedding: indices must be integers"):
        F.embedding([True, False], w)


@pytest.mark.parametrize("ids_shape", [(1,), (7,), (2, 13), (3, 1, 5)])
def test_embedding_gradcheck(backend, rng, ids_shape):
    w = leaf(rng, 5, 3)
    ids = rng.integers(0, 5, ids_shape)                             # 5 rows: ids repeat
    assert type(F.embedding(ids, w)._ctx).__name__ == "Embedding"
    assert ta.gradcheck(lambda t: F.embedding(ids, t), [w])
