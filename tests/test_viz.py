"""viz: attention heatmaps and loss curves render to PNG; draw_graph's DOT text describes the real graph."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import tinygrad_attn as ta
from tinygrad_attn import viz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def attention_rows(shape, seed=0):
    """Random rows that each sum to 1, like softmax output."""
    w = np.random.default_rng(seed).random(shape)
    return w / w.sum(-1, keepdims=True)


def test_plot_attention_one_head(tmp_path):
    path = tmp_path / "attn.png"
    fig = viz.plot_attention(attention_rows((4, 4)), tokens=list("abcd"), title="one head", path=path)
    assert isinstance(fig, Figure)
    assert path.read_bytes()[:8] == PNG_MAGIC
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    np.testing.assert_allclose(ax.images[0].get_array(), attention_rows((4, 4)))


def test_plot_attention_heads_side_by_side(tmp_path):
    fig = viz.plot_attention(attention_rows((3, 5, 5)), path=tmp_path / "heads.png")
    assert sum(len(ax.images) for ax in fig.axes) == 3
    assert (tmp_path / "heads.png").exists()


def test_plot_attention_on_a_given_ax():
    fig = Figure()
    ax = fig.subplots()
    assert viz.plot_attention(attention_rows((3, 3)), ax=ax) is fig


def test_plot_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="plot_attention"):
        viz.plot_attention(np.ones((3, 4)))
    with pytest.raises(ValueError, match="tokens"):
        viz.plot_attention(attention_rows((3, 3)), tokens=["a"])


def test_plot_losses_writes_png(tmp_path):
    steps = 20
    fig = viz.plot_losses(np.linspace(2, 0.1, steps), np.linspace(0.1, 1, steps),
                          grad_norms={"L0.W_q": np.ones(steps), "L0.W_k": np.ones(steps)},
                          entropies={"L0.h0": np.linspace(2, 0, steps)}, path=tmp_path / "loss.png")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4                                  # loss, its accuracy twin, grad norms, entropy
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC


def test_text_heatmap_shades_by_weight():
    text = viz.text_heatmap(np.array([[1.0, 0.0], [0.0, 1.0]]), ["x1", "x2"])
    lines = text.splitlines()
    assert len(lines) == 3 and "x1" in lines[0] and "x2" in lines[0]
    assert lines[1].startswith("x1") and "@@" in lines[1] and lines[1].rstrip().endswith("1.00")


def small_graph():
    """loss = sum(relu(a @ b)): three ops, MatMul, Relu and Sum."""
    a = ta.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5, requires_grad=True)
    b = ta.Tensor(np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2), requires_grad=True)
    return a, b, (a @ b).relu().sum()


def test_draw_graph_names_ops_and_shapes():
    a, b, loss = small_graph()
    dot = viz.draw_graph(loss, params={"a": a})
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("shape=ellipse") == 3                     # one op node per op applied
    for op in ("MatMul", "Relu", "Sum"):
        assert f'label="{op}"' in dot
    assert "(3, 4)" in dot and "(4, 2)" in dot and "(3, 2)" in dot and '"()"' in dot
    assert 'label="a\\n(3, 4)"' in dot                          # named leaf
    assert dot.count("shape=box") == 5                         # a, b, a @ b, relu(a @ b), the loss
    assert dot.count("->") == 7                                # Sum and Relu: 1 in + 1 out; MatMul: 2 in + 1 out


def test_draw_graph_shows_grad_norms_with_retain_graph():
    a, b, loss = small_graph()
    loss.backward(retain_graph=True)
    dot = viz.draw_graph(loss)
    assert f"|grad| = {np.linalg.norm(a.grad):.3g}" in dot
    assert f"|grad| = {np.linalg.norm(b.grad):.3g}" in dot


def test_draw_graph_after_backward_explains_the_freed_graph():
    _, _, loss = small_graph()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.draw_graph(loss)


def test_render_graph_without_graphviz(monkeypatch, tmp_path):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz is not installed.*DOT text"):
        viz.render_graph(small_graph()[2], tmp_path / "g.svg")


@pytest.mark.skipif(viz.shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_graph_with_graphviz(tmp_path):
    path = viz.render_graph(small_graph()[2], tmp_path / "g.svg")
    assert "MatMul" in path.read_text()
