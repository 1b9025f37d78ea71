"""nn: Module (parameter discovery, names, train/eval, state dicts, `to`), Parameter, and the layers
Linear, Embedding, LayerNorm, Dropout, ReLU, GELU, Sequential, TransformerBlock.
(The attention layers are in test_attention.py.)"""

import math

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn, optim
from tinygrad_attn.cli.layer_checks import LAYER_CHECKS


def leaf(rng, *shape, dtype=np.float64):
    return ta.Tensor(rng.standard_normal(shape), requires_grad=True, dtype=dtype)


class Net(nn.Module):
    """Parameters directly, in a submodule, in a list, in a dict, and one shared twice."""

    def __init__(self):
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.first = nn.Linear(3, 4)
        self.blocks = [nn.Linear(4, 4, bias=False), nn.ReLU(), nn.LayerNorm(4)]
        self.heads = {"a.b": nn.Linear(4, 2), "c": nn.Parameter(np.zeros(2, np.float32))}
        self.tied = self.first.weight                          # the same Parameter again: counted once
        self.not_a_parameter = ta.Tensor(np.ones(2), requires_grad=True)
        self.settings = (3, "text", None)

    def forward(self, x):
        x = self.first(x * self.scale)
        for layer in self.blocks:
            x = layer(x)
        return self.heads["a.b"](x) + self.heads["c"]


# ----------------------------------------------------------------------------- Module


def test_parameters_are_found_with_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "first.weight", "first.bias", "blocks.0.weight", "blocks.2.weight", "blocks.2.bias",
                     "heads.a.b.weight", "heads.a.b.bias", "heads.c"]
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad and p.dtype == np.float32 for p in net.parameters())
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Linear", "Linear", "ReLU", "LayerNorm", "Linear"]


def test_module_call_is_forward_and_zero_grad(rng):
    net = Net()
    out = net(ta.Tensor(rng.standard_normal((5, 3)).astype(np.float32)))
    assert out.shape == (5, 2)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        nn.Module()(1)


def test_train_and_eval_are_recursive():
    block = nn.TransformerBlock(8, 2, dropout=0.1)
    assert all(m.training for m in block.modules())
    assert block.eval() is block and not any(m.training for m in block.modules())
    assert block.mlp.layers[0].training is False and block.dropout.training is False
    block.train()
    assert all(m.training for m in block.modules())


