"""Attention: F.scaled_dot_product_attention, nn.SelfAttention and nn.MultiHeadAttention.

Values against a numpy reference, gradients against finite differences (float64) and against the
closed-form formulas in SelfAttention's docstring, exact zeros where masking says so, clear errors."""

import math

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn


def leaf(rng, *shape, dtype=np.float64):
    return ta.Tensor(rng.standard_normal(shape), requires_grad=True, dtype=dtype)


def np_attention(q, k, v, allowed=None):
    """(out, weights) by the textbook formula; `allowed` is the "may attend" mask (or None)."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    total = e.sum(-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)
    return p @ v, p


def padding_mask(lengths, t):
    """(B, 1, t): key j of sequence b may be attended when j < lengths[b]."""
    return (np.arange(t)[None, :] < np.asarray(lengths)[:, None])[:, None, :]


# ----------------------------------------------------------------------------- F.scaled_dot_product_attention

SHAPES = [  # (q shape, k shape, v shape)
    ((1, 2), (1, 2), (1, 3)),                     # T = 1
    ((7, 4), (7, 4), (7, 4)),
    ((2, 13, 3), (2, 13, 3), (2, 13, 5)),         # prime T, batch axis
    ((2, 3, 5, 4), (2, 3, 5, 4), (2, 3, 5, 2)),   # batch and head axes
    ((3, 2), (5, 2), (5, 3)),                     # T_q != T_k
    ((2, 1, 4, 3), (3, 6, 3), (3, 6, 1)),         # broadcast batch axes
]


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_sdpa_values_and_gradcheck(shapes, causal, backend, rng):
    q, k, v = (leaf(rng, *s) for s in shapes)
    out = F.scaled_dot_product_attention(q, k, v, causal=causal)
    t_q, t_k = shapes[0][-2], shapes[1][-2]
    expected, _ = np_attention(q.data, k.data, v.data, np.tri(t_q, t_k, dtype=bool) if causal else None)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    assert ta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, causal=causal), [q, k, v])


@pytest.mark.parametrize("t", [1, 7, 13])
def test_sdpa_padding_mask_values_and_gradcheck(t, backend, rng):
    q, k, v = leaf(rng, 3, t, 4), leaf(rng, 3, t, 4), leaf(rng, 3, t, 2)
    mask = padding_mask([t, max(t - 2, 1), 1], t)             # (3, 1, t) broadcasts over the queries
    out = F.scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(out.data, np_attention(q.data, k.data, v.data, mask)[0], rtol=1e-10, atol=1e-12)
    assert ta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, mask=mask), [q, k, v])


def test_sdpa_float32_matches_float64(backend, rng):
    q, k, v = leaf(rng, 2, 6, 8), leaf(rng, 2, 6, 8), leaf(rng, 2, 6, 8)
    f64 = F.scaled_dot_product_attention(q, k, v, causal=True)
    f32 = F.scaled_dot_product_attention(*(ta.Tensor(t.data.astype(np.float32)) for t in (q, k, v)), causal=True)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32.data, f64.data, rtol=1e-5, atol=1e-6)


def test_causal_is_top_left_aligned_like_pytorch(rng):
    q, k, v = leaf(rng, 3, 2), leaf(rng, 5, 2), leaf(rng, 5, 4)
    _, weights = F.attention(q, k, v, causal=True)
    np.testing.assert_array_equal(weights.data != 0, np.tri(3, 5, dtype=bool))   # query i sees keys 0..i


def test_mask_and_causal_combine_with_and(rng):
    q, k, v = leaf(rng, 4, 2), leaf(rng, 4, 2), leaf(rng, 4, 2)
    mask = np.array([True, False, True, True])                # key 1 is padding
    _, weights = F.attention(q, k, v, mask=mask, causal=True)
    np.testing.assert_array_equal(weights.data != 0, np.tri(4, dtype=bool) & mask)


def test_masked_positions_get_exactly_zero_weight_and_gradient(backend, rng):
    q, k, v = leaf(rng, 2, 5, 3), leaf(rng, 2, 5, 3), leaf(rng, 2, 5, 3)
    mask = padding_mask([5, 3], 5)                            # sequence 1: keys 3, 4 are padding
    out, weights = F.attention(q, k, v, mask=mask, causal=True)
    assert np.all(weights.data[1, :, 3:] == 0) and np.all(weights.data[0][~np.tri(5, dtype=bool)] == 0)
    out.backward(rng.standard_normal(out.shape))
    assert np.all(k.grad[1, 3:] == 0) and np.all(v.grad[1, 3:] == 0)   # no gradient into padded keys
    assert np.all(q.grad[:, 0] == 0)        # query 0 sees only key 0: its weight is 1 whatever the score
    assert np.all(v.grad[0, 4] != 0)        # key 4 of sequence 0 is seen by query 4 only, but it is seen


def test_fully_masked_row_gives_zeros_not_nan(backend, rng):
    q, k, v = leaf(rng, 3, 4), leaf(rng, 3, 4), leaf(rng, 3, 2)
    mask = np.array([[False, False, False], [True, False, True], [True, True, True]])
    out, weights = F.attention(q, k, v, mask=mask)
    np.testing.assert_array_equal(weights.data[0], 0.0)
    np.testing.assert_array_equal(out.data[0], 0.0)
    out.backward(np.ones(out.shape))
    for t in (q, k, v):
        assert np.all(np.isfinite(t.grad))
    np.testing.assert_array_equal(q.grad[0], 0.0)
    assert ta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, mask=mask), [q, k, v])


def test_sdpa_masks_as_lists_and_tensors(rng):
    q = leaf(rng, 2, 3)
    as_list = F.scaled_dot_product_attention(q, q, q, mask=[[1, 0], [1, 1]])
    as_tensor = F.scaled_dot_product_attention(q, q, q, mask=ta.Tensor([[True, False], [True, True]]))
    causal = F.scaled_dot_product_attention(q, q, q, causal=True)
    np.testing.assert_array_equal(as_list.data, causal.data)
    np.testing.assert_array_equal(as_tensor.data, causal.data)


@pytest.mark.parametrize("shapes, error, message", [
    (((4, 3), (4, 2), (4, 3)), ValueError, r"scaled_dot_product_attention: q \(..., T_q, d_k\), k \(..., T_k, d_k\) "
                                           r"and v \(..., T_k, d_v\) do not fit: got shapes \(4, 3\), \(4, 2\)"),
    (((4, 3), (4, 3), (5, 3)), ValueError, r"do not fit: got shapes \(4, 3\), \(4, 3\) and \(5, 3\)"),
    (((3,), (4, 3), (4, 3)), ValueError, r"scaled_dot_product_attention: q, k, v must be at least 2-D"),
    (((2, 4, 3), (3, 4, 3), (3, 4, 3)), ValueError, r"scaled_dot_product_attention: shapes \(2,\) and \(3,\)"),
], ids=["d_k", "T_k", "1-D", "batch"])
def test_sdpa_shape_errors(shapes, error, message):
    q, k, v = (ta.Tensor(np.zeros(s)) for s in shapes)
    with pytest.raises(error, match=message):
        F.scaled_dot_product_attention(q, k, v)


def test_sdpa_dtype_and_mask_errors(rng):
    q = leaf(rng, 4, 3)
    with pytest.raises(TypeError, match="q, k and v must share one dtype, got float64, float32 and float64"):
        F.scaled_dot_product_attention(q, ta.Tensor(q.data.astype(np.float32)), q)
    with pytest.raises(TypeError, match="scaled_dot_product_attention: k must be a float32 or float64 tensor"):
        F.scaled_dot_product_attention(q, ta.Tensor(np.ones((4, 3), np.int64), dtype=np.int64), q)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) does not broadcast to the attention scores' "
                                         r"shape \(4, 4\)"):
        F.scaled_dot_product_attention(q, q, q, mask=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 4, 4\) does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, mask=np.ones((2, 4, 4), bool))   # would grow the output
    with pytest.raises(TypeError, match="mask must be boolean"):
        F.scaled_dot_product_attention(q, q, q, mask=np.full((4, 4), 2))


# ----------------------------------------------------------------------------- nn.SelfAttention


def closed_form_grads(x, Wq, Wk, Wv, P, dH):
    """The gradients listed in SelfAttention's docstring, in numpy, for x (..., T, d_model)."""
    Q, K, V = x @ Wq, x @ Wk, x @ Wv
    d_k = Wq.shape[1]
    T = lambda a: np.swapaxes(a, -1, -2)                       # noqa: E731 (matrix transpose)
    batch_sum = lambda a: a.reshape(-1, *a.shape[-2:]).sum(0)  # noqa: E731 (the weights are shared)
    dV = T(P) @ dH
    dP = dH @ T(V)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))
    dQ = dS @ K / np.sqrt(d_k)
    dK = T(dS) @ Q / np.sqrt(d_k)
    return {"V": dV, "P": dP, "S": dS, "Q": dQ, "K": dK,
            "W_q": batch_sum(T(x) @ dQ), "W_k": batch_sum(T(x) @ dK), "W_v": batch_sum(T(x) @ dV),
            "x": dQ @ Wq.T + dK @ Wk.T + dV @ Wv.T}


