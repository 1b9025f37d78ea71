"""`tinygrad-attn train` and `tinygrad-attn sample`: fit a tiny attention model to a built-in task, then
run it on an input and look at where it attends.

A training run writes to `--out`: `checkpoint.npz` (the state dict and the config that rebuilds the
model), `losses.png` (batch and held-out loss, accuracy, projection gradient norms, attention entropy
per head), `attention_layer<L>.png` (every head of layer L on a held-out sequence),
`attention_steps.png` (those maps at several steps of training, blurry at first, then sharp) and
`metrics.json`.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import optim, viz
from tinygrad_attn.cli.args import Parser, check_output_file, integer, make_folder, number
from tinygrad_attn.cli.models import attention_maps, build_model
from tinygrad_attn.cli.tasks import TASKS, SequenceTask, Task, get_task

LABELS = {" ": "\u2423", "\n": "\u21b5"}                      # how `sample` shows a space and a newline
DEFAULTS = dict(task="reverse", model="attention", steps=200, batch_size=64, lr=1e-2, d_model=32, heads=2, layers=2)


def build_parser() -> Parser:
    p = Parser(prog="tinygrad-attn train", description="Train a tiny attention model on a built-in task, with "
               "a progress bar; save a checkpoint, plots and metrics.")
    p.add_argument("--task", choices=TASKS, default=DEFAULTS["task"],
                   help="copy, reverse, sort or shift digit sequences, or lm: next-character prediction")
    p.add_argument("--seq-len", type=integer(2), default=None, help="sequence length (default: the task's own)")
    p.add_argument("--model", choices=("attention", "transformer"), default=DEFAULTS["model"],
                   help="attention: embeddings + one SelfAttention + head; transformer: a stack of blocks")
    p.add_argument("--layers", type=integer(1), default=None,
                   help=f"transformer blocks (default: {DEFAULTS['layers']}; --model transformer only)")
    p.add_argument("--heads", type=integer(1), default=None,
                   help=f"attention heads per block (default: {DEFAULTS['heads']}; --model transformer only)")
    p.add_argument("--d-model", type=integer(1), default=DEFAULTS["d_model"], help="width of the embeddings")
    p.add_argument("--steps", type=integer(1), default=DEFAULTS["steps"], help="optimizer steps")
    p.add_argument("--batch-size", type=integer(1), default=DEFAULTS["batch_size"], help="sequences per step")
    p.add_argument("--lr", type=number(above=0), default=DEFAULTS["lr"], help="Adam learning rate")
    p.add_argument("--seed", type=integer(0), default=0,
                   help="seed for init and data: the same seed repeats a run exactly")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba", help="kernels to run on")
    p.add_argument("--no-scale", action="store_true", help="drop the 1/sqrt(d_k) from attention, to see what it is for")
    p.add_argument("--eval-size", type=integer(1), default=1000, help="held-out sequences for the final accuracy")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<task>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines, just the summary")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags of `train`, checked together: a mistake is one line naming the flag (exit status 2)."""
    p = build_parser()
    args = p.parse_args(argv)
    for flag in ("heads", "layers"):
        if args.model == "attention" and getattr(args, flag) is not None:
            p.error(f"argument --{flag}: only --model transformer has it (the attention model is one "
                    "single-head layer); add --model transformer")
        setattr(args, flag, getattr(args, flag) or DEFAULTS[flag])
    if args.model == "transformer" and args.d_model % args.heads:
        p.error(f"argument --heads: --d-model {args.d_model} is not divisible by --heads {args.heads}")
    try:
        get_task(args.task, args.seq_len)
    except ValueError as e:
        p.error(f"argument --seq-len: {e}")
    args.out = args.out if args.out is not None else Path("runs") / args.task
    if args.out.exists() and not args.out.is_dir():
        p.error(f"argument --out: {args.out} is a file, not a folder")
    return args