def test_state_dict_is_a_copy():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == [n for n, _ in net.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["scale"][:] = 7
    assert np.all(net.scale.data == 1)


def test_load_state_dict_copies_into_the_same_parameters_with_their_dtype():
    ta.manual_seed(0)
    source, target = Net(), Net()
    params_before = [(p, p.data) for p in target.parameters()]
    sd = {k: v.astype(np.float64) for k, v in source.state_dict().items()}
    sd["scale"] = ta.Tensor(sd["scale"])                      # a Tensor works too
    target.load_state_dict(sd)
    for (p, array), q in zip(params_before, source.parameters()):
        assert p.data is array and p.dtype == np.float32      # same objects, same arrays, own dtype
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    net = Net()
    sd = net.state_dict()
    del sd["first.bias"]
    sd["extra"] = np.zeros(1)
    sd["heads.c"] = np.zeros(5)
    before = net.state_dict()
    with pytest.raises(ValueError, match=r"load_state_dict: the state dict does not fit Net: "
                                         r"missing keys \['first.bias'\], unexpected keys \['extra'\], "
                                         r"wrong shapes \(heads.c: expected \(2,\), got \(5,\)\)"):
        net.load_state_dict({**sd, "scale": sd["scale"] + 1})
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(TypeError, match="load_state_dict: entry 'scale' is not numeric"):
        net.load_state_dict({**before, "scale": np.array(["a", "b", "c"])})
    with pytest.raises(TypeError, match="load_state_dict: expected a dict"):
        net.load_state_dict([1, 2])


def test_to_float64_keeps_the_parameter_objects_and_optimizers_still_update_them(rng):
    layer = nn.Linear(3, 2)
    params = layer.parameters()
    opt = optim.SGD(layer.parameters(), lr=0.1)
    assert layer.to(np.float64) is layer
    assert [id(p) for p in layer.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in params)
    before = layer.weight.data.copy()
    F.mse_loss(layer(leaf(rng, 4, 3)), np.zeros((4, 2))).backward()
    assert layer.weight.grad.dtype == np.float64
    opt.step()
    np.testing.assert_allclose(layer.weight.data, before - 0.1 * layer.weight.grad)
    layer.to(np.float32)
    assert layer.weight.dtype == np.float32 and layer.weight.grad.dtype == np.float32
    with pytest.raises(TypeError, match="to: parameters can be float32 or float64, got int64"):
        layer.to(np.int64)


def test_parameter():
    p = nn.Parameter([1, 2])
    assert p.requires_grad and p.dtype == np.float32 and isinstance(p, ta.Tensor)
    assert nn.Parameter(np.ones(2)).dtype == np.float64
    assert repr(p).startswith("Parameter(")


# ----------------------------------------------------------------------------- layers


def test_linear(backend, rng):
    ta.manual_seed(0)
    layer = nn.Linear(20, 30)
    assert layer.weight.shape == (20, 30) and layer.bias.shape == (30,)
    bound = 1 / math.sqrt(20)                                  # U(-1/sqrt(in), 1/sqrt(in)), as PyTorch
    for p in layer.parameters():
        assert 0.9 * bound < np.abs(p.data).max() <= bound
    x = ta.Tensor(rng.standard_normal((2, 3, 20)).astype(np.float32))
    np.testing.assert_allclose(layer(x).data, x.data @ layer.weight.data + layer.bias.data, rtol=1e-5, atol=1e-6)
    assert nn.Linear(2, 3, bias=False).bias is None and len(nn.Linear(2, 3, bias=False).parameters()) == 1
    small = nn.Linear(3, 2).to(np.float64)
    assert ta.gradcheck(lambda x, *ps: small(x), [leaf(rng, 4, 3), *small.parameters()])
    assert ta.gradcheck(lambda x, *ps: small(x), [leaf(rng, 3), *small.parameters()])


def test_embedding(backend, rng):
    ta.manual_seed(0)
    emb = nn.Embedding(1000, 8)
    assert emb.weight.shape == (1000, 8) and abs(emb.weight.data.std() - 1) < 0.05   # N(0, 1)
    ids = np.array([[3, 3, 999], [0, 3, 1]])
    out = emb(ids)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    out.backward(np.ones(out.shape, np.float32))
    np.testing.assert_array_equal(emb.weight.grad[3], 3.0)     # scatter-add: token 3 appears three times
    assert np.count_nonzero(emb.weight.grad.any(axis=1)) == 4
    with pytest.raises(ValueError, match=r"embedding: index 1000 is out of range for a table of 1000 rows"):
        emb([1000])
    small = nn.Embedding(5, 3).to(np.float64)
    assert ta.gradcheck(lambda i, w: small(i), [ta.Tensor(ids % 5, dtype=np.int64), small.weight])


def test_layer_norm(backend, rng):
    ln = nn.LayerNorm(7)
    np.testing.assert_array_equal(ln.weight.data, 1.0)
    np.testing.assert_array_equal(ln.bias.data, 0.0)
    assert ln.eps == 1e-5
    x = ta.Tensor(rng.standard_normal((2, 3, 7)) * 5 + 3, dtype=np.float32)
    y = ln(x).data
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-3)
    ln = nn.LayerNorm(7, eps=1e-3).to(np.float64)
    ln.weight.data[:] = rng.standard_normal(7)
    assert ta.gradcheck(lambda x, *ps: ln(x), [leaf(rng, 2, 3, 7), *ln.parameters()])
    one = nn.LayerNorm(1).to(np.float64)                      # D = 1: y = bias, whatever x
    assert ta.gradcheck(lambda x, *ps: one(x), [leaf(rng, 1, 1), *one.parameters()])


def test_dropout_layer(rng):
    x = ta.Tensor(np.ones((50, 40)))
    drop = nn.Dropout(0.5)
    ta.manual_seed(3)
    y = drop(x).data
    assert set(np.unique(y)) == {0.0, 2.0}
    ta.manual_seed(3)
    np.testing.assert_array_equal(drop(x).data, y)
    assert drop.eval()(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\], got -0.1"):
        nn.Dropout(-0.1)


