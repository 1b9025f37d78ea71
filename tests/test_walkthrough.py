"""`tinygrad-attn demo`: the walkthrough runs, and what it prints is right.

The walkthrough runs once (with --quick and --out) and every test reads its printed text. Expected
values are computed here independently (numpy, fresh random draws), not copied from the module.
"""

import contextlib
import io
import re

import numpy as np
import pytest
from figcheck import assert_png, assert_readable, record_figures

from tinygrad_attn import cli
from tinygrad_attn.cli import walkthrough

NUMBER = r"-?\d+\.\d+(?:e[-+]\d+)?"


FIGURES = {}                                                   # png name -> the Figure the run saved there


@pytest.fixture(scope="module")
def figures(run):
    return FIGURES


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(stdout split into steps 1..6, output directory) of one quick run with --out; its figures go to FIGURES."""
    out = tmp_path_factory.mktemp("demo")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.MonkeyPatch.context() as patch:
        figures = record_figures(patch)
        code = walkthrough.main(["--quick", "--out", str(out), "--seed", "3"])
    assert code == 0
    text = buffer.getvalue()
    parts = re.split(r"^Step (\d)/6: .*$", text, flags=re.M)
    assert parts[1::2] == ["1", "2", "3", "4", "5", "6"], "the six steps are printed, in order"
    FIGURES.update({path.name: fig for path, fig in figures})
    return dict(zip(range(1, 7), parts[2::2])), out


def read_matrix(text: str, title: str) -> np.ndarray:
    """The matrix printed under the line that starts with `title`: rows like '  x1 |   1.000   0.500'."""
    lines = text[text.index(title):].splitlines()[1:]
    rows = []
    for line in lines:
        if "|" in line:
            rows.append([float(v) for v in line.split("|")[1].split()])
        elif rows:
            break
    return np.array(rows)


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_step1_weights_and_outputs_follow_from_the_printed_tokens(run):
    steps, _ = run
    X = read_matrix(steps[1], "tokens X")
    assert X.shape == (3, 3)
    S = read_matrix(steps[1], "scores S")
    W = read_matrix(steps[1], "weights W")
    H = read_matrix(steps[1], "outputs H")
    np.testing.assert_allclose(S, X @ X.T, atol=1e-3)
    np.testing.assert_allclose(W, softmax(X @ X.T), atol=1e-3)
    np.testing.assert_allclose(H, softmax(X @ X.T) @ X, atol=2e-3)
    own = [f"x{i + 1}" for i in range(3) if W[i].argmax() == i]
    assert f"largest weight: {', '.join(own)}." in " ".join(steps[1].split())


def test_step2_self_bias_matches_an_independent_estimate(run):
    steps, _ = run
    table = {int(d): (float(frac) / 100, float(weight))
             for d, frac, weight in re.findall(r"^\s+(\d+)\s+(\d+\.\d)%\s+(\d\.\d+)\s*$", steps[2], flags=re.M)}
    assert sorted(table) == [2, 8, 32, 128]
    rng = np.random.default_rng(12345)
    for d, (fraction, mean_weight) in table.items():
        x = rng.standard_normal((20000, 3, d))
        w = softmax(x @ x.transpose(0, 2, 1))                   # [N, 3, 3]
        assert abs(fraction - (w.argmax(-1) == np.arange(3)).mean()) < 0.05, d
        assert abs(mean_weight - np.diagonal(w, axis1=1, axis2=2).mean()) < 0.05, d
    fractions = [table[d][0] for d in sorted(table)]
    assert fractions[0] > 0.5                                   # well above chance (1/3) already at d = 2
    assert fractions == sorted(fractions) and fractions[-1] > 0.99


def test_step3_hand_computation_matches_the_layer(run):
    steps, _ = run
    diffs = re.search(rf"max \|H - layer\(X\)\| = ({NUMBER}), max \|P - layer.attn\| = ({NUMBER})", steps[3])
    assert diffs and max(float(diffs[1]), float(diffs[2])) < 1e-5
    Q, K = read_matrix(steps[3], "queries Q"), read_matrix(steps[3], "keys K")
    V, P = read_matrix(steps[3], "values V"), read_matrix(steps[3], "weights P")
    np.testing.assert_allclose(P, softmax(Q @ K.T / np.sqrt(2)), atol=3e-3)
    np.testing.assert_allclose(read_matrix(steps[3], "outputs H"), P @ V, atol=5e-3)


def test_step4_projections_learn_what_naive_attention_cannot(run):
    steps, _ = run
    naive = float(re.search(rf"naive accuracy: ({NUMBER})", steps[4])[1])
    trained = float(re.search(rf"projections accuracy: ({NUMBER})", steps[4])[1])
    assert trained > naive
    assert trained > 0.9 and naive < 0.9
    assert "nn.SelfAttention before training" in steps[4]


def test_step5_every_gradient_matches_its_closed_form(run):
    steps, _ = run
    rows = re.findall(rf"^(dL/d\S+)\s+.*\((\d), (\d)\)\s+({NUMBER})$", steps[5], flags=re.M)
    names = [r[0] for r in rows]
    assert names == ["dL/dH", "dL/dV", "dL/dP", "dL/dS", "dL/dQ", "dL/dK", "dL/dW_q", "dL/dW_k", "dL/dW_v", "dL/dX"]
    assert all(float(r[3]) < 1e-10 for r in rows)
    dS = read_matrix(steps[5], "dL/dS")
    assert dS.shape == (3, 3) and np.abs(dS).max() > 1e-3      # a real gradient, not zeros
    np.testing.assert_allclose(dS.sum(axis=1), 0, atol=3e-3)  # softmax ignores a constant added to a row
    assert "finite differences for X, W_q, W_k, W_v: passed" in steps[5]


def test_step6_fused_softmax_has_the_same_gradient_and_a_smaller_graph(run):
    steps, _ = run
    graph = {name: (int(ops), int(tensors)) for name, ops, tensors
             in re.findall(rf"^(composite|fused)\s+(\d+)\s+(\d+)\s+{NUMBER}$", steps[6], flags=re.M)}
    assert graph["fused"] == (1, 2)                            # one Softmax node: input and output
    assert graph["composite"][0] > graph["fused"][0] and graph["composite"][1] > graph["fused"][1]
    diffs = [float(v) for v in re.findall(rf"= ({NUMBER})$", steps[6], flags=re.M)]
    assert len(diffs) == 2 and max(diffs) < 1e-12


def test_out_saves_heatmaps_and_graphs(run, figures):
    _, out = run
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["step1_naive_weights.png", "step2_self_bias.png", "step3_qkv_weights.png", "step4_before.png",
                    "step4_naive_after.png", "step4_naive_vs_learned.png", "step4_projections_after.png",
                    "step5_graph.png", "step6_composite_graph.png", "step6_fused_graph.png"]
    for name in pngs:
        assert_png(out / name)
        assert_readable(figures[name])                     # every text inside the canvas, nothing overlapping
    assert (out / "step6_fused_graph.dot").read_text().startswith("digraph")


def test_the_seed_figure_marks_the_targets_beside_both_maps(run, figures):
    steps, _ = run
    fig = figures["step4_naive_vs_learned.png"]
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 and "naive" in panels[0].get_title() and "learned" in panels[1].get_title()
    naive = float(re.search(rf"naive accuracy: ({NUMBER})", steps[4])[1])
    assert f"accuracy {naive:.0%}" in panels[0].get_title()
    T = panels[0].images[0].get_array().shape[0]
    for ax in panels:                                          # the red boxes sit on (i, i + 1 mod T)
        marked = sorted((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches)
        assert marked == [(i, (i + 1) % T) for i in range(T)]
    learned = panels[1].images[0].get_array()
    assert list(learned.argmax(axis=1)) == [(i + 1) % T for i in range(T)]


def test_the_self_bias_plot_shows_the_printed_table(run, figures):
    steps, _ = run
    printed = [float(v) / 100 for v in re.findall(r"^\s+\d+\s+(\d+\.\d)%", steps[2], flags=re.M)]
    line = figures["step2_self_bias.png"].axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [2, 8, 32, 128]
    np.testing.assert_allclose(line.get_ydata(), printed, atol=5e-4)   # the table rounds to 0.1%


def test_the_graph_of_step5_names_every_intermediate(figures):
    fig = figures["step5_graph.png"]
    boxes = [t.get_text().split("\n")[0] for t in fig.axes[0].texts]
    for name in ("X", "W_q", "W_k", "W_v", "Q", "K", "V", "S", "P", "H", "output"):
        assert name in boxes
    grads = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("S\n")]
    assert "|grad|" in grads[0]


def test_cli_dispatches_demo(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out
