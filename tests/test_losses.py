"""F.nll_loss, F.one_hot, F.cross_entropy(label_smoothing=...), and attention over zero keys: values against
numpy written out here, gradients by gradcheck in float64, on both backends."""

import math

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F


def leaf(rng, *shape):
    return ta.Tensor(rng.standard_normal(shape), requires_grad=True, dtype=np.float64)


def np_log_softmax(a):
    shifted = a - a.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


SHAPES = [(5, 3), (1, 1), (7, 2), (2, 3, 5), (3, 1, 4)]         # (N, C) and (B, T, C), sizes 1, odd and prime


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_nll_loss_matches_numpy_and_gradcheck(shape, backend, rng):
    x = leaf(rng, *shape)
    t = rng.integers(0, shape[-1], shape[:-1])
    loss = F.nll_loss(x, t)
    picked = np.take_along_axis(x.data, t[..., None], axis=-1)[..., 0]   # x[..., t]
    np.testing.assert_allclose(loss.data, -picked.mean(), rtol=1e-12)
    assert ta.gradcheck(lambda x: F.nll_loss(x, t), [x])


def test_nll_loss_gradient_is_minus_one_over_n_at_each_target(backend, rng):
    x = leaf(rng, 4, 3)
    t = np.array([2, 0, 2, 1])
    F.nll_loss(x, t).backward()
    expected = np.zeros((4, 3))
    expected[np.arange(4), t] = -1 / 4
    np.testing.assert_array_equal(x.grad, expected)


def test_nll_loss_ignore_index(backend, rng):
    x = leaf(rng, 2, 4, 3)
    t = np.array([[0, -100, 2, 1], [-100, -100, 1, 0]])
    keep = t != -100
    loss = F.nll_loss(x, t, ignore_index=-100)
    picked = x.data[keep, t[keep]]
    np.testing.assert_allclose(loss.data, -picked.mean(), rtol=1e-12)
    assert ta.gradcheck(lambda x: F.nll_loss(x, t, ignore_index=-100), [x])
    loss.backward()
    assert np.all(x.grad[~keep] == 0)                          # ignored positions get no gradient


def test_nll_loss_of_log_softmax_is_cross_entropy(backend, rng):
    x = leaf(rng, 3, 5, 4)
    t = rng.integers(0, 4, (3, 5))
    t[0, 1] = 2
    a, b = F.nll_loss(F.log_softmax(x), t, ignore_index=2), F.cross_entropy(x, t, ignore_index=2)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


def test_nll_loss_all_ignored_is_nan_like_pytorch(backend, rng):
    x = leaf(rng, 3, 2)
    loss = F.nll_loss(x, [1, 1, 1], ignore_index=1)
    assert math.isnan(float(loss.data))
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros((3, 2)))   # no position counts: no gradient (as cross_entropy)


def test_nll_loss_float32_stays_float32(rng):
    x = ta.Tensor(rng.standard_normal((4, 3)), requires_grad=True, dtype=np.float32)
    loss = F.nll_loss(x, [0, 1, 2, 0])
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32


def test_one_hot(rng):
    idx = np.array([[0, 2], [1, 1], [3, 0]])
    out = F.one_hot(idx, 4)
    assert out.shape == (3, 2, 4) and out.dtype == np.float32 and not out.requires_grad
    np.testing.assert_array_equal(out.data, np.eye(4, dtype=np.float32)[idx])
    np.testing.assert_array_equal(F.one_hot([2], 3).data, [[0, 0, 1]])               # a list
    np.testing.assert_array_equal(F.one_hot(ta.Tensor([1.0, 0.0]), 2).data, [[0, 1], [1, 0]])   # a float Tensor
    assert F.one_hot(np.zeros(0, np.int64), 5).shape == (0, 5)


@pytest.mark.parametrize("smoothing", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 7), (1, 1, 2)], ids=str)
def test_cross_entropy_label_smoothing_matches_the_formula(shape, smoothing, backend, rng):
    x = leaf(rng, *shape)
    t = rng.integers(0, shape[-1], shape[:-1])
    n_classes = shape[-1]
    target = (1 - smoothing) * np.eye(n_classes)[t] + smoothing / n_classes   # the smoothed distribution
    expected = -(target * np_log_softmax(x.data)).sum(axis=-1).mean()
    loss = F.cross_entropy(x, t, label_smoothing=smoothing)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12)
    assert ta.gradcheck(lambda x: F.cross_entropy(x, t, label_smoothing=smoothing), [x])


def test_cross_entropy_label_smoothing_with_ignore_index(backend, rng):
    x = leaf(rng, 2, 5, 4)
    t = rng.integers(0, 4, (2, 5))
    t[0, :2] = t[1, 4] = -1
    keep = t != -1
    target = 0.8 * np.eye(4)[np.where(keep, t, 0)] + 0.2 / 4
    expected = -(target * np_log_softmax(x.data)).sum(axis=-1)[keep].mean()   # ignored positions left out
    loss = F.cross_entropy(x, t, ignore_index=-1, label_smoothing=0.2)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12)
    assert ta.gradcheck(lambda x: F.cross_entropy(x, t, ignore_index=-1, label_smoothing=0.2), [x])


def test_cross_entropy_label_smoothing_zero_is_the_plain_loss(backend, rng):
    x = leaf(rng, 4, 3)
    t = [0, 2, 1, 1]
    np.testing.assert_array_equal(F.cross_entropy(x, t, label_smoothing=0.0).data, F.cross_entropy(x, t).data)


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)], ids=str)
def test_attention_over_zero_keys_gives_zeros(batch, backend, rng):
    """No keys at all is the limit of a fully masked row: a zero output and zero gradients, on both backends
    (the numpy reference used to raise numpy's "zero-size array to reduction operation")."""
    q = leaf(rng, *batch, 3, 4)
    k, v = leaf(rng, *batch, 0, 4), leaf(rng, *batch, 0, 5)
    out = F.scaled_dot_product_attention(q, k, v)
    assert out.shape == (*batch, 3, 5)
    np.testing.assert_array_equal(out.data, np.zeros((*batch, 3, 5)))
    out.backward(rng.standard_normal(out.shape))
    np.testing.assert_array_equal(q.grad, np.zeros(q.shape))
    assert k.grad.shape == k.shape and v.grad.shape == v.shape
    out_causal = F.scaled_dot_product_attention(q, k, v, causal=True)
    np.testing.assert_array_equal(out_causal.data, np.zeros((*batch, 3, 5)))
