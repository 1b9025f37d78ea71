"""The docs cannot rot: their code runs, their links resolve, and the tests they cite exist.

Every fenced ```python block of README.md and docs/*.md runs here, each file's blocks in order in one
namespace, in a temporary working directory. A block is skipped if its fence says ```python no-run
or the line before it is `<!-- no-run -->`. Files named `_*.md` are drafts or fragments, not pages,
and are left out. The rest of this file holds the checks that
docs/backprop-through-attention.md cites and no other test file makes.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("_"))]
FENCE = re.compile(r"^```(\S*)[ \t]*(.*?)\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block that is not marked no-run."""
    blocks = []
    for match in FENCE.finditer(text):
        language, options, code = match.groups()
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if language == "python" and "no-run" not in options and before.strip() != "<!-- no-run -->":
            blocks.append((text.count("\n", 0, match.start()) + 1, code))
    return blocks


def test_the_block_finder():
    text = ("```python\na = 1\n```\n<!-- no-run -->\n```python\nb = 2\n```\n"
            "```python no-run\nc = 3\n```\n```bash\nls\n```\n```python\nd = a\n```\n")
    assert python_blocks(text) == [(1, "a = 1\n"), (14, "d = a\n")]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run(path, tmp_path, monkeypatch):
    blocks = python_blocks(path.read_text())
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"doc:{path.name}"}
    with ta.backend(ta.get_backend()):                         # a block that switches backend cannot leak it
        for line, code in blocks:
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"the code block at {path.name} line {line} failed: {e!r}") from e


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path):
    text = FENCE.sub("", path.read_text())                     # links inside code blocks are not links
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue                                           # a web address or an anchor on the same page
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name} links to missing {target}"


NAMED_LINE = re.compile(r"\[`(\w+)`\]\(([^)#\s]+\.py)#L(\d+)\)")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_line_links_point_at_what_they_name(path):
    """[`name`](file.py#L42) must land on the line that defines (or decorates) name: edits shift lines."""
    for name, target, line in NAMED_LINE.findall(FENCE.sub("", path.read_text())):
        lines = (path.parent / target).read_text().splitlines()
        assert int(line) <= len(lines) and re.search(rf"\b{name}\b", lines[int(line) - 1]), (
            f"{path.name}: [`{name}`]({target}#L{line}) is not on the line that defines {name}")


CITED_TEST = re.compile(r"(tests/test_\w+\.py)::(test_\w+)")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_cited_tests_exist(path):
    for file, name in CITED_TEST.findall(path.read_text()):
        source = ROOT / file
        assert source.exists(), f"{path.name} cites {file}, which does not exist"
        assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{path.name} cites {file}::{name}, not found"


# ---------------------------------------------------------------------------- checks the derivation cites


def test_unbroadcast_sums_over_the_copies():
    g = np.arange(24.0).reshape(2, 3, 4)                       # the gradient of a [2, 3, 4] result
    np.testing.assert_array_equal(ta.unbroadcast(g, (4,)), g.sum(axis=(0, 1)))            # added leading axes
    np.testing.assert_array_equal(ta.unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])  # stretched size-1 axis
    np.testing.assert_array_equal(ta.unbroadcast(g, (2, 3, 4)), g)                        # nothing to undo
    b = ta.Tensor(np.ones(4), requires_grad=True)
    (ta.Tensor(g) * b).sum().backward()                        # b was broadcast to [2, 3, 4]
    np.testing.assert_array_equal(b.grad, g.sum(axis=(0, 1)))


