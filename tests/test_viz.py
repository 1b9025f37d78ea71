"""viz: attention heatmaps and loss curves render to readable PNGs; plot_graph and draw_graph describe the
real graph."""

import math

import numpy as np
import pytest
from figcheck import assert_png, assert_readable, texts
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import tinygrad_attn as ta
from tinygrad_attn import nn, viz

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


def test_plot_attention_layers_and_heads_grid(tmp_path):
    fig = viz.plot_attention(attention_rows((2, 2, 6, 6)), tokens=list("abcdef"), title="2 layers x 2 heads",
                             path=tmp_path / "grid.png")
    assert_png(tmp_path / "grid.png")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["layer 0 · head 0", "layer 0 · head 1", "layer 1 · head 0", "layer 1 · head 1"]
    assert_readable(fig)


@pytest.mark.parametrize("T", [3, 8, 32])
def test_plot_attention_labels_stay_apart_at_any_length(tmp_path, T):
    tokens = [chr(ord("a") + i % 26) for i in range(T)]
    fig = viz.plot_attention(attention_rows((2, T, T)), tokens=tokens, title=f"T = {T}", path=tmp_path / "t.png")
    assert_readable(fig)                                       # in the canvas, and no two tick labels overlap
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    if T > viz.MAX_TICKS:
        step = math.ceil(T / viz.MAX_TICKS)
        assert rows == [f"{i} {tokens[i]}" for i in range(0, T, step)]   # thinned, with position and token
    else:
        assert rows == tokens
    assert fig.axes[0].get_xlabel() == "key (attended to)" and fig.axes[0].get_ylabel() == "query (attending)"


