"""`tinygrad-attn train` and `tinygrad-attn sample`: fit a tiny attention model to a built-in task, then
run it on an input and look at where it attends.

A training run writes to `--out`: `checkpoint.npz` (the state dict and the config that rebuilds the
model), `losses.png` (loss, accuracy, projection gradient norms, attention entropy per head),
`attention_layer<L>.png` (every head of layer L on a held-out sequence) and `metrics.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import optim, viz
from tinygrad_attn.cli.models import attention_maps, build_model
from tinygrad_attn.cli.tasks import TASKS, SequenceTask, Task, get_task

LABELS = {" ": "\u2423", "\n": "\u21b5"}                      # how `sample` shows a space and a newline
DEFAULTS = dict(task="reverse", model="attention", steps=200, batch_size=64, lr=1e-2, d_model=32, heads=2, layers=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinygrad-attn train", description="Train a tiny attention model on a "
                                "built-in task, with a progress bar; save a checkpoint, plots and metrics.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=TASKS, default=DEFAULTS["task"],
                   help="copy, reverse, sort or shift digit sequences, or lm: next-character prediction")
    p.add_argument("--seq-len", type=int, default=None, help="sequence length (default: the task's own)")
    p.add_argument("--model", choices=("attention", "transformer"), default=DEFAULTS["model"],
                   help="attention: embeddings + one SelfAttention + head; transformer: a stack of blocks")
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"], help="transformer blocks")
    p.add_argument("--heads", type=int, default=DEFAULTS["heads"], help="attention heads per transformer block")
    p.add_argument("--d-model", type=int, default=DEFAULTS["d_model"], help="width of the embeddings")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="sequences per step")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed for init and data: the same seed repeats a run exactly")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba", help="kernels to run on")
    p.add_argument("--no-scale", action="store_true", help="drop the 1/sqrt(d_k) from attention, to see what it is for")
    p.add_argument("--eval-size", type=int, default=1000, help="held-out sequences for the final accuracy")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<task>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines, just the summary")
    return p


def main(argv: list[str]) -> int:
    """`tinygrad-attn train`: train, evaluate on fresh sequences, write the run's files, print a summary."""
    args = build_parser().parse_args(argv)
    for flag in ("steps", "batch_size", "d_model", "heads", "layers", "eval_size"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"tinygrad-attn train: --{flag.replace('_', '-')} must be at least 1")
    if args.d_model % args.heads and args.model == "transformer":
        raise SystemExit(f"tinygrad-attn train: --d-model {args.d_model} is not divisible by --heads {args.heads}")
    out = args.out if args.out is not None else Path("runs") / args.task
    if out.exists() and not out.is_dir():
        raise SystemExit(f"tinygrad-attn train: --out {out} is a file, not a folder")
    start = time.perf_counter()
    with ta.backend(args.backend):
        ta.manual_seed(args.seed)
        task = get_task(args.task, args.seq_len)
        config = dict(task=task.name, model=args.model, vocab_size=task.vocab_size, seq_len=task.seq_len,
                      d_model=args.d_model, n_heads=args.heads if args.model == "transformer" else 1,
                      n_layers=args.layers if args.model == "transformer" else 1, causal=task.causal,
                      scale=not args.no_scale)
        model = build_model(config)
        history, train_time = fit(model, task, args)
        accuracy, sample = evaluate(model, task, args.eval_size)
    out.mkdir(parents=True, exist_ok=True)
    files = write_run(out, model, task, config, history, sample)
    metrics = dict(config=config, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                   backend=args.backend, final_loss=history["loss"][-1], held_out_accuracy=accuracy,
                   held_out_tokens=args.eval_size * task.seq_len, steps_per_second=max(1, args.steps - 1) / train_time,
                   wall_time_seconds=time.perf_counter() - start, losses=history["loss"],
                   final_grad_norms={k: v[-1] for k, v in history["grad_norm"].items()},
                   final_attention_entropy={k: v[-1] for k, v in history["entropy"].items()})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"task {task.name}, model {args.model} (d_model {args.d_model}"
          + (f", {args.layers} layers x {args.heads} heads" if args.model == "transformer" else "")
          + (", no 1/sqrt(d_k)" if args.no_scale else "") + f"), {args.steps} steps, backend {args.backend}")
    print(f"final loss {metrics['final_loss']:.6f} | held-out token accuracy {accuracy:.2%} "
          f"({metrics['held_out_tokens']} tokens) | {metrics['steps_per_second']:.0f} steps/s | "
          f"wall time {metrics['wall_time_seconds']:.1f} s")
    print(f"wrote {out}/: {', '.join(files + ['metrics.json'])}")
    return 0


