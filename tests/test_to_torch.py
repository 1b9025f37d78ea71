"""`ta.to_torch`: each built-in layer and a model trained by `tinygrad-attn train`, converted to PyTorch, give
the same outputs and the same gradients (input and every parameter) to float32 tolerance."""

import subprocess
import sys

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn

torch = pytest.importorskip("torch")

RTOL, ATOL = 2e-4, 2e-5                                        # float32


def torch_grad(converted, name: str) -> np.ndarray:
    """The torch gradient of our parameter `name` ("mlp.0.weight", "mha.W_q", ...), in our layout."""
    *path, leaf = name.split(".")
    module = converted.get_submodule(".".join(path)) if path else converted
    if hasattr(module, "attention") and isinstance(module.attention, torch.nn.MultiheadAttention):
        mha = module.attention                                  # W_q, W_k, W_v are stacked, transposed, in in_proj
        if leaf == "W_o":
            return mha.out_proj.weight.grad.numpy().T
        d = mha.embed_dim
        i = ("W_q", "W_k", "W_v").index(leaf)
        return mha.in_proj_weight.grad[i * d:(i + 1) * d].numpy().T
    grad = getattr(module, leaf).grad.numpy()
    return grad.T if isinstance(module, torch.nn.Linear) and leaf == "weight" else grad   # (out, in) -> (in, out)


def compare(ours, converted, x, tx, rtol=RTOL, atol=ATOL):
    """Forward both, backward the same random projection, and compare outputs, input gradients and every
    parameter's gradient."""
    out, tout = ours(x), converted(tx)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=rtol, atol=atol)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_grad(converted, name), rtol=rtol, atol=atol, err_msg=name)


def inputs(rng, *shape, dtype=np.float32):
    x = rng.standard_normal(shape).astype(dtype)
    return ta.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


LAYERS = {  # name: (build, input shape)
    "linear": (lambda: nn.Linear(6, 4), (3, 5, 6)),
    "linear-no-bias-2d": (lambda: nn.Linear(6, 1, bias=False), (7, 6)),
    "layer_norm": (lambda: nn.LayerNorm(6, eps=1e-3), (2, 3, 6)),
    "relu": (lambda: nn.ReLU(), (4, 6)),
    "gelu": (lambda: nn.GELU(), (4, 6)),
    "silu": (lambda: nn.SiLU(), (4, 6)),
    "tanh": (lambda: nn.Tanh(), (4, 6)),
    "dropout-eval": (lambda: nn.Dropout(0.5).eval(), (4, 6)),
    "sequential": (lambda: nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.LayerNorm(5), nn.Linear(5, 3)), (2, 4, 6)),
    "self_attention": (lambda: nn.SelfAttention(6, d_k=4, d_v=3), (2, 5, 6)),
    "self_attention-causal-2d": (lambda: nn.SelfAttention(6, causal=True, scale=1.0), (5, 6)),
    "multi_head_attention": (lambda: nn.MultiHeadAttention(6, 3), (2, 5, 6)),
    "multi_head_attention-causal-2d": (lambda: nn.MultiHeadAttention(6, 2, causal=True), (7, 6)),
    "transformer_block": (lambda: nn.TransformerBlock(6, 2, d_ff=10), (2, 5, 6)),
    "transformer_block-causal": (lambda: nn.TransformerBlock(4, 1, causal=True), (1, 3, 4)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch(name, rng):
    ta.manual_seed(0)
    build, shape = LAYERS[name]
    layer = build()
    converted = ta.to_torch(layer)
    assert isinstance(converted, torch.nn.Module) and converted.training == layer.training
    x, tx = inputs(rng, *shape)
    compare(layer, converted, x, tx)


def test_float64_layers_stay_float64(rng):
    block = nn.TransformerBlock(4, 2).to(np.float64)
    converted = ta.to_torch(block)
    assert all(p.dtype == torch.float64 for p in converted.parameters())
    x, tx = inputs(rng, 2, 3, 4, dtype=np.float64)
    compare(block, converted, x, tx, rtol=1e-10, atol=1e-12)


def test_linear_weight_is_transposed_and_copied():
    layer = nn.Linear(3, 2)
    converted = ta.to_torch(layer)
    np.testing.assert_array_equal(converted.weight.detach().numpy(), layer.weight.data.T)
    layer.weight.data[...] = 0                                 # a copy: changing ours leaves torch's alone
    assert converted.weight.abs().sum() > 0


def test_embedding_matches_torch(rng):
    layer = nn.Embedding(7, 4)
    converted = ta.to_torch(layer)
    ids = np.array([[0, 3, 3], [6, 1, 0]])
    out, tout = layer(ids), converted(torch.from_numpy(ids))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.weight.grad, converted.weight.grad.numpy(), rtol=RTOL, atol=ATOL)   # 3 twice


MASKED = {"self_attention": lambda: nn.SelfAttention(6, causal=True),
          "multi_head_attention": lambda: nn.MultiHeadAttention(6, 2, causal=True),
          "transformer_block": lambda: nn.TransformerBlock(6, 3)}


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy-mask", "torch-mask"])
@pytest.mark.parametrize("mask_shape", [(5, 5), (2, 5, 5), (1, 5, 5)], ids=str)
@pytest.mark.parametrize("kind", MASKED)
def test_masks_mean_the_same_after_conversion(kind, mask_shape, as_tensor, rng):
    """Ours: True = may attend. torch.nn.MultiheadAttention: True = may NOT; the wrapper translates, so the
    converted module takes the very same mask argument (a numpy array, or the same values as a bool tensor)."""
    ta.manual_seed(1)
    layer = MASKED[kind]()
    mask = rng.random(mask_shape) < 0.6
    mask[..., 0] = True                                        # every query may attend key 0: no empty row
    x, tx = inputs(rng, 2, 5, 6)
    converted = ta.to_torch(layer)
    out, tout = layer(x, mask), converted(tx, torch.from_numpy(mask) if as_tensor else mask)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, torch_grad(converted, name), rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("kind", MASKED)