def main(argv: list[str]) -> int:
    """`tinygrad-attn train`: train, evaluate on fresh sequences, write the run's files, print a summary."""
    args = parse_args(argv)
    out = args.out
    make_folder(out)
    start = time.perf_counter()
    with ta.backend(args.backend):
        task = get_task(args.task, args.seq_len)
        config = dict(task=task.name, model=args.model, vocab_size=task.vocab_size, seq_len=task.seq_len,
                      d_model=args.d_model, n_heads=args.heads if args.model == "transformer" else 1,
                      n_layers=args.layers if args.model == "transformer" else 1, causal=task.causal,
                      scale=not args.no_scale)
        if args.backend == "numba" and ta.kernels.runtime.cache_is_cold():
            compile_kernels(args, task, config)     # before the seed: the run is the same, cold or warm
        ta.manual_seed(args.seed)
        model = build_model(config)
        history, train_time = fit(model, task, args)
        accuracy, held_out_loss, sample = evaluate(model, task, args.eval_size)
    files = write_run(out, model, task, config, history, sample)
    metrics = dict(config=config, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                   backend=args.backend, final_loss=history["loss"][-1], held_out_accuracy=accuracy,
                   held_out_loss=held_out_loss, held_out_losses=history["held_out"],
                   held_out_tokens=args.eval_size * task.seq_len, steps_per_second=max(1, args.steps - 1) / train_time,
                   wall_time_seconds=time.perf_counter() - start, losses=history["loss"],
                   final_grad_norms={k: v[-1] for k, v in history["grad_norm"].items()},
                   final_attention_entropy={k: v[-1] for k, v in history["entropy"].items()})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"task {task.name}, model {args.model} (d_model {args.d_model}"
          + (f", {args.layers} layers x {args.heads} heads" if args.model == "transformer" else "")
          + (", no 1/sqrt(d_k)" if args.no_scale else "") + f"), {args.steps} steps, backend {args.backend}")
    print(f"final loss {metrics['final_loss']:.6f} | held-out loss {held_out_loss:.6f} | "
          f"held-out token accuracy {accuracy:.2%} "
          f"({metrics['held_out_tokens']} tokens) | {metrics['steps_per_second']:.0f} steps/s | "
          f"wall time {metrics['wall_time_seconds']:.1f} s")
    print(f"wrote {out}/: {', '.join(files + ['metrics.json'])}")
    return 0


def compile_kernels(args: argparse.Namespace, task: Task, config: dict) -> None:
    """Compile the Numba kernels this run calls before it starts (an empty cache: the first run), on every
    core: `ta.precompile` rehearses one step and the evaluation on a throwaway model (`rehearse`)."""
    if not args.quiet:
        print("compiling the Numba kernels (first run only: about 10 s on a 2-core machine, then seconds); "
              f"cached in {ta.kernels.runtime.cache_dir()}", flush=True)
    start = time.perf_counter()
    calls = ta.precompile(rehearse, args, task, config)
    if not args.quiet:
        print(f"compiled the kernels of {calls} distinct calls in {time.perf_counter() - start:.1f} s")


def rehearse(args: argparse.Namespace, task: Task, config: dict) -> None:
    """What a run calls, once: one training step, the held-out probes and the evaluation, on a fresh model."""
    model = build_model(config)
    fit(model, task, argparse.Namespace(**{**vars(args), "steps": 1, "quiet": True}))
    evaluate(model, task, args.eval_size)


