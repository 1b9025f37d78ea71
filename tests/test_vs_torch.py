"""Layers against PyTorch on copied weights: outputs and gradients (float64), on both backends.

Conventions differ in two places, handled when copying: our Linear weight is (in, out), PyTorch's
(out, in); and nn.MultiheadAttention's boolean attn_mask marks what may NOT be attended, while
F.scaled_dot_product_attention's (and ours everywhere) marks what may."""

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn

torch = pytest.importorskip("torch")
tF = torch.nn.functional


def pair(rng, *shape):
    """The same float64 values as our leaf and as a torch leaf."""
    x = rng.standard_normal(shape)
    return ta.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def close(ours, theirs, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


def test_linear(backend, rng):
    layer = nn.Linear(5, 3).to(np.float64)
    ref = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data.T))
        ref.bias.copy_(torch.tensor(layer.bias.data))
    x, tx = pair(rng, 2, 4, 5)
    g = rng.standard_normal((2, 4, 3))
    out, tout = layer(x), ref(tx)
    close(out.data, tout)
    out.backward(g)
    tout.backward(torch.tensor(g))
    close(x.grad, tx.grad)
    close(layer.weight.grad, ref.weight.grad.T)
    close(layer.bias.grad, ref.bias.grad)


def test_layer_norm(backend, rng):
    layer = nn.LayerNorm(6).to(np.float64)
    layer.weight.data[:] = rng.standard_normal(6)
    layer.bias.data[:] = rng.standard_normal(6)
    ref = torch.nn.LayerNorm(6).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data))
        ref.bias.copy_(torch.tensor(layer.bias.data))
    x, tx = pair(rng, 3, 7, 6)
    g = rng.standard_normal((3, 7, 6))
    out, tout = layer(x), ref(tx)
    close(out.data, tout)
    out.backward(g)
    tout.backward(torch.tensor(g))
    close(x.grad, tx.grad, rtol=1e-9)
    close(layer.weight.grad, ref.weight.grad)
    close(layer.bias.grad, ref.bias.grad)


@pytest.mark.parametrize("t_q, t_k, causal, use_mask", [
    (5, 5, False, False), (7, 7, True, False), (13, 13, False, True), (3, 6, True, False), (6, 4, True, True),
], ids=["plain", "causal", "mask", "causal-Tq<Tk", "causal-mask-Tq>Tk"])
def test_scaled_dot_product_attention(t_q, t_k, causal, use_mask, backend, rng):
    (q, tq), (k, tk), (v, tv) = pair(rng, 2, 3, t_q, 4), pair(rng, 2, 3, t_k, 4), pair(rng, 2, 3, t_k, 5)
    mask = rng.random((2, 1, t_q, t_k)) < 0.7 if use_mask else None
    if mask is not None:
        mask[..., 0] = True                                   # fully masked rows: see the next test
    out = F.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    if causal and mask is not None:                           # PyTorch takes one or the other: combine them here
        tout = tF.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask & np.tri(t_q, t_k, dtype=bool)))
    else:
        tmask = None if mask is None else torch.tensor(mask)
        tout = tF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=causal)
    close(out.data, tout)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for ours, theirs in ((q, tq), (k, tk), (v, tv)):
        close(ours.grad, theirs.grad, rtol=1e-9)


def test_fully_masked_rows_give_zeros_as_pytorch(backend, rng):
    (q, tq), (k, tk), (v, tv) = pair(rng, 2, 4, 3), pair(rng, 2, 5, 3), pair(rng, 2, 5, 2)
    mask = rng.random((2, 4, 5)) < 0.5
    mask[0, 1] = mask[1, 3] = False
    out = F.scaled_dot_product_attention(q, k, v, mask=mask)
    tout = tF.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask))
    close(out.data, tout)
    assert np.all(out.data[0, 1] == 0) and np.all(out.data[1, 3] == 0)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for ours, theirs in ((q, tq), (k, tk), (v, tv)):
        close(ours.grad, theirs.grad, rtol=1e-9)


@pytest.mark.parametrize("batched, causal, use_mask", [(True, False, False), (True, True, True), (False, False, True)],
                         ids=["batch", "batch-causal-mask", "unbatched-mask"])