@pytest.mark.parametrize("x_shape, d_k, d_v, causal, use_mask", [
    ((1, 4), None, None, False, False),
    ((7, 4), 3, 5, False, False),
    ((2, 7, 4), 3, 2, True, False),
    ((3, 13, 5), None, None, False, True),
    ((2, 5, 3), 2, 4, True, True),
], ids=["T=1", "T=7", "batch-causal", "T=13-padding", "causal-and-padding"])
def test_self_attention_gradients_match_the_docstring_formulas(x_shape, d_k, d_v, causal, use_mask, backend, rng):
    layer = nn.SelfAttention(x_shape[-1], d_k=d_k, d_v=d_v, causal=causal, keep_intermediates=True).to(np.float64)
    x = leaf(rng, *x_shape)
    mask = padding_mask(np.arange(x_shape[0], 0, -1) * 2, x_shape[1]) if use_mask else None
    H = layer(x, mask=mask)
    steps = layer.intermediates
    for t in steps.values():
        t.retain_grad()
    dH = rng.standard_normal(H.shape)
    H.backward(dH)

    P = steps["P"].data
    np.testing.assert_array_equal(layer.attn, P)
    expected = closed_form_grads(x.data, layer.W_q.data, layer.W_k.data, layer.W_v.data, P, dH)
    got = {**{name: steps[name].grad for name in ("V", "P", "S", "Q", "K")},
           "W_q": layer.W_q.grad, "W_k": layer.W_k.grad, "W_v": layer.W_v.grad, "x": x.grad}
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-9, atol=1e-12, err_msg=f"d{name}")
    np.testing.assert_allclose(steps["H"].grad, dH)

    allowed = F.attention_mask(mask, causal, P.shape)
    if allowed is not None:                                    # masked scores: weight 0 and gradient exactly 0
        blocked = np.broadcast_to(~allowed, P.shape)
        assert blocked.any() and np.all(P[blocked] == 0) and np.all(steps["S"].grad[blocked] == 0)
    layer.zero_grad()
    assert ta.gradcheck(lambda x, *ps: layer(x, mask=mask), [x, *layer.parameters()])