def test_scaling_by_sqrt_dk_keeps_scores_at_unit_size():
    rng = np.random.default_rng(0)
    for d_k in (4, 64, 512):
        q, k = rng.standard_normal((2, 10000, d_k))            # unit-variance entries
        raw = (q * k).sum(axis=1)                              # 10000 dot products q . k
        assert abs(raw.var() / d_k - 1) < 0.06                 # Var(q . k) = d_k
        assert abs((raw / math.sqrt(d_k)).var() - 1) < 0.06    # Var(q . k / sqrt(d_k)) = 1

    # backward: S = c R gives dR = c dS, on the bare Mul ...
    c = 1 / math.sqrt(7)
    R = ta.Tensor(rng.standard_normal((3, 5, 5)), requires_grad=True)
    dS = rng.standard_normal((3, 5, 5))
    (R * c).backward(dS)
    np.testing.assert_allclose(R.grad, c * dS, rtol=1e-12)
    # ... and inside SelfAttention, where R = Q K^T: dQ = dR K = c dS K and dK = dR^T Q = c dS^T Q
    layer = nn.SelfAttention(6, d_k=7, keep_intermediates=True).to(np.float64)
    x = ta.Tensor(rng.standard_normal((2, 5, 6)))
    out = layer(x)
    kept = layer.intermediates
    for name in "QKS":
        kept[name].retain_grad()
    out.backward(rng.standard_normal(out.shape))
    assert layer.scale == c
    Q, K, dS = kept["Q"].data, kept["K"].data, kept["S"].grad
    np.testing.assert_allclose(kept["Q"].grad, c * dS @ K, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kept["K"].grad, c * dS.transpose(0, 2, 1) @ Q, rtol=1e-9, atol=1e-12)


def test_a_fully_masked_row_against_pytorch():
    """Ours: zeros, fused or op by op. PyTorch 2.13: SDPA gives zeros, softmax of an all -inf row gives NaN."""
    torch = pytest.importorskip("torch")
    import tinygrad_attn.functional as F

    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 4, 3))
    mask = np.tril(np.ones((4, 4), dtype=bool))
    mask[2] = False                                            # query 2 may attend nothing
    ours = F.scaled_dot_product_attention(ta.Tensor(q), ta.Tensor(k), ta.Tensor(v), mask=mask).data
    ours_op_by_op = ta.Tensor(q @ k.T).masked_fill(~mask, -math.inf).softmax(axis=-1).data
    theirs = torch.nn.functional.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)),
                                                               attn_mask=torch.tensor(mask)).numpy()
    theirs_softmax = torch.softmax(torch.tensor(q @ k.T).masked_fill(~torch.tensor(mask), -math.inf), -1).numpy()
    assert np.all(ours[2] == 0) and np.all(ours_op_by_op[2] == 0)
    assert np.all(theirs[2] == 0) and np.isnan(theirs_softmax[2]).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)


def test_multi_head_gradients_follow_the_derivation():
    rng = np.random.default_rng(0)
    T, d_model, n_heads = 5, 6, 3
    d_h = d_model // n_heads
    mha = nn.MultiHeadAttention(d_model, n_heads).to(np.float64)
    x = ta.Tensor(rng.standard_normal((T, d_model)), requires_grad=True)
    out = mha(x)
    dOut = rng.standard_normal(out.shape)
    out.backward(dOut)

    X, Wq, Wk, Wv, Wo = (a.data for a in (x, mha.W_q, mha.W_k, mha.W_v, mha.W_o))
    Q, K, V = X @ Wq, X @ Wk, X @ Wv                           # [T, d_model] each
    heads, dQ, dK, dV = [], np.zeros_like(Q), np.zeros_like(K), np.zeros_like(V)
    for h in range(n_heads):
        cols = slice(h * d_h, (h + 1) * d_h)                   # head h owns these columns
        S = Q[:, cols] @ K[:, cols].T / math.sqrt(d_h)
        P = np.exp(S - S.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        heads.append((P, V[:, cols]))
    concat = np.concatenate([P @ Vh for P, Vh in heads], axis=1)   # [T, d_model]
    dConcat = dOut @ Wo.T                                      # back through out = concat W_o
    for h, (P, Vh) in enumerate(heads):
        cols = slice(h * d_h, (h + 1) * d_h)
        dH = dConcat[:, cols]                                  # concat's backward: each head its own columns
        dV[:, cols] = P.T @ dH
        dP = dH @ Vh.T
        dS = P * (dP - (dP * P).sum(axis=1, keepdims=True))
        dQ[:, cols] = dS @ K[:, cols] / math.sqrt(d_h)
        dK[:, cols] = dS.T @ Q[:, cols] / math.sqrt(d_h)
    np.testing.assert_allclose(out.data, concat @ Wo, rtol=1e-10)
    np.testing.assert_allclose(mha.W_o.grad, concat.T @ dOut, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mha.W_q.grad, X.T @ dQ, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mha.W_k.grad, X.T @ dK, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mha.W_v.grad, X.T @ dV, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad, dQ @ Wq.T + dK @ Wk.T + dV @ Wv.T, rtol=1e-9, atol=1e-12)