def test_a_fully_masked_row_gives_zeros_on_both_sides(kind, rng):
    ta.manual_seed(2)
    layer = MASKED[kind]()
    mask = rng.random((5, 5)) < 0.5
    mask[2, :] = False                                         # query 2 may attend nothing
    mask[[0, 1, 3, 4], 0] = True
    x, tx = inputs(rng, 2, 5, 6)
    converted = ta.to_torch(layer)
    out, tout = layer(x, mask), converted(tx, mask)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=RTOL, atol=ATOL)
    out.backward(np.ones(out.shape, np.float32))
    tout.sum().backward()
    assert not torch.isnan(tx.grad).any()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_module_list_converts_each_module():
    mods = nn.ModuleList([nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2))])
    converted = ta.to_torch(mods)
    assert isinstance(converted, torch.nn.ModuleList) and len(converted) == 3
    assert isinstance(converted[2], torch.nn.Sequential) and isinstance(converted[2][0], torch.nn.Linear)
    assert [n for n, _ in converted.named_parameters()] == [n for n, _ in mods.named_parameters()]


def test_train_and_eval_modes_are_kept():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert ta.to_torch(model).training and ta.to_torch(model)[1].p == 0.5
    model.eval()
    assert not ta.to_torch(model).training and not ta.to_torch(model)[1].training


def test_what_cannot_be_converted_says_so():
    class Mine(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="to_torch: cannot convert Mine"):
        ta.to_torch(Mine())
    with pytest.raises(TypeError, match="to_torch: cannot convert Mine"):
        ta.to_torch(nn.Sequential(nn.ReLU(), Mine()))
    with pytest.raises(TypeError, match="to_torch: expected a tinygrad_attn.nn.Module, got ndarray"):
        ta.to_torch(np.ones(2))
    with pytest.raises(TypeError, match=r"MultiHeadAttention with scale=1.0 cannot be converted"):
        ta.to_torch(nn.MultiHeadAttention(4, 2, scale=1.0))


def test_without_torch_the_error_says_pip_install_torch():
    """In a fresh process where `import torch` fails, to_torch raises ImportError naming the fix; importing
    the package never imports torch."""
    code = ("import sys\n"
            "import tinygrad_attn as ta\n"
            "print('torch imported:', 'torch' in sys.modules)\n"
            "sys.modules['torch'] = None\n"                      # makes `import torch` raise ImportError
            "try:\n    ta.to_torch(ta.nn.Linear(2, 2))\n"
            "except ImportError as e:\n    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "torch imported: False" in out.stdout, out.stdout + out.stderr
    assert "ImportError:" in out.stdout and "pip install torch" in out.stdout, out.stdout + out.stderr


# ----------------------------------------------------------------------------- a model trained by `tinygrad-attn train`


class TorchTransformerModel(torch.nn.Module):
    """cli/models.py's TransformerModel, written in torch from converted parts (its forward is its own, so
    to_torch converts the built-in layers and this class is the few lines of glue, as a user would write)."""

    def __init__(self, model):
        super().__init__()
        self.tokens, self.positions = ta.to_torch(model.embed.tokens), ta.to_torch(model.embed.positions)
        self.blocks = ta.to_torch(nn.ModuleList(model.blocks))
        self.norm, self.head = ta.to_torch(model.norm), ta.to_torch(model.head)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[-1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def test_a_trained_model_converts(tmp_path):
    from tinygrad_attn.cli import train

    out = tmp_path / "run"
    flags = ["--task", "reverse", "--model", "transformer", "--layers", "2", "--heads", "2", "--d-model", "8",
             "--steps", "8", "--batch-size", "8", "--eval-size", "8", "--quiet", "--out", str(out)]
    assert train.main(flags) == 0
    model, task, _ = train.load_checkpoint(out / "checkpoint.npz")
    converted = TorchTransformerModel(model)
    ids, targets = task.batch(4)

    logits = model(ids)                                        # [B, T, vocab]
    tlogits = converted(torch.from_numpy(ids))
    np.testing.assert_allclose(logits.data, tlogits.detach().numpy(), rtol=RTOL, atol=ATOL)
    ta.functional.cross_entropy(logits, targets).backward()
    vocab = tlogits.shape[-1]
    torch.nn.functional.cross_entropy(tlogits.reshape(-1, vocab), torch.from_numpy(targets).reshape(-1)).backward()
    names = {"embed.tokens.weight": "tokens.weight", "embed.positions.weight": "positions.weight"}
    for name, p in model.named_parameters():
        theirs = torch_grad(converted, names.get(name, name))
        np.testing.assert_allclose(p.grad, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


def test_the_attention_model_converts_by_parts(rng):
    from tinygrad_attn.cli.models import build_model

    ta.manual_seed(3)
    model = build_model(dict(model="attention", vocab_size=5, seq_len=6, d_model=8, causal=True, scale=True))
    tokens, positions = ta.to_torch(model.embed.tokens), ta.to_torch(model.embed.positions)
    attention, head = ta.to_torch(model.attention), ta.to_torch(model.head)
    ids = rng.integers(0, 5, (3, 6))
    tids = torch.from_numpy(ids)
    theirs = head(attention(tokens(tids) + positions(torch.arange(6))))
    np.testing.assert_allclose(model(ids).data, theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    with pytest.raises(TypeError, match="to_torch: cannot convert AttentionModel"):
        ta.to_torch(model)