@pytest.mark.parametrize("keep", [False, True], ids=["fused", "op-by-op"])
def test_self_attention_forward_matches_formula_and_shapes(keep, backend, rng):
    layer = nn.SelfAttention(6, d_k=4, d_v=3, keep_intermediates=keep)
    assert [(n, p.shape, p.dtype) for n, p in layer.named_parameters()] == [
        ("W_q", (6, 4), np.float32), ("W_k", (6, 4), np.float32), ("W_v", (6, 3), np.float32)]
    x = ta.Tensor(rng.standard_normal((2, 5, 6)).astype(np.float32))
    H = layer(x)
    Wq, Wk, Wv = (p.data for p in layer.parameters())
    expected, weights = np_attention(x.data @ Wq, x.data @ Wk, x.data @ Wv)
    assert H.shape == (2, 5, 3) and H.dtype == np.float32
    np.testing.assert_allclose(H.data, expected, rtol=1e-5, atol=1e-6)
    assert layer.attn.shape == (2, 5, 5) and isinstance(layer.attn, np.ndarray)
    np.testing.assert_allclose(layer.attn, weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.attn.sum(-1), 1.0, rtol=1e-6)
    if keep:
        assert set(layer.intermediates) == {"Q", "K", "V", "S", "P", "H"} and layer.intermediates["H"] is H
    else:
        assert layer.intermediates == {}
    layer(x[0], mask=np.tri(5, dtype=bool))
    assert layer.attn.shape == (5, 5) and np.all(np.triu(layer.attn, 1) == 0)


def test_self_attention_default_sizes_and_init(rng):
    ta.manual_seed(0)
    layer = nn.SelfAttention(64)
    bound = math.sqrt(6 / (64 + 64))                           # xavier_uniform, as PyTorch's q/k/v projections
    for p in layer.parameters():
        assert p.shape == (64, 64) and np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.95 * bound
    ta.manual_seed(0)
    np.testing.assert_array_equal(nn.SelfAttention(64).W_q.data, layer.W_q.data)