def test_activations_and_sequential(backend, rng):
    x = leaf(rng, 3, 5)
    np.testing.assert_array_equal(nn.ReLU()(x).data, np.maximum(x.data, 0))
    np.testing.assert_array_equal(nn.GELU()(x).data, x.gelu().data)
    model = nn.Sequential(nn.Linear(5, 4), nn.GELU(), nn.Linear(4, 2)).to(np.float64)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                       "2.bias"]
    assert len(model) == 3 and isinstance(model[1], nn.GELU)
    expected = model[2](model[1](model[0](x)))
    np.testing.assert_array_equal(model(x).data, expected.data)
    assert ta.gradcheck(lambda x, *ps: model(x), [x, *model.parameters()])
    with pytest.raises(TypeError, match="Sequential: argument 1 is a function, not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


# ----------------------------------------------------------------------------- TransformerBlock


def test_transformer_block_structure():
    block = nn.TransformerBlock(8, 2)
    shapes = {n: p.shape for n, p in block.named_parameters()}
    assert shapes == {"ln1.weight": (8,), "ln1.bias": (8,), "mha.W_q": (8, 8), "mha.W_k": (8, 8), "mha.W_v": (8, 8),
                      "mha.W_o": (8, 8), "ln2.weight": (8,), "ln2.bias": (8,), "mlp.0.weight": (8, 32),
                      "mlp.0.bias": (32,), "mlp.2.weight": (32, 8), "mlp.2.bias": (8,)}
    assert nn.TransformerBlock(8, 2, d_ff=5).mlp[0].weight.shape == (8, 5)


def test_transformer_block_is_pre_layer_norm(backend, rng):
    block = nn.TransformerBlock(6, 3, d_ff=10, causal=True).to(np.float64)
    for p in block.parameters():                              # move LN off ones/zeros so it is really tested
        p.data[:] = rng.standard_normal(p.shape) * 0.5
    x = leaf(rng, 2, 5, 6)
    mask = np.ones((2, 5, 5), bool)
    mask[1, :, 4] = False
    h = x + block.mha(block.ln1(x), mask)
    expected = h + block.mlp[2](block.mlp[0](block.ln2(h)).gelu())
    out = block(x, mask=mask)
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-12)
    assert np.all(block.mha.attn[1, :, :, 4] == 0) and np.all(np.triu(block.mha.attn[0, 0], 1) == 0)
    assert ta.gradcheck(lambda x, *ps: block(x, mask=mask), [x, *block.parameters()])
    assert ta.gradcheck(lambda x, *ps: block(x), [leaf(rng, 1, 6), *block.parameters()])


def test_transformer_block_dropout_only_in_training(rng):
    block = nn.TransformerBlock(4, 2, dropout=0.5)
    x = ta.Tensor(rng.standard_normal((3, 4)).astype(np.float32))
    block.eval()
    np.testing.assert_array_equal(block(x).data, block(x).data)
    block.train()
    ta.manual_seed(1)
    a = block(x).data
    ta.manual_seed(2)
    assert not np.array_equal(a, block(x).data)


# ----------------------------------------------------------------------------- the gradcheck registry


@pytest.mark.parametrize("check", LAYER_CHECKS, ids=lambda c: c.name)
def test_layer_checks_registry(check, backend):
    inputs = check.make_inputs()
    assert all(t.dtype == np.float64 for t in inputs if t.requires_grad)
    assert ta.gradcheck(check.fn, inputs)


# ----------------------------------------------------------------------------- ModuleList


class Stack(nn.Module):
    """Layers held in a ModuleList and applied in order by this module's own forward."""

    def __init__(self, sizes):
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        self.norm = nn.LayerNorm(sizes[-1])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).tanh()
        return self.norm(x)


def test_module_list_names_index_iterate_and_append():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1, bias=False)
    mods = nn.ModuleList([a, b])
    assert len(mods) == 2 and mods[0] is a and mods[-1] is b and list(mods) == [a, b]
    assert mods.append(c) is mods and len(mods) == 3 and mods[2] is c
    assert [n for n, _ in mods.named_parameters()] == ["0.weight", "0.bias", "2.weight"]
    assert list(mods[1:]) == [b, c] and isinstance(mods[1:], nn.ModuleList)
    assert len(nn.ModuleList()) == 0 and list(nn.ModuleList(m for m in [a])) == [a]   # empty, any iterable
    assert nn.ModuleList().extend([a, c])[1] is c
    assert isinstance(nn.Sequential(a, b)[:1], nn.Sequential)
    with pytest.raises(TypeError, match="ModuleList: argument 1 is a int, not a Module"):
        nn.ModuleList([a, 3])
    with pytest.raises(TypeError, match=r"ModuleList: expected an iterable of Modules, got Linear \(write ModuleList"):
        nn.ModuleList(a)
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        mods(ta.zeros(2))


def test_module_list_in_a_model(backend, rng):
    model = Stack([4, 5, 3]).to(np.float64)
    assert [n for n, _ in model.named_parameters()] == ["layers.0.weight", "layers.0.bias", "layers.1.weight",
                                                       "layers.1.bias", "norm.weight", "norm.bias"]
    model.eval()
    assert all(m.training is False for m in model.layers)      # train/eval reach into the list
    state = model.state_dict()
    fresh = Stack([4, 5, 3]).to(np.float64)
    fresh.load_state_dict(state)
    x = leaf(rng, 2, 7, 4)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    assert ta.gradcheck(lambda x, *ps: model(x), [x, *model.parameters()])
    optim.SGD(model.parameters(), lr=0.1)                      # the list's parameters are the model's


def test_module_list_of_one_edge_size_gradcheck(backend, rng):
    model = Stack([1, 1]).to(np.float64)
    assert ta.gradcheck(lambda x, *ps: model(x), [leaf(rng, 3, 1), *model.parameters()])
