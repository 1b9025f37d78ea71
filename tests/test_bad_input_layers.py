"""Bad input to the layers, losses and optimizers, as a table: the call, the exception type, and the
substrings its message must hold (the layer, loss or optimizer's name and the offending value or shape).

Every message is checked for plain substrings (no regex), so a table row reads like the error itself."""

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn, optim


def param(*shape):
    return nn.Parameter(np.ones(shape))


def with_grad(shape, grad_shape, dtype=np.float64):
    p = nn.Parameter(np.ones(shape))
    p.grad = np.ones(grad_shape, dtype)
    return [p]


x8 = ta.Tensor(np.zeros((2, 5, 8), np.float32))                # (B, T, d_model) for the attention layers
logits = ta.Tensor(np.zeros((4, 3)))

CASES = [  # (id, call, exception, substrings the message must contain)
    # ------------------------------------------------------------------ nn constructors
    ("linear-negative-out", lambda: nn.Linear(4, -3), ValueError, ["Linear", "out_features", "-3"]),
    ("linear-zero-in", lambda: nn.Linear(0, 3), ValueError, ["Linear", "in_features", "0"]),
    ("linear-float-size", lambda: nn.Linear(4.0, 3), TypeError, ["Linear", "in_features", "4.0", "float"]),
    ("linear-str-size", lambda: nn.Linear(4, "3"), TypeError, ["Linear", "out_features", "'3'"]),
    ("linear-bool-size", lambda: nn.Linear(True, 3), TypeError, ["Linear", "in_features", "True"]),
    ("embedding-negative", lambda: nn.Embedding(-1, 4), ValueError, ["Embedding", "num", "-1"]),
    ("embedding-float-dim", lambda: nn.Embedding(10, 2.5), TypeError, ["Embedding", "dim", "2.5"]),
    ("layernorm-zero", lambda: nn.LayerNorm(0), ValueError, ["LayerNorm", "dim", "0"]),
    ("layernorm-tuple", lambda: nn.LayerNorm((4, 5)), TypeError, ["LayerNorm", "dim", "(4, 5)"]),
    ("layernorm-negative-eps", lambda: nn.LayerNorm(4, eps=-1e-5), ValueError, ["LayerNorm", "eps", "-1e-05"]),
    ("dropout-above-one", lambda: nn.Dropout(1.5), ValueError, ["Dropout", "p", "1.5"]),
    ("dropout-negative", lambda: nn.Dropout(-0.1), ValueError, ["Dropout", "p", "-0.1"]),
    ("dropout-str", lambda: nn.Dropout("0.1"), TypeError, ["Dropout", "p", "'0.1'"]),
    ("dropout-nan", lambda: nn.Dropout(float("nan")), ValueError, ["Dropout", "p", "nan"]),
    ("selfattention-zero", lambda: nn.SelfAttention(0), ValueError, ["SelfAttention", "d_model", "0"]),
    ("selfattention-d_k", lambda: nn.SelfAttention(8, d_k=-2), ValueError, ["SelfAttention", "d_k", "-2"]),
    ("selfattention-scale", lambda: nn.SelfAttention(8, scale="big"), TypeError, ["SelfAttention", "scale", "'big'"]),
    ("mha-not-divisible", lambda: nn.MultiHeadAttention(10, 3), ValueError,
     ["MultiHeadAttention", "d_model=10", "n_heads=3"]),
    ("mha-zero-heads", lambda: nn.MultiHeadAttention(8, 0), ValueError, ["MultiHeadAttention", "n_heads", "0"]),
    ("mha-float-heads", lambda: nn.MultiHeadAttention(8, 2.0), TypeError, ["MultiHeadAttention", "n_heads", "2.0"]),
    ("mha-scale-nan", lambda: nn.MultiHeadAttention(8, 2, scale=float("nan")), ValueError,
     ["MultiHeadAttention", "scale", "nan"]),
    ("block-d_ff", lambda: nn.TransformerBlock(8, 2, d_ff=0), ValueError, ["TransformerBlock", "d_ff", "0"]),
    ("block-dropout", lambda: nn.TransformerBlock(8, 2, dropout=2.0), ValueError,
     ["TransformerBlock", "dropout", "2.0"]),
    ("block-heads", lambda: nn.TransformerBlock(8, -1), ValueError, ["TransformerBlock", "n_heads", "-1"]),
    ("sequential-non-module", lambda: nn.Sequential(nn.ReLU(), 5), TypeError, ["Sequential", "argument 1", "int"]),
    ("modulelist-non-module", lambda: nn.ModuleList([nn.ReLU(), "relu"]), TypeError,
     ["ModuleList", "argument 1", "str"]),
    ("modulelist-module", lambda: nn.ModuleList(nn.ReLU()), TypeError, ["ModuleList", "ReLU", "iterable"]),
    ("modulelist-append", lambda: nn.ModuleList().append(np.ones(2)), TypeError, ["ModuleList", "ndarray"]),
    # ------------------------------------------------------------------ attention masks: the user's shape
    ("mha-mask-shape", lambda: nn.MultiHeadAttention(8, 2)(x8, np.ones((5, 4), bool)), ValueError,
     ["MultiHeadAttention", "(5, 4)", "(2, 5, 8)"]),
    ("mha-mask-too-small", lambda: nn.MultiHeadAttention(8, 2)(x8[0], np.ones((4, 4), bool)), ValueError,
     ["MultiHeadAttention", "(4, 4)", "(5, 8)"]),
    ("mha-mask-batch", lambda: nn.MultiHeadAttention(8, 2)(x8, np.ones((3, 5, 5), bool)), ValueError,
     ["MultiHeadAttention", "(3, 5, 5)", "(2, 5, 8)"]),
    ("mha-mask-4d", lambda: nn.MultiHeadAttention(8, 2)(x8, np.ones((2, 1, 5, 5), bool)), ValueError,
     ["MultiHeadAttention", "(2, 1, 5, 5)"]),
    ("mha-mask-float", lambda: nn.MultiHeadAttention(8, 2)(x8, np.full((5, 5), 0.5)), TypeError,
     ["MultiHeadAttention", "float64", "(5, 5)"]),
    ("block-mask-shape", lambda: nn.TransformerBlock(8, 2)(x8, np.ones((4, 4), bool)), ValueError,
     ["TransformerBlock", "(4, 4)", "(2, 5, 8)"]),
    ("block-x-width", lambda: nn.TransformerBlock(8, 2)(ta.zeros(5, 6)), ValueError,
     ["TransformerBlock", "(5, 6)", "8"]),
    ("selfattention-mask-shape", lambda: nn.SelfAttention(8)(x8, np.ones((5, 6), bool)), ValueError,
     ["SelfAttention", "(5, 6)"]),
    # ------------------------------------------------------------------ losses and one_hot
    ("nll-targets-shape", lambda: F.nll_loss(logits, [0, 1]), ValueError, ["nll_loss", "(4, 3)", "(4,)", "(2,)"]),
    ("nll-target-range", lambda: F.nll_loss(logits, [0, 1, 3, 0]), ValueError, ["nll_loss", "target 3", "3 classes"]),
    ("nll-1d-input", lambda: F.nll_loss(ta.zeros(3), [0, 1, 2]), ValueError, ["nll_loss", "log_probs", "(3,)"]),
    ("nll-bool-targets", lambda: F.nll_loss(logits, [True, False, True, True]), TypeError, ["nll_loss", "booleans"]),
    ("nll-int-input", lambda: F.nll_loss(ta.Tensor(np.zeros((2, 2)), dtype=np.int64), [0, 1]), TypeError,
     ["nll_loss", "log_probs", "int64"]),
    ("nll-float-targets", lambda: F.nll_loss(logits, [0.5, 1, 2, 0]), TypeError, ["nll_loss", "float64", "(4,)"]),
    ("nll-ignore-index", lambda: F.nll_loss(logits, [0, 1, 2, 0], ignore_index="x"), TypeError,
     ["nll_loss", "ignore_index", "'x'"]),
    ("ce-smoothing-range", lambda: F.cross_entropy(logits, [0, 1, 2, 0], label_smoothing=1.5), ValueError,
     ["cross_entropy", "label_smoothing", "1.5"]),
    ("ce-smoothing-str", lambda: F.cross_entropy(logits, [0, 1, 2, 0], label_smoothing="0.1"), TypeError,
     ["cross_entropy", "label_smoothing", "'0.1'"]),
    ("one-hot-range", lambda: F.one_hot([0, 4], 3), ValueError, ["one_hot", "index 4", "num_classes=3"]),
    ("one-hot-negative", lambda: F.one_hot([-1], 3), ValueError, ["one_hot", "index -1"]),
    ("one-hot-classes", lambda: F.one_hot([0], 0), ValueError, ["one_hot", "num_classes", "0"]),
    ("one-hot-float", lambda: F.one_hot([0.5], 2), TypeError, ["one_hot", "float64"]),
    ("one-hot-bool", lambda: F.one_hot([True], 2), TypeError, ["one_hot", "boolean"]),
    ("dropout-fn-str", lambda: F.dropout(logits, "0.5"), TypeError, ["dropout", "p", "'0.5'"]),
    # ------------------------------------------------------------------ optimizers
    ("sgd-single-param", lambda: optim.SGD(param(3), lr=0.1), TypeError, ["SGD", "single Parameter", "(3,)", "[p]"]),
    ("adam-single-param", lambda: optim.Adam(param(2, 2)), TypeError, ["Adam", "single Parameter", "(2, 2)"]),
    ("adamw-single-tensor", lambda: optim.AdamW(ta.Tensor([1.0], requires_grad=True)), TypeError,
     ["AdamW", "single Tensor"]),
    ("sgd-module", lambda: optim.SGD(nn.Linear(2, 2), lr=0.1), TypeError, ["SGD", "Linear", ".parameters()"]),
    ("adam-module", lambda: optim.Adam(nn.Sequential(nn.Linear(2, 2))), TypeError,
     ["Adam", "Sequential", ".parameters()"]),
    ("sgd-module-no-lr", lambda: optim.SGD(nn.Linear(2, 2)), TypeError, ["SGD", "Linear", ".parameters()"]),
    ("sgd-no-lr", lambda: optim.SGD([param(1)]), TypeError, ["SGD", "lr is required"]),
    ("sgd-lr-str", lambda: optim.SGD([param(1)], lr="0.1"), TypeError, ["SGD", "lr", "'0.1'"]),
    ("adam-lr-negative", lambda: optim.Adam([param(1)], lr=-1e-3), ValueError, ["Adam", "lr", "-0.001"]),
    ("adamw-lr-none", lambda: optim.AdamW([param(1)], lr=None), TypeError, ["AdamW", "lr", "None"]),
    ("sgd-momentum-str", lambda: optim.SGD([param(1)], lr=0.1, momentum="0.9"), TypeError,
     ["SGD", "momentum", "'0.9'"]),
    ("adam-betas-str", lambda: optim.Adam([param(1)], betas="ab"), ValueError, ["Adam", "betas", "ab"]),
    ("adam-weight-decay", lambda: optim.Adam([param(1)], weight_decay=-0.1), ValueError,
     ["Adam", "weight_decay", "-0.1"]),
    ("sgd-not-iterable", lambda: optim.SGD(3, lr=0.1), TypeError, ["SGD", "int"]),
    ("sgd-list-of-arrays", lambda: optim.SGD([np.ones(2)], lr=0.1), TypeError, ["SGD", "parameter 0", "ndarray"]),
    ("sgd-step-grad-shape", lambda: optim.SGD(with_grad((2, 3), (3,)), lr=0.1).step(), ValueError,
     ["SGD.step", "(2, 3)", "(3,)"]),
    ("adam-step-grad-shape", lambda: optim.Adam(with_grad((2, 3), (1, 3))).step(), ValueError,
     ["Adam.step", "(2, 3)", "(1, 3)"]),
    ("adamw-step-grad-shape", lambda: optim.AdamW(with_grad((4,), (1,))).step(), ValueError,
     ["AdamW.step", "(4,)", "(1,)"]),
    ("adam-step-grad-dtype", lambda: optim.Adam(with_grad((2,), (2,), np.float32)).step(), TypeError,
     ["Adam.step", "float64", "float32"]),
    ("clip-max-norm-str", lambda: optim.clip_grad_norm([param(1)], "1"), TypeError,
     ["clip_grad_norm", "max_norm", "'1'"]),
    ("clip-max-norm-negative", lambda: optim.clip_grad_norm(param(1), -2.0), ValueError,
     ["clip_grad_norm", "max_norm", "-2.0"]),
    ("clip-module", lambda: optim.clip_grad_norm(nn.Linear(2, 2), 1.0), TypeError,
     ["clip_grad_norm", "Linear", ".parameters()"]),
    ("clip-list-of-arrays", lambda: optim.clip_grad_norm([np.ones(2)], 1.0), TypeError,
     ["clip_grad_norm", "parameter 0", "ndarray"]),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("call, error, parts", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_named(call, error, parts):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    missing = [part for part in parts if part not in message]
    assert not missing, f"the message {message!r} does not name {missing}"