def test_multi_head_attention(batched, causal, use_mask, backend, rng):
    d, heads, T = 8, 2, 6
    mha = nn.MultiHeadAttention(d, heads, causal=causal).to(np.float64)
    ref = torch.nn.MultiheadAttention(d, heads, bias=False, batch_first=True).double()
    with torch.no_grad():                                     # in_proj_weight = [W_q^T; W_k^T; W_v^T]
        ref.in_proj_weight.copy_(torch.tensor(np.concatenate([mha.W_q.data.T, mha.W_k.data.T, mha.W_v.data.T])))
        ref.out_proj.weight.copy_(torch.tensor(mha.W_o.data.T))
    shape = (3, T, d) if batched else (T, d)
    x, tx = pair(rng, *shape)
    allowed = np.ones((T, T), bool)
    mask = None
    if use_mask:
        mask = rng.random(shape[:-1] + (T,)) < 0.6
        mask[..., 0] = True
        allowed = allowed & mask
    if causal:
        allowed = allowed & np.tri(T, dtype=bool)
    if allowed.ndim == 3:                                     # PyTorch wants (B * heads, T, T) for a per-batch mask
        allowed = np.repeat(allowed, heads, axis=0)
    out = mha(x, mask=mask)
    tout, tweights = ref(tx, tx, tx, attn_mask=torch.tensor(~allowed), average_attn_weights=False)
    close(out.data, tout)
    close(mha.attn, tweights)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    close(x.grad, tx.grad, rtol=1e-9)
    w_in = ref.in_proj_weight.grad.numpy()
    for i, W in enumerate((mha.W_q, mha.W_k, mha.W_v)):
        close(W.grad, torch.tensor(w_in[i * d:(i + 1) * d].T), rtol=1e-9)
    close(mha.W_o.grad, ref.out_proj.weight.grad.T, rtol=1e-9)


def test_cross_entropy_with_ignore_index(backend, rng):
    logits, tlogits = pair(rng, 2, 5, 7)
    targets = rng.integers(0, 7, size=(2, 5))
    targets[0, 1] = targets[1, 3] = -100
    loss = F.cross_entropy(logits, targets, ignore_index=-100)
    tloss = tF.cross_entropy(tlogits.reshape(-1, 7), torch.tensor(targets.reshape(-1)), ignore_index=-100)
    close(loss.data, tloss)
    loss.backward()
    tloss.backward()
    close(logits.grad, tlogits.grad)


def test_transformer_block(backend, rng):
    """Pre-LN block = the same computation written with torch modules (GELU, tanh approximation)."""
    d, heads, T = 8, 2, 5
    block = nn.TransformerBlock(d, heads, d_ff=12, causal=True).to(np.float64)
    ln1, ln2 = torch.nn.LayerNorm(d).double(), torch.nn.LayerNorm(d).double()
    mha = torch.nn.MultiheadAttention(d, heads, bias=False, batch_first=True).double()
    fc1, fc2 = torch.nn.Linear(d, 12).double(), torch.nn.Linear(12, d).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.tensor(np.concatenate([block.mha.W_q.data.T, block.mha.W_k.data.T,
                                                              block.mha.W_v.data.T])))
        mha.out_proj.weight.copy_(torch.tensor(block.mha.W_o.data.T))
        for ours, theirs in ((block.mlp[0], fc1), (block.mlp[2], fc2)):
            theirs.weight.copy_(torch.tensor(ours.weight.data.T))
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    x, tx = pair(rng, 2, T, d)
    future = torch.tensor(~np.tri(T, dtype=bool))
    h = ln1(tx)
    th = tx + mha(h, h, h, attn_mask=future)[0]
    tout = th + fc2(tF.gelu(fc1(ln2(th)), approximate="tanh"))
    out = block(x)
    close(out.data, tout)
    out.backward(np.ones(out.shape))
    tout.sum().backward()
    close(x.grad, tx.grad, rtol=1e-9)
    close(block.mlp[0].weight.grad, fc1.weight.grad.T, rtol=1e-9)


@pytest.mark.parametrize("ignore", [None, 2], ids=["all-kept", "ignore-2"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)], ids=str)
def test_nll_loss(shape, ignore, backend, rng):
    x, tx = pair(rng, *shape)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    targets.flat[0] = 2
    loss = F.nll_loss(F.log_softmax(x), targets, ignore_index=ignore)
    C = shape[-1]
    tloss = tF.nll_loss(tF.log_softmax(tx, -1).reshape(-1, C), torch.tensor(targets.reshape(-1)),
                        ignore_index=-100 if ignore is None else ignore)
    close(loss.data, tloss)
    loss.backward()
    tloss.backward()
    close(x.grad, tx.grad)
    y, ty = pair(rng, *shape)                                  # on raw scores too: nll_loss does not normalise
    F.nll_loss(y, targets).backward()
    tF.nll_loss(ty.reshape(-1, C), torch.tensor(targets.reshape(-1))).backward()
    close(y.grad, ty.grad)


