"""`tinygrad-attn train` / `sample` end to end on tiny runs, and the models they build."""

import json
import math

import numpy as np
import pytest
from figcheck import assert_png, assert_readable, record_figures

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn
from tinygrad_attn.cli import train
from tinygrad_attn.cli.models import build_model

TINY = ["--steps", "12", "--batch-size", "16", "--eval-size", "20", "--quiet"]


def run(tmp_path, *flags: str) -> dict:
    """Run `train.main` into tmp_path and return its metrics.json."""
    assert train.main([*TINY, *flags, "--out", str(tmp_path)]) == 0
    return json.loads((tmp_path / "metrics.json").read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, run(out, "--seed", "3")


def test_train_writes_checkpoint_plots_and_metrics(tiny_run):
    out, metrics = tiny_run
    for name in ("checkpoint.npz", "losses.png", "attention_layer0.png", "attention_steps.png", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    assert len(metrics["losses"]) == 12 and metrics["final_loss"] == metrics["losses"][-1]
    assert 0.0 <= metrics["held_out_accuracy"] <= 1.0 and metrics["held_out_tokens"] == 20 * 8
    assert set(metrics["final_grad_norms"]) == {"L0.W_q", "L0.W_k", "L0.W_v"}
    assert set(metrics["final_attention_entropy"]) == {"L0.h0"}
    assert 0.0 <= metrics["final_attention_entropy"]["L0.h0"] <= math.log(8) + 1e-6
    assert metrics["config"]["task"] == "reverse" and metrics["config"]["model"] == "attention"


def test_held_out_loss_is_tracked_and_reported(tmp_path, capsys):
    assert train.main([*TINY, "--steps", "10", "--out", str(tmp_path)]) == 0
    summary = capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["held_out_losses"]["step"] == list(range(1, 11))            # every log step (10 steps: each)
    assert all(v > 0 for v in metrics["held_out_losses"]["loss"])
    assert f"held-out loss {metrics['held_out_loss']:.6f}" in summary
    model, task, _ = train.load_checkpoint(tmp_path / "checkpoint.npz")
    ta.manual_seed(7)
    x, y = task.batch(20, held_out=True)
    with ta.no_grad():                                          # the same quantity, measured independently
        fresh = F.cross_entropy(model(x), y).item()
    assert abs(fresh - metrics["held_out_loss"]) < 0.5 * metrics["held_out_loss"]


def test_snapshot_steps_double_up_to_the_last():
    assert train.snapshot_steps(200) == {6, 12, 25, 50, 100, 200}
    assert train.snapshot_steps(3) == {1, 2, 3}


def test_every_figure_of_a_multi_layer_run_is_readable(tmp_path, monkeypatch, capsys):
    """train and sample --png with 2 layers x 2 heads at T = 24 (the lm task; beyond 16 positions the tick
    labels are thinned): titles name layer and head, no label leaves the canvas, no tick labels collide,
    the snapshots cover step 0 to the last."""
    figures = record_figures(monkeypatch)
    run(tmp_path, "--task", "lm", "--seq-len", "24", "--model", "transformer", "--layers", "2", "--heads", "2",
        "--d-model", "16", "--steps", "4", "--batch-size", "4")
    png = tmp_path / "sample.png"
    assert train.sample_main(["--checkpoint", str(tmp_path / "checkpoint.npz"), "--chars", "2", "--png", str(png)]) == 0
    saved = {p.name: fig for p, fig in figures}
    assert sorted(saved) == ["attention_layer0.png", "attention_layer1.png", "attention_steps.png", "losses.png",
                             "sample.png"]
    for name, fig in saved.items():
        assert_png(tmp_path / name)
        assert_readable(fig)
    panel_titles = [ax.get_title() for ax in saved["sample.png"].axes if ax.images]
    assert panel_titles == ["layer 0 · head 0", "layer 0 · head 1", "layer 1 · head 0", "layer 1 · head 1"]
    assert [ax.get_title() for ax in saved["attention_layer1.png"].axes if ax.images] == panel_titles[2:]
    steps = saved["attention_steps.png"]
    assert [ax.get_title() for ax in steps.axes if ax.images][:4] == ["step 0", "step 1", "step 2", "step 4"]
    assert sum(1 for ax in steps.axes if ax.images) == 4 * 4      # 4 heads x 4 snapshots
    legend = [t.get_text() for t in saved["losses.png"].axes[0].get_legend().get_texts()]
    assert legend == ["batch loss", "held-out loss", "batch accuracy"]


def test_checkpoint_rebuilds_the_trained_model(tiny_run):
    out, metrics = tiny_run
    model, task, config = train.load_checkpoint(out / "checkpoint.npz")
    assert config == metrics["config"] and task.name == "reverse"
    saved = ta.load(out / "checkpoint.npz")["state"]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, saved[name])


def test_sample_prints_prediction_and_attention(tiny_run, capsys, tmp_path):
    out, _ = tiny_run
    png = tmp_path / "sample.png"
    assert train.sample_main(["--checkpoint", str(out / "checkpoint.npz"), "--input", "3 1 4 1 5 9 2 6",
                              "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "input:      3 1 4 1 5 9 2 6" in text
    assert "prediction: " in text and "expected:   6 2 9 5 1 4 1 3" in text
    assert "attention, layer 0 head 0" in text
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sample_rejects_input_of_the_wrong_length(tiny_run, capsys):
    out, _ = tiny_run
    with pytest.raises(SystemExit) as exit_info:
        train.sample_main(["--checkpoint", str(out / "checkpoint.npz"), "--input", "3 1 4"])
    assert exit_info.value.code == 2 and "exactly 8 tokens" in capsys.readouterr().err


def test_sample_rejects_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        train.sample_main(["--checkpoint", str(bad)])
    assert exit_info.value.code == 2 and "is not a checkpoint" in capsys.readouterr().err


def test_same_seed_repeats_losses_exactly(tiny_run, tmp_path):
    _, first = tiny_run
    again = run(tmp_path / "again", "--seed", "3")
    assert again["losses"] == first["losses"]
    other = run(tmp_path / "other", "--seed", "4")
    assert other["losses"] != first["losses"]


def test_no_scale_and_transformer_run(tmp_path):
    metrics = run(tmp_path / "a", "--no-scale", "--steps", "3")
    assert metrics["config"]["scale"] is False
    metrics = run(tmp_path / "t", "--model", "transformer", "--layers", "1", "--heads", "2", "--d-model", "16",
                  "--task", "sort", "--seq-len", "4", "--no-scale", "--steps", "3")
    assert set(metrics["final_grad_norms"]) == {"L0.W_q", "L0.W_k", "L0.W_v", "L0.W_o"}
    assert set(metrics["final_attention_entropy"]) == {"L0.h0", "L0.h1"}


def test_lm_trains_and_samples(tmp_path, capsys):
    run(tmp_path, "--task", "lm", "--seq-len", "8", "--steps", "3")
    capsys.readouterr()
    assert train.sample_main(["--checkpoint", str(tmp_path / "checkpoint.npz"), "--input", "the ",
                              "--chars", "5"]) == 0
    text = capsys.readouterr().out
    assert "generated:  'the " in text and "attention, layer 0 head 0" in text


def test_defaults_reach_99_percent_held_out_accuracy(tmp_path):
    """The full default run (reverse with the attention model, 200 steps): it converges in ~50."""
    assert train.main(["--quiet", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["held_out_accuracy"] >= 0.99


def test_unscaled_attention_is_scaled_attention_with_queries_times_sqrt_dk():
    """Q K^T = (sqrt(d) Q) K^T / sqrt(d): scale=1.0 layers match the default layers with W_q * sqrt(d)."""
    x = ta.randn(2, 5, 8)
    for unscaled, scaled, d in ((nn.SelfAttention(8, causal=True, scale=1.0), nn.SelfAttention(8, causal=True), 8),
                                (nn.MultiHeadAttention(8, 2, scale=1.0), nn.MultiHeadAttention(8, 2), 4)):
        scaled.load_state_dict(unscaled.state_dict())
        scaled.W_q.data = scaled.W_q.data * np.float32(math.sqrt(d))
        np.testing.assert_allclose(unscaled(x).data, scaled(x).data, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(unscaled.attn, scaled.attn, rtol=1e-4, atol=1e-6)


def test_build_model_param_names_and_errors():
    config = dict(model="transformer", vocab_size=10, seq_len=6, d_model=8, n_heads=2, n_layers=2, causal=False,
                  scale=False)
    names = [name for name, _ in build_model(config).named_parameters()]
    assert "blocks.1.mha.W_o" in names and "embed.positions.weight" in names and "head.weight" in names
    with pytest.raises(ValueError, match="unknown model"):
        build_model({**config, "model": "rnn"})