def test_self_attention_errors(rng):
    layer = nn.SelfAttention(4)
    with pytest.raises(ValueError, match=r"SelfAttention: expected x of shape \(T, 4\) or \(B, T, 4\), got \(3, 5\)"):
        layer(ta.Tensor(np.zeros((3, 5))))
    with pytest.raises(ValueError, match=r"SelfAttention: expected x of shape .* got \(1, 2, 3, 4\)"):
        layer(ta.Tensor(np.zeros((1, 2, 3, 4))))
    with pytest.raises(ValueError, match=r"SelfAttention: mask of shape \(2, 2\) does not broadcast .* \(3, 3\)"):
        layer(ta.Tensor(np.zeros((3, 4))), mask=np.ones((2, 2), bool))
    with pytest.raises(TypeError, match="SelfAttention: x must be a Tensor, got ndarray"):
        layer(np.zeros((3, 4)))


# ----------------------------------------------------------------------------- nn.MultiHeadAttention


@pytest.mark.parametrize("x_shape, n_heads, causal, mask_kind", [
    ((1, 4), 2, False, None),
    ((7, 6), 3, True, None),
    ((2, 5, 8), 4, False, "batch"),
    ((2, 7, 6), 1, True, "shared"),
])
def test_multi_head_attention_is_heads_of_sdpa(x_shape, n_heads, causal, mask_kind, backend, rng):
    d_model, T = x_shape[-1], x_shape[-2]
    mha = nn.MultiHeadAttention(d_model, n_heads, causal=causal).to(np.float64)
    x = leaf(rng, *x_shape)
    mask = {None: None, "shared": rng.random((T, T)) < 0.7,
            "batch": rng.random((x_shape[0], T, T)) < 0.7}[mask_kind]
    if mask is not None:
        mask[..., 0] = True                                   # every query may attend at least key 0
    out = mha(x, mask=mask)
    assert out.shape == x_shape and mha.attn.shape == (*x_shape[:-2], n_heads, T, T)

    d_h = d_model // n_heads
    Q, K, V = (x.data @ W.data for W in (mha.W_q, mha.W_k, mha.W_v))
    allowed = np.ones((T, T), bool) if mask is None else mask
    if causal:
        allowed = allowed & np.tri(T, dtype=bool)
    heads, weights = [], []
    for h in range(n_heads):                                   # head h: columns h*d_h:(h+1)*d_h
        cols = slice(h * d_h, (h + 1) * d_h)
        o, p = np_attention(Q[..., cols], K[..., cols], V[..., cols], allowed)
        heads.append(o)
        weights.append(p)
    expected = np.concatenate(heads, axis=-1) @ mha.W_o.data  # heads side by side, in order, then W_o
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mha.attn, np.stack(weights, axis=-3), rtol=1e-10, atol=1e-12)
    assert ta.gradcheck(lambda x, *ps: mha(x, mask=mask), [x, *mha.parameters()])


def test_multi_head_attention_parameters_and_init():
    ta.manual_seed(0)
    mha = nn.MultiHeadAttention(48, 4)
    assert [n for n, _ in mha.named_parameters()] == ["W_q", "W_k", "W_v", "W_o"]
    in_bound = math.sqrt(6 / (48 + 3 * 48))                   # xavier over PyTorch's (3 d, d) in_proj_weight
    for p in (mha.W_q, mha.W_k, mha.W_v):
        assert p.shape == (48, 48) and p.dtype == np.float32 and 0.95 * in_bound < np.abs(p.data).max() <= in_bound
    out_bound = 1 / math.sqrt(48)                              # out_proj is a Linear
    assert 0.95 * out_bound < np.abs(mha.W_o.data).max() <= out_bound


def test_multi_head_attention_errors(rng):
    with pytest.raises(ValueError, match="MultiHeadAttention: d_model=10 must be a positive multiple of n_heads=3"):
        nn.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="n_heads=0"):
        nn.MultiHeadAttention(8, 0)
    mha = nn.MultiHeadAttention(4, 2)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: mask must be \(T, T\) or \(B, T, T\) for x of shape "
                                         r"\(3, 4\), got \(2, 3, 3\)"):
        mha(ta.Tensor(np.zeros((3, 4))), mask=np.ones((2, 3, 3), bool))
    with pytest.raises(ValueError, match=r"got \(3,\)"):
        mha(ta.Tensor(np.zeros((3, 4))), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected x of shape \(T, 4\) or \(B, T, 4\)"):
        mha(ta.Tensor(np.zeros((3, 5))))