@pytest.mark.parametrize("smoothing", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("ignore", [None, -100], ids=["all-kept", "ignore"])
def test_cross_entropy_label_smoothing(smoothing, ignore, backend, rng):
    logits, tlogits = pair(rng, 3, 4, 6)
    targets = rng.integers(0, 6, size=(3, 4))
    if ignore is not None:
        targets[0, 0] = targets[2, 3] = ignore
    loss = F.cross_entropy(logits, targets, ignore_index=ignore, label_smoothing=smoothing)
    tloss = tF.cross_entropy(tlogits.reshape(-1, 6), torch.tensor(targets.reshape(-1)),
                             ignore_index=-100 if ignore is None else ignore, label_smoothing=smoothing)
    close(loss.data, tloss)
    loss.backward()
    tloss.backward()
    close(logits.grad, tlogits.grad)


def test_one_hot(rng):
    idx = rng.integers(0, 5, size=(3, 4))
    ours = F.one_hot(idx, 5)
    theirs = tF.one_hot(torch.tensor(idx), 5)                  # int64 in PyTorch; float32 here (SPEC)
    np.testing.assert_array_equal(ours.data, theirs.numpy().astype(np.float32))


def test_module_list_model(backend, rng):
    """A ModuleList of Linears applied in a loop, against torch.nn.ModuleList: names, outputs, gradients."""
    ours = nn.ModuleList([nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 2)]).to(np.float64)
    theirs = torch.nn.ModuleList([torch.nn.Linear(4, 5), torch.nn.Linear(5, 5), torch.nn.Linear(5, 2)]).double()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.weight.copy_(torch.tensor(a.weight.data.T))
            b.bias.copy_(torch.tensor(a.bias.data))
    x, tx = pair(rng, 3, 4)
    for a, b in zip(ours, theirs):
        x, tx = a(x).tanh(), b(tx).tanh()
    close(x.data, tx)
    x.sum().backward()
    tx.sum().backward()
    for a, b in zip(ours, theirs):
        close(a.weight.grad, b.weight.grad.T)
        close(a.bias.grad, b.bias.grad)


def test_clip_grad_norm_of_one_tensor(rng):
    from tinygrad_attn import optim

    g = rng.standard_normal((3, 4))
    p, tp = nn.Parameter(np.zeros((3, 4))), torch.zeros((3, 4), dtype=torch.float64, requires_grad=True)
    p.grad, tp.grad = g.copy(), torch.tensor(g)
    assert optim.clip_grad_norm(p, 0.5) == pytest.approx(float(torch.nn.utils.clip_grad_norm_(tp, 0.5)), rel=1e-12)
    close(p.grad, tp.grad)


# ----------------------------------------------------------------------------- Tensor ops of SPEC "More methods"

TIES = np.array([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 2.0, -1.0, 0.0]])
UNARY_VS_TORCH = {  # name: (ours, torch's, input)
    "square": (lambda t: t.square(), lambda t: t.square(), None),
    "sin": (lambda t: t.sin(), torch.sin, None),
    "cos": (lambda t: t.cos(), torch.cos, None),
    "silu": (lambda t: t.silu(), tF.silu, None),
    "softplus": (lambda t: t.softplus(), tF.softplus, np.array([[-50.0, -1.0, 0.0, 1.0, 30.0]])),
    "leaky_relu": (lambda t: t.leaky_relu(0.2), lambda t: tF.leaky_relu(t, 0.2), np.array([[-1.0, 0.0, 2.0]])),
    "clamp (boundaries)": (lambda t: t.clamp(-1.0, 0.5), lambda t: t.clamp(-1.0, 0.5), TIES),
    "clamp min only": (lambda t: t.clip(min=0.5), lambda t: t.clip(min=0.5), TIES),
    "min (ties)": (lambda t: t.min(axis=1), lambda t: t.amin(dim=1), TIES),
    "min all (ties)": (lambda t: t.min(), lambda t: t.amin(), TIES),
    "max keepdim (ties)": (lambda t: t.max(dim=0, keepdim=True), lambda t: t.amax(dim=0, keepdim=True), TIES),
    "logsumexp": (lambda t: t.logsumexp(dim=-1), lambda t: torch.logsumexp(t, dim=-1), None),
    "logsumexp large": (lambda t: t.logsumexp(0), lambda t: torch.logsumexp(t, 0), np.array([[1e4, -1e4], [1e4, 3.0]])),
    "std": (lambda t: t.std(axis=1), lambda t: t.std(dim=1, correction=0), None),
    "std correction=1": (lambda t: t.std(0, correction=1), lambda t: t.std(dim=0), None),
    "var correction=1 keepdim": (lambda t: t.var(1, keepdim=True, correction=1), lambda t: t.var(1, keepdim=True),
                                 None),
    "expand": (lambda t: t[:1].expand(4, -1, -1), lambda t: t[:1].expand(4, -1, -1), None),
    "flatten": (lambda t: t.unsqueeze(0).flatten(0, 1), lambda t: t.unsqueeze(0).flatten(0, 1), None),
    "squeeze/unsqueeze": (lambda t: t.unsqueeze(1).squeeze(1) * t, lambda t: t.unsqueeze(1).squeeze(1) * t, None),
    "split": (lambda t: t.split(2, axis=1)[-1], lambda t: t.split(2, dim=1)[-1], None),
    "chunk": (lambda t: t.chunk(2, dim=1)[0], lambda t: t.chunk(2, dim=1)[0], None),
    "tril": (lambda t: t.tril(1), lambda t: t.tril(1), None),
    "triu": (lambda t: t.triu(-1), lambda t: t.triu(-1), None),
    "softmax 0-d": (lambda t: t[0, 0].softmax() * t[0, 0], lambda t: t[0, 0].softmax(-1) * t[0, 0], None),
    "log_softmax 0-d": (lambda t: t[0, 0].log_softmax() + t[0, 0], lambda t: t[0, 0].log_softmax(0) + t[0, 0], None),
    "getitem nested tuple": (lambda t: t[(0, 0, 2), :], lambda t: t[[0, 0, 2], :], None),
}


