"""`tinygrad-attn train` / `sample` end to end on tiny runs, and the models they build."""

import json
import math

import numpy as np
import pytest

import tinygrad_attn as ta
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
    for name in ("checkpoint.npz", "losses.png", "attention_layer0.png", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    assert len(metrics["losses"]) == 12 and metrics["final_loss"] == metrics["losses"][-1]
    assert 0.0 <= metrics["held_out_accuracy"] <= 1.0 and metrics["held_out_tokens"] == 20 * 8
    assert set(metrics["final_grad_norms"]) == {"L0.W_q", "L0.W_k", "L0.W_v"}
    assert set(metrics["final_attention_entropy"]) == {"L0.h0"}
    assert 0.0 <= metrics["final_attention_entropy"]["L0.h0"] <= math.log(8) + 1e-6
    assert metrics["config"]["task"] == "reverse" and metrics["config"]["model"] == "attention"


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