def fit(model, task: Task, args: argparse.Namespace) -> tuple[dict, float]:
    """Adam on the cross-entropy of every position. Returns the per-step history and the seconds that steps
    2..N took (step 1 compiles or loads the kernels).

    History: `loss`, `accuracy` (on the step's batch), `grad_norm` (name -> per-step norm of dL/dW for
    each projection of each attention layer, e.g. "L0.W_q"), `entropy` ("L0.h1" -> per-step mean
    attention entropy of that head, in nats: log(T) is uniform, 0 is one key only).
    """
    opt = optim.Adam(model.parameters(), lr=args.lr)
    projections = {f"L{l}.{name}": p for l, layer in enumerate(model.attention_layers())
                   for name, p in layer.named_parameters()}
    history = dict(loss=[], accuracy=[], grad_norm={name: [] for name in projections}, entropy={})
    log_every = max(1, args.steps // 10)
    runtime = ta.kernels.runtime
    if ta.get_backend() == "numba" and not args.quiet and runtime.cache_is_cold():
        print(f"compiling the Numba kernels (first run only, a few seconds); cached in {runtime.cache_dir()}")
    bar = tqdm(range(1, args.steps + 1), desc=f"train {task.name}", disable=args.quiet, leave=False,
               dynamic_ncols=True)
    start = time.perf_counter()
    for step in bar:
        if step == 2:                   # steps/s counts from the second step: the first one compiles kernels
            start = time.perf_counter()
        x, y = task.batch(args.batch_size)                           # [B, T], [B, T]
        logits = model(x)                                            # [B, T, V]
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        history["accuracy"].append(float((logits.data.argmax(-1) == y).mean()))
        for name, p in projections.items():
            history["grad_norm"][name].append(float(np.linalg.norm(p.grad)))
        for l, weights in enumerate(attention_maps(model)):             # [B, H, T, T]
            for h, value in enumerate(mean_entropy(weights)):
                history["entropy"].setdefault(f"L{l}.h{h}", []).append(value)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", acc=f"{history['accuracy'][-1]:.3f}", refresh=False)
        if not args.quiet and (step % log_every == 0 or step == args.steps):
            bar.write(log_line(step, args.steps, history))
    return history, time.perf_counter() - start


def mean_entropy(weights: np.ndarray) -> list[float]:
    """Mean over batch and queries of each head's attention entropy -sum_j p_j log p_j; weights (B, H, T, T)."""
    p = np.clip(weights, 1e-12, 1.0)
    return [float(v) for v in (-(weights * np.log(p)).sum(-1)).mean(axis=(0, 2))]


def log_line(step: int, steps: int, history: dict) -> str:
    """One line of the training log: loss, batch accuracy, head entropies, projection gradient norms."""
    entropy = " ".join(f"{v[-1]:.2f}" for v in history["entropy"].values())
    norms = " ".join(f"{name} {v[-1]:.1e}" for name, v in history["grad_norm"].items())
    return (f"step {step:>{len(str(steps))}}/{steps}  loss {history['loss'][-1]:.6f}  "
            f"acc {history['accuracy'][-1]:.3f}  entropy {entropy}  |grad| {norms}")


def evaluate(model, task: Task, n: int) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """Token accuracy on n fresh held-out sequences, and one of them (inputs, targets) for the plots."""
    model.eval()
    with ta.no_grad():
        x, y = task.batch(n, held_out=True)                          # [n, T], [n, T]
        predicted = model(x).data.argmax(-1)                         # [n, T]
    model.train()
    return float((predicted == y).mean()), (x[:1], y[:1])


def write_run(out: Path, model, task: Task, config: dict, history: dict, sample) -> list[str]:
    """Checkpoint, loss curves and one attention heatmap per layer into `out`; returns the file names."""
    save_checkpoint(out / "checkpoint.npz", model, config)
    viz.plot_losses(history["loss"], history["accuracy"], history["grad_norm"], history["entropy"],
                    path=out / "losses.png", title=f"{task.name}: training")
    files = ["checkpoint.npz", "losses.png"]
    x, _ = sample
    with ta.no_grad():
        model(x)
    tokens = [LABELS.get(t, t) for t in task.decode(x[0])]
    for l, weights in enumerate(attention_maps(model)):              # [1, H, T, T]
        name = f"attention_layer{l}.png"
        viz.plot_attention(weights[0], tokens, title=f"{task.name}: layer {l} on a held-out sequence",
                           path=out / name)
        files.append(name)
    return files


def save_checkpoint(path: Path, model, config: dict) -> None:
    """`ta.save` of the state dict, with the config that `load_checkpoint` rebuilds the model from (as the
    bytes of its JSON text: checkpoints hold numbers and arrays only)."""
    config_bytes = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    ta.save({"state": model.state_dict(), "config_json": config_bytes}, path)


def load_checkpoint(path: str | Path):
    """(model, task, config) from a checkpoint that `tinygrad-attn train` wrote."""
    saved = ta.load(path)
    config = json.loads(saved["config_json"].tobytes().decode("utf-8"))
    model = build_model(config)
    model.load_state_dict(saved["state"])
    model.eval()
    return model, get_task(config["task"], config["seq_len"]), config


def build_sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinygrad-attn sample", description="Run a trained checkpoint on an input; "
                                "print the prediction and its attention map.")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.npz written by `tinygrad-attn train`")
    p.add_argument("--input", default=None, help='digits for the sequence tasks, e.g. "3 1 4 1 5 9 2 6" '
                   "(exactly the trained length), text for lm; default: a random sequence")
    p.add_argument("--seed", type=int, default=0, help="seed for the random input")
    p.add_argument("--chars", type=int, default=60, help="lm only: how many characters to generate")
    p.add_argument("--png", type=Path, default=None, help="also save the attention maps as this PNG")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba", help="kernels to run on")
    return p