@pytest.mark.parametrize("name", UNARY_VS_TORCH)
def test_new_ops_match_torch(name, backend, rng):
    ours, theirs, data = UNARY_VS_TORCH[name]
    data = rng.standard_normal((3, 5)) if data is None else data
    x, tx = ta.Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    out, tout = ours(x), theirs(tx)
    close(out.data, tout)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    close(x.grad, tx.grad)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_match_torch_at_ties(name, backend):
    a_data, b_data = TIES, np.array([3.0, 0.5, -1.0, 0.0])
    a, b = ta.Tensor(a_data, requires_grad=True), ta.Tensor(b_data, requires_grad=True)
    ta_, tb = torch.tensor(a_data, requires_grad=True), torch.tensor(b_data, requires_grad=True)
    out, tout = getattr(ta, name)(a, b), getattr(torch, name)(ta_, tb)
    close(out.data, tout)
    out.sum().backward()
    tout.sum().backward()
    close(a.grad, ta_.grad)
    close(b.grad, tb.grad)


POW_CASES = [(0.0, 0.0), (0.0, -1.0), (0.0, 2.0), (0.0, 0.5), (-2.0, 2.0), (-2.0, 0.5), (-2.0, -3.0), (3.0, 0.0)]


@pytest.mark.parametrize("base,exponent", POW_CASES, ids=str)
def test_pow_gradients_at_edges_match_torch(base, exponent, backend):
    a, b = ta.Tensor(np.array(base), requires_grad=True), ta.Tensor(np.array(exponent), requires_grad=True)
    ta_, tb = torch.tensor(base, dtype=torch.float64, requires_grad=True), torch.tensor(exponent, dtype=torch.float64,
                                                                                      requires_grad=True)
    (a**b).backward()
    (ta_**tb).backward()
    np.testing.assert_array_equal(a.grad, ta_.grad.numpy())
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-12)
    x, tx = ta.Tensor(np.array(base), requires_grad=True), torch.tensor(base, dtype=torch.float64, requires_grad=True)
    (x**exponent).backward()
    (tx**exponent).backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


def test_argmax_argmin_bool_reductions_and_casts_match_torch(rng):
    data = rng.standard_normal((3, 4, 5))
    x, tx = ta.Tensor(data), torch.tensor(data)
    for name in ["argmax", "argmin"]:
        np.testing.assert_array_equal(getattr(x, name)(dim=1).data, getattr(tx, name)(dim=1).numpy())
        np.testing.assert_array_equal(getattr(x, name)().data, getattr(tx, name)().numpy())
    b, tb = x > 0, tx > 0
    np.testing.assert_array_equal(b.sum(dim=2).data, tb.sum(dim=2).numpy())
    np.testing.assert_array_equal(b.any(dim=0).data, tb.any(dim=0).numpy())
    np.testing.assert_array_equal(b.all(dim=1).data, tb.all(dim=1).numpy())
    np.testing.assert_array_equal(x.astype(np.int64).data, tx.to(torch.int64).numpy())
    y, ty = ta.Tensor(data.astype(np.float32), requires_grad=True), torch.tensor(data.astype(np.float32),
                                                                                 requires_grad=True)
    (y.double() * 3).sum().backward()
    (ty.double() * 3).sum().backward()
    assert y.grad.dtype == np.float32 and ty.grad.dtype == torch.float32
    close(y.grad, ty.grad)


def test_creators_match_torch():
    for ours, theirs in [(ta.arange(2, 5), torch.arange(2, 5)), (ta.arange(1, 10, 2), torch.arange(1, 10, 2)),
                         (ta.arange(0, 1, 0.25), torch.arange(0, 1, 0.25)), (ta.eye(2, 3), torch.eye(2, 3)),
                         (ta.full((2, 2), 3.5), torch.full((2, 2), 3.5))]:
        np.testing.assert_array_equal(ours.data, theirs.numpy())
