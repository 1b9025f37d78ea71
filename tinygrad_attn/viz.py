"""Pictures of what attention does: heatmaps, training curves, and the computation graph as Graphviz DOT.

The plots use matplotlib's object API (`matplotlib.figure.Figure`, no pyplot), so they never open a
window or need a display: `fig.savefig` renders with the Agg canvas. `text_heatmap` draws an
attention map in a terminal instead.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import tinygrad_attn as ta

SHADES = " .:-=+*#%@"                                         # light to dark, for text heatmaps


def plot_attention(weights, tokens: Sequence[str] | None = None, ax: Axes | None = None, title: str | None = None,
                   path: str | Path | None = None) -> Figure:
    """Heatmap of attention weights: rows are queries, columns are keys.

    `weights` is (T, T), or (H, T, T) for H heads side by side (then `ax` must be None). `tokens`
    labels the rows and columns. Saves a PNG (or any format matplotlib knows) at `path` if given.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]                                               # [1, T, T]
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise ValueError(f"plot_attention: expected weights of shape (T, T) or (H, T, T), got {np.shape(weights)}")
    heads, T = w.shape[0], w.shape[1]
    if tokens is not None and len(tokens) != T:
        raise ValueError(f"plot_attention: {len(tokens)} tokens for a {T}x{T} attention map")
    if ax is not None and heads > 1:
        raise ValueError(f"plot_attention: one ax cannot hold {heads} heads; leave ax=None")
    if ax is None:
        fig = Figure(figsize=(3.2 * heads + 0.8, 3.4), layout="constrained")
        axes = fig.subplots(1, heads, squeeze=False)[0]
    else:
        fig, axes = ax.figure, [ax]
    for h, a in enumerate(axes):
        image = a.imshow(w[h], vmin=0.0, vmax=1.0, cmap="viridis")
        a.set_xlabel("key (attended to)")
        a.set_ylabel("query (attending)")
        labels = list(tokens) if tokens is not None else [str(i) for i in range(T)]
        a.set_xticks(range(T), labels)
        a.set_yticks(range(T), labels)
        if heads > 1:
            a.set_title(f"head {h}")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="weight")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_losses(losses: Sequence[float], accuracies: Sequence[float] | None = None,
                grad_norms: Mapping[str, Sequence[float]] | None = None,
                entropies: Mapping[str, Sequence[float]] | None = None,
                path: str | Path | None = None, title: str | None = None) -> Figure:
    """Training curves, one panel each: loss (and accuracy), gradient norms of the projections,
    mean attention entropy per head. Each series has one value per step. Saves to `path` if given."""
    panels = [p for p in (grad_norms, entropies) if p]
    fig = Figure(figsize=(6.0, 2.6 * (1 + len(panels))), layout="constrained")
    axes = fig.subplots(1 + len(panels), 1, squeeze=False)[:, 0]
    steps = np.arange(1, len(losses) + 1)
    axes[0].plot(steps, losses, color="tab:blue", label="loss")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("cross-entropy (log scale)")
    if accuracies is not None:
        right = axes[0].twinx()
        right.plot(steps, accuracies, color="tab:orange", alpha=0.7, label="accuracy")
        right.set_ylim(0.0, 1.02)
        right.set_ylabel("batch token accuracy")
    for ax, series, label in zip(axes[1:], panels, ["gradient norm", "attention entropy (nats)"]):
        for name, values in series.items():
            ax.plot(steps[: len(values)], values, label=name, linewidth=1)
        ax.set_ylabel(label)
        ax.legend(fontsize="x-small", ncol=2)
    if grad_norms:
        axes[1].set_yscale("log")
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def text_heatmap(weights, row_tokens: Sequence[str], col_tokens: Sequence[str] | None = None) -> str:
    """An attention map (T_q, T_k) as text: one shade character per weight, darker is larger,
    with each row's largest weight printed at its end."""
    w = np.asarray(weights, dtype=np.float64)
    col_tokens = row_tokens if col_tokens is None else col_tokens
    if w.shape != (len(row_tokens), len(col_tokens)):
        raise ValueError(f"text_heatmap: weights of shape {w.shape} for {len(row_tokens)}x{len(col_tokens)} tokens")
    width = max(len(t) for t in [*row_tokens, *col_tokens])
    cell = max(width, 2) + 1
    lines = [" " * (width + 3) + "".join(t.rjust(cell) for t in col_tokens) + "   max"]
    for token, row in zip(row_tokens, w):
        shades = (SHADES[min(int(v * len(SHADES)), len(SHADES) - 1)] * (cell - 1) for v in row)
        lines.append(f"{token.rjust(width)} | " + "".join(" " + s for s in shades) + f"  {row.max():.2f}")
    return "\n".join(lines)


def draw_graph(tensor: ta.Tensor, params: Mapping[str, ta.Tensor] | None = None) -> str:
    """Graphviz DOT text of the graph that produced `tensor`: a box per tensor (its shape, and the
    norm of its .grad when it has one) and an ellipse per op (its Function class name).

    Call it before `backward()`, or after `backward(retain_graph=True)`: a plain backward frees the
    graph as it goes, and then there is nothing left to draw. `params` (e.g.
    `dict(model.named_parameters())`) names the leaves it contains.
    """
    names = {id(t): name for name, t in (params or {}).items()}
    ids: dict[int, str] = {}
    lines = ["digraph G {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']

    def tensor_node(t: ta.Tensor) -> str:
        if id(t) not in ids:
            ids[id(t)] = f"t{len(ids)}"
            label = f"{names[id(t)]}\\n" if id(t) in names else ""
            label += str(tuple(t.shape))
            if t.grad is not None:
                label += f"\\n|grad| = {np.linalg.norm(t.grad):.3g}"
            style = ', style=filled, fillcolor="#dde8f8"' if t._ctx is None and t.requires_grad else ""
            lines.append(f'  {ids[id(t)]} [shape=box, label="{label}"{style}];')
        return ids[id(t)]

    n_ops, stack, seen = 0, [tensor], set()
    tensor_node(tensor)
    while stack:
        t = stack.pop()
        ctx = t._ctx
        if ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        if not isinstance(ctx, ta.Function):
            raise RuntimeError("draw_graph: this graph was freed by backward(); call draw_graph before "
                               "backward, or use backward(retain_graph=True)")
        op = f"op{n_ops}"
        n_ops += 1
        lines.append(f'  {op} [shape=ellipse, label="{type(ctx).__name__}"];')
        lines.append(f"  {op} -> {tensor_node(t)};")
        for parent in ctx.parents:
            lines.append(f"  {tensor_node(parent)} -> {op};")
            stack.append(parent)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_graph(tensor: ta.Tensor, path: str | Path, params: Mapping[str, ta.Tensor] | None = None) -> Path:
    """Render `draw_graph(tensor)` to `path` (.svg, .png or .pdf, by its suffix) with Graphviz's `dot`.

    Raises RuntimeError if Graphviz is not installed; `draw_graph` still gives the DOT text then.
    """
    path = Path(path)
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render_graph: Graphviz is not installed (no `dot` program on PATH), so the graph "
                           "cannot be rendered; draw_graph(tensor) still returns the DOT text, which any "
                           "Graphviz viewer can show (install it with e.g. `apt-get install graphviz`)")
    fmt = path.suffix.lstrip(".") or "svg"
    subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=draw_graph(tensor, params), text=True, check=True)
    return path