def fit(model, task: Task, args: argparse.Namespace) -> tuple[dict, float]:
    """Adam on the cross-entropy of every position. Returns the per-step history and the seconds that steps
    2..N took (step 1 compiles or loads the kernels).

    History: `loss`, `accuracy` (on the step's batch), `grad_norm` (name -> per-step norm of dL/dW for
    each projection of each attention layer, e.g. "L0.W_q"), `entropy` ("L0.h1" -> per-step mean
    attention entropy of that head, in nats: log(T) is uniform, 0 is one key only), `held_out`
    ({"step": [...], "loss": [...]}: the loss on a fixed batch of held-out sequences, at every log
    step), `snapshots` (step -> every head's map (L*H, T, T) on the first of those sequences, from
    step 0, before training, to the last).
    """
    opt = optim.Adam(model.parameters(), lr=args.lr)
    projections = {f"L{l}.{name}": p for l, layer in enumerate(model.attention_layers())
                   for name, p in layer.named_parameters()}
    history = dict(loss=[], accuracy=[], grad_norm={name: [] for name in projections}, entropy={},
                   held_out=dict(step=[], loss=[]), snapshots={})
    log_every = max(1, args.steps // 10)
    probe = task.batch(min(args.eval_size, 256), held_out=True)     # [n, T], [n, T], never trained on
    snapshots = snapshot_steps(args.steps)
    history["snapshots"][0] = probe_model(model, probe)[1]
    history["probe_tokens"] = probe[0][0]
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
        if step % log_every == 0 or step == args.steps or step in snapshots:
            held_out_loss, maps = probe_model(model, probe)
            if step % log_every == 0 or step == args.steps:
                history["held_out"]["step"].append(step)
                history["held_out"]["loss"].append(held_out_loss)
            if step in snapshots:
                history["snapshots"][step] = maps
        if not args.quiet and (step % log_every == 0 or step == args.steps):
            bar.write(log_line(step, args.steps, history))
    return history, time.perf_counter() - start


def snapshot_steps(steps: int) -> set[int]:
    """The steps whose attention maps `attention_steps.png` shows: roughly doubling, up to the last."""
    return {max(1, round(steps * f)) for f in (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)} | {steps}


def probe_model(model, probe: tuple[np.ndarray, np.ndarray]) -> tuple[float, np.ndarray]:
    """The loss on the held-out batch `probe`, and every head's map on its first sequence (L*H, T, T)."""
    x, y = probe
    model.eval()
    with ta.no_grad():
        loss = F.cross_entropy(model(x), y).item()           # [n, T, V] vs [n, T]
        maps = np.concatenate([w[0] for w in attention_maps(model)])   # per layer [n, H, T, T] -> [L*H, T, T]
    model.train()
    return float(loss), maps


def mean_entropy(weights: np.ndarray) -> list[float]:
    """Mean over batch and queries of each head's attention entropy -sum_j p_j log p_j; weights (B, H, T, T)."""
    p = np.clip(weights, 1e-12, 1.0)
    return [float(v) for v in (-(weights * np.log(p)).sum(-1)).mean(axis=(0, 2))]


def log_line(step: int, steps: int, history: dict) -> str:
    """One line of the training log: loss, held-out loss, batch accuracy, head entropies, gradient norms."""
    entropy = " ".join(f"{v[-1]:.2f}" for v in history["entropy"].values())
    norms = " ".join(f"{name} {v[-1]:.1e}" for name, v in history["grad_norm"].items())
    return (f"step {step:>{len(str(steps))}}/{steps}  loss {history['loss'][-1]:.6f}  "
            f"held-out {history['held_out']['loss'][-1]:.6f}  "
            f"acc {history['accuracy'][-1]:.3f}  entropy {entropy}  |grad| {norms}")


def evaluate(model, task: Task, n: int) -> tuple[float, float, tuple[np.ndarray, np.ndarray]]:
    """Token accuracy and loss on n fresh held-out sequences, and one of them (inputs, targets) for the plots."""
    model.eval()
    with ta.no_grad():
        x, y = task.batch(n, held_out=True)                          # [n, T], [n, T]
        logits = model(x)                                            # [n, T, V]
        predicted = logits.data.argmax(-1)                           # [n, T]
        loss = F.cross_entropy(logits, y).item()
    model.train()
    return float((predicted == y).mean()), float(loss), (x[:1], y[:1])


def write_run(out: Path, model, task: Task, config: dict, history: dict, sample) -> list[str]:
    """Checkpoint, loss curves, one attention heatmap per layer and the maps as training went into
    `out`; returns the file names."""
    save_checkpoint(out / "checkpoint.npz", model, config)
    held_out = (history["held_out"]["step"], history["held_out"]["loss"])
    viz.plot_losses(history["loss"], history["accuracy"], history["grad_norm"], history["entropy"],
                    path=out / "losses.png", title=f"{task.name}: training", held_out=held_out)
    files = ["checkpoint.npz", "losses.png"]
    x, _ = sample
    with ta.no_grad():
        model(x)
    tokens = [LABELS.get(t, t) for t in task.decode(x[0])]
    maps = attention_maps(model)                                     # per layer [1, H, T, T]
    for l, weights in enumerate(maps):
        name = f"attention_layer{l}.png"
        titles = [f"layer {l} · head {h}" for h in range(weights.shape[1])] if len(maps) > 1 else None
        viz.plot_attention(weights[0], tokens, title=f"{task.name}: layer {l} on a held-out sequence",
                           panel_titles=titles, path=out / name)
        files.append(name)
    heads = [f"layer {l} · head {h}" for l, w in enumerate(maps) for h in range(w.shape[1])]
    probe_tokens = [LABELS.get(t, t) for t in task.decode(history["probe_tokens"])]
    viz.plot_attention_steps(history["snapshots"], probe_tokens, heads, path=out / "attention_steps.png",
                             title=f"{task.name}: attention on one held-out sequence as training goes")
    files.append("attention_steps.png")
    return files


def save_checkpoint(path: Path, model, config: dict) -> None:
    """`ta.save` of the state dict, with the config that `load_checkpoint` rebuilds the model from (as the
    bytes of its JSON text: checkpoints hold numbers and arrays only)."""
    config_bytes = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    ta.save({"state": model.state_dict(), "config_json": config_bytes}, path)


def load_checkpoint(path: str | Path):
    """(model, task, config) from a checkpoint that `tinygrad-attn train` wrote; anything else (a folder, a
    text file, a file `ta.save` wrote without a config) raises one ValueError naming the path."""
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {path / 'checkpoint.npz'}?" if (path / "checkpoint.npz").is_file() else ""
        raise ValueError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a checkpoint (`tinygrad-attn train` writes .npz archives)")
    saved = ta.load(path)                                      # a ValueError naming the file if not ours
    if not {"config_json", "state"} <= saved.keys():
        raise ValueError(f"{path} was saved by ta.save but not by `tinygrad-attn train`: it holds no model "
                         "config (config_json); give the checkpoint.npz of a train run")
    try:
        config = json.loads(saved["config_json"].tobytes().decode("utf-8"))
        model = build_model(config)
        model.load_state_dict(saved["state"])
        task = get_task(config["task"], config["seq_len"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: its config and weights do not make a model ({type(e).__name__}: {e})") from e
    model.eval()
    return model, task, config


def build_sample_parser() -> Parser:
    p = Parser(prog="tinygrad-attn sample", description="Run a trained checkpoint on an input; print the "
               "prediction and its attention map.")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.npz written by `tinygrad-attn train`")
    p.add_argument("--input", default=None, help='digits for the sequence tasks, e.g. "3 1 4 1 5 9 2 6" '
                   "(exactly the trained length), text for lm (default: a random held-out sequence)")
    p.add_argument("--seed", type=integer(0), default=0, help="seed for the random input")
    p.add_argument("--chars", type=integer(0), default=None,
                   help="how many characters to generate (default: 60; lm checkpoints only)")
    p.add_argument("--png", type=Path, default=None, help="also save the attention maps as this PNG")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba", help="kernels to run on")
    return p


def sample_main(argv: list[str]) -> int:
    """`tinygrad-attn sample`: the model's prediction for one input, and a text heatmap of its attention."""
    parser = build_sample_parser()
    args = parser.parse_args(argv)
    check_output_file(parser, args.png, "--png")
    with ta.backend(args.backend):
        try:
            model, task, config = load_checkpoint(args.checkpoint)
        except ValueError as e:
            parser.error(f"argument --checkpoint: {e}")
        if args.chars is not None and isinstance(task, SequenceTask):
            parser.error(f"argument --chars: only lm checkpoints generate text; this one is task {task.name}")
        args.chars = 60 if args.chars is None else args.chars
        ta.manual_seed(args.seed)
        try:
            x = task.encode(args.input) if args.input is not None else task.batch(1, held_out=True)[0][0]   # [T]
        except ValueError as e:
            parser.error(f"argument --input: {e}")
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
        viz.plot_attention(np.stack([w[0] for w in maps]), labels, path=args.png,   # [L, H, T, T]
                           title=f"{config['task']}: attention of every layer and head")
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