def test_plot_attention_marks_cells_and_titles_panels():
    fig = viz.plot_attention(attention_rows((2, 4, 4)), marks=[(0, 1), (1, 2), (2, 3), (3, 0)],
                             panel_titles=["naive", "learned"], title="the seed's point")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["naive", "learned"]
    for ax in panels:
        corners = sorted(p.get_xy() for p in ax.patches if isinstance(p, Rectangle))
        assert corners == sorted((j - 0.5, i - 0.5) for i, j in [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert_readable(fig)
    with pytest.raises(ValueError, match="panel titles"):
        viz.plot_attention(attention_rows((2, 4, 4)), panel_titles=["one"])


def test_plot_attention_steps_one_column_per_step(tmp_path):
    snapshots = {s: attention_rows((3, 8, 8), seed=s) for s in (0, 5, 20, 100)}
    fig = viz.plot_attention_steps(snapshots, list("31415926"), ["layer 0 · head 0", "layer 0 · head 1",
                                                                 "layer 1 · head 0"], title="as training goes",
                                   path=tmp_path / "steps.png")
    assert_png(tmp_path / "steps.png")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 12 and [ax.get_title() for ax in panels[:4]] == ["step 0", "step 5", "step 20", "step 100"]
    np.testing.assert_allclose(panels[5].images[0].get_array(), snapshots[5][1])   # row 1 = head 1, column 1 = step 5
    assert "layer 1 · head 0" in panels[8].get_ylabel()
    assert_readable(fig)


def test_plot_losses_writes_png(tmp_path):
    steps = 20
    fig = viz.plot_losses(np.linspace(2, 0.1, steps), np.linspace(0.1, 1, steps),
                          grad_norms={"L0.W_q": np.ones(steps), "L0.W_k": np.ones(steps)},
                          entropies={"L0.h0": np.linspace(2, 0, steps)}, path=tmp_path / "loss.png")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4                                  # loss, its accuracy twin, grad norms, entropy
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_losses_held_out_beside_batch_loss_one_legend(tmp_path):
    steps = 30
    fig = viz.plot_losses(np.linspace(2, 0.1, steps), np.linspace(0.1, 1, steps), held_out=([10, 20, 30], [1.5, 1, .5]),
                          title="training", path=tmp_path / "loss.png")
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["batch loss", "held-out loss"]
    np.testing.assert_array_equal(loss_ax.get_lines()[1].get_xdata(), [10, 20, 30])
    legend = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert legend == ["batch loss", "held-out loss", "batch accuracy"]   # covers the twin accuracy axis too
    assert_readable(fig)


@pytest.mark.parametrize("losses", [[3.0, 2.9, 2.8], [2.0, 1e-9], [1.0, 1.0]])
def test_plot_losses_log_axis_spans_whole_decades_with_two_labels_or_more(losses):
    """The loss axis is laid out with fixed margins, so its labels must be 10^k only, however narrow or
    wide the range (a 3-step run within one decade, nine decades, a flat curve at exactly 1)."""
    fig = viz.plot_losses(losses, title="t", grad_norms={"L0.W_q": np.asarray(losses) / 10})
    for ax in (fig.axes[0], fig.axes[1]):
        lo, hi = ax.get_ylim()
        assert math.log10(lo) == math.floor(math.log10(lo)) and math.log10(hi) == math.floor(math.log10(hi))
        assert lo <= min(ax.get_lines()[0].get_ydata()) and max(ax.get_lines()[0].get_ydata()) < hi
    labels = [t for t, _ in texts(fig) if t in fig.axes[0].yaxis.get_ticklabels()]
    assert len(labels) >= 2 and all("10^" in t.get_text() for t in labels)
    assert_readable(fig)


def test_plot_self_bias(tmp_path):
    fig = viz.plot_self_bias([2, 8, 32], [0.7, 0.95, 1.0], [0.6, 0.9, 1.0], T=3, path=tmp_path / "bias.png")
    assert_png(tmp_path / "bias.png")
    assert [line.get_label() for line in fig.axes[0].get_lines()][:2] == ["rows where self wins", "mean weight on self"]
    assert_readable(fig)


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


def attention_graph():
    """The loss of one SelfAttention layer (keep_intermediates), every grad filled, the graph kept."""
    ta.manual_seed(0)
    layer = nn.SelfAttention(4, d_k=3, keep_intermediates=True).to(np.float64)
    x = ta.randn(2, 5, 4, dtype=np.float64)
    loss = (layer(x) ** 2).mean()
    for t in layer.intermediates.values():
        t.retain_grad()
    loss.backward(retain_graph=True)
    return layer, loss


def test_plot_graph_of_one_attention_layer(tmp_path):
    layer, loss = attention_graph()
    fig = viz.plot_graph(loss, params=layer, path=tmp_path / "graph.png")
    assert_png(tmp_path / "graph.png")
    boxes = {t.get_text().split("\n")[0]: t for t, _ in texts(fig) if t.get_bbox_patch() is not None}
    for name in ("W_q", "W_k", "W_v", "Q", "K", "V", "S", "P", "H", "output", "input"):
        assert name in boxes, name
    for name, t in [("W_q", layer.W_q), ("S", layer.intermediates["S"]), ("P", layer.intermediates["P"])]:
        lines = boxes[name].get_text().split("\n")
        assert lines[1] == f"{t.shape} float64"
        assert lines[2] == f"mean {t.data.mean():.3g}, std {t.data.std():.3g}"
        assert lines[3] == f"|grad| {np.linalg.norm(t.grad):.3g}"
    ops = [t.get_text() for t, _ in texts(fig) if t.get_bbox_patch() is not None
           and "ellipse" in type(t.get_bbox_patch().get_boxstyle()).__name__.lower()]
    # Q, K, V, Q K^T and P V are MatMuls; K^T a Permute; the scale and the mean's 1/N are Muls; (.)**2 a Pow
    assert sorted(ops) == sorted(["MatMul"] * 5 + ["Permute", "Mul", "Mul", "Softmax", "Pow", "Sum"])
    assert_readable(fig)
    extents = [t.get_bbox_patch().get_window_extent() for t in boxes.values()]
    for i, a in enumerate(extents):                            # no box hides another
        assert not any(a.overlaps(b) for b in extents[i + 1:])


def test_plot_graph_rows_follow_topological_depth():
    a, b, loss = small_graph()
    fig = viz.plot_graph(loss, params={"a": a, "b": b})
    y = {t.get_text().split("\n")[0]: t.get_position()[1] for t, _ in texts(fig) if t.get_bbox_patch() is not None}
    assert y["a"] == y["b"] > y["MatMul"] > y["Relu"] > y["Sum"] > y["output"]
    layer, loss = attention_graph()
    named = [t.get_text().split("\n")[0] for t, _ in texts(viz.plot_graph(loss, params=layer.named_parameters()))]
    assert {"W_q", "W_k", "W_v"} <= set(named) and "S" not in named  # pairs name the parameters only


def test_plot_graph_after_backward_explains_the_freed_graph():
    _, _, loss = small_graph()
    loss.backward()
    with pytest.raises(RuntimeError, match="plot_graph.*retain_graph=True"):
        viz.plot_graph(loss)


def test_render_graph_without_graphviz(monkeypatch, tmp_path):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz is not installed.*DOT text"):
        viz.render_graph(small_graph()[2], tmp_path / "g.svg")


@pytest.mark.skipif(viz.shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_graph_with_graphviz(tmp_path):
    path = viz.render_graph(small_graph()[2], tmp_path / "g.svg")
    assert "MatMul" in path.read_text()