def sample_main(argv: list[str]) -> int:
    """`tinygrad-attn sample`: the model's prediction for one input, and a text heatmap of its attention."""
    args = build_sample_parser().parse_args(argv)
    with ta.backend(args.backend):
        try:
            model, task, config = load_checkpoint(args.checkpoint)
            ta.manual_seed(args.seed)
            x = task.encode(args.input) if args.input is not None else task.batch(1, held_out=True)[0][0]   # [T]
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"tinygrad-attn sample: {e}") from None
        with ta.no_grad():
            predicted = model(x[None]).data.argmax(-1)[0]             # [T]
            maps = attention_maps(model)                               # per layer [1, H, T, T]
        tokens = task.decode(x)
        labels = [LABELS.get(t, t) for t in tokens]                  # visible stand-ins for space and newline
        print(f"input:      {' '.join(tokens) if isinstance(task, SequenceTask) else repr(''.join(tokens))}")
        if isinstance(task, SequenceTask):
            expected = task.rule(x[None])[0]
            print(f"prediction: {' '.join(task.decode(predicted))}")
            print(f"expected:   {' '.join(task.decode(expected))}  ({int((predicted == expected).sum())}"
                  f"/{len(x)} right)")
        else:
            print(f"next chars: {''.join(task.decode(predicted))!r} (the prediction after each prefix)")
            print(f"generated:  {''.join(tokens) + generate(model, task, x, args.chars)!r}")
    for l, weights in enumerate(maps):
        for h, head in enumerate(weights[0]):
            print(f"\nattention, layer {l} head {h} (rows: queries, columns: keys)")
            print(viz.text_heatmap(head, labels))
    if args.png is not None:
        viz.plot_attention(np.concatenate([w[0] for w in maps]), labels, path=args.png,
                           title=f"{config['task']}: attention (every layer's heads, in order)")
        print(f"\nwrote {args.png}")
    return 0


def generate(model, task: Task, ids: np.ndarray, n: int) -> str:
    """n characters continuing `ids`, each the model's most likely next one given the last seq_len."""
    ids = list(ids)
    with ta.no_grad():
        for _ in range(n):
            context = np.array(ids[-task.seq_len:])[None]             # [1, <=T]
            ids.append(int(model(context).data[0, -1].argmax()))
    return "".join(task.decode(ids[-n:])) if n else ""
