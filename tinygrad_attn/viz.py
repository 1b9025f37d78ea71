"""Pictures of what attention does: heatmaps, training curves, and the computation graph.

The plots use matplotlib's object API (`matplotlib.figure.Figure`, no pyplot), so they never open a
window or need a display: `fig.savefig` renders with the Agg canvas. `plot_graph` draws the graph
behind a tensor with matplotlib alone; `draw_graph` gives the same graph as Graphviz DOT text for
people who have `dot`. `text_heatmap` draws an attention map in a terminal.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

import tinygrad_attn as ta

SHADES = " .:-=+*#%@"                                         # light to dark, for text heatmaps
MAX_TICKS = 16                                                # more positions than this: label every k-th one
DPI = 110


def _margins(fig: Figure, rows: int, left: float, right: float, bottom: float, top: float, gap: float) -> None:
    """Fixed margins, in inches, around a column of `rows` panels, `gap` between panels: for figures whose
    labels have known sizes. A layout engine measures every text twice before the figure is drawn (half of
    the time `tinygrad-attn train` spent writing its loss curves)."""
    width, height = fig.get_size_inches()
    panel = (height - bottom - top - gap * (rows - 1)) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        hspace=gap / panel)


def _log_decades(ax: Axes, *series) -> None:
    """A log y axis spanning whole decades of the positive values in `series`, labelled 10^k only: tick
    labels of a known width (see `_margins`), at least two of them however narrow the range."""
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in series])
    values = values[np.isfinite(values) & (values > 0)]
    ax.set_yscale("log")
    if values.size:
        ax.set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max()) + 1e-9))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig


# ---------------------------------------------------------------------------- attention heatmaps


def _ticks(T: int, tokens: Sequence[str] | None) -> tuple[list[int], list[str], bool]:
    """(positions, labels, rotated) of the ticks on a T x T map. Up to MAX_TICKS positions, every one is
    labelled with its token; beyond that every k-th one, with its position and token ("12 a"), turned
    upright on the x axis, so the labels never run into each other."""
    step = max(1, math.ceil(T / MAX_TICKS))
    where = list(range(0, T, step))
    if tokens is None:
        labels = [str(i) for i in where]
    elif step == 1:
        labels = [str(tokens[i]) for i in where]
    else:
        labels = [f"{i} {tokens[i]}" for i in where]
    return where, labels, step > 1


def _label_axes(a: Axes, T: int, tokens: Sequence[str] | None, left: bool, bottom: bool) -> None:
    """Ticks (`_ticks`) and axis names on a T x T map; inner panels of a grid get none (the grid shares them)."""
    where, labels, rotated = _ticks(T, tokens)
    if bottom:
        a.set_xticks(where, labels, rotation=90 if rotated else 0, fontsize="small")
        a.set_xlabel("key (attended to)")
    else:
        a.set_xticks([])
    if left:
        a.set_yticks(where, labels, fontsize="small")
        a.set_ylabel("query (attending)")
    else:
        a.set_yticks([])


# Fixed margins for the heatmap grids, in inches, from the labels' lengths (a layout engine measuring every text
# twice took a third of the time `tinygrad-attn train` spent on its attention figures).
CHAR_IN = 0.08               # a character of a "small" tick label (DejaVu Sans 8.3 pt; wide letters included)
LINE_IN = 0.22               # a line of an axis label or panel title
COLORBAR_IN = 1.0            # the colour bar with its tick labels and name
PAD_IN = 0.12                # space around the figure's edges and between panels


def _grid(w: np.ndarray, tokens: Sequence[str] | None, titles: Sequence[Sequence[str | None]],
          title: str | None, marks: np.ndarray | None, row_labels: Sequence[str] | None = None) -> Figure:
    """Heatmaps w (R, C, T, T) on an R x C grid sharing one colour bar; `titles[r][c]` above each panel,
    `marks` (T, T) bool outlines those cells in every panel, `row_labels` prefix each row's y label."""
    R, C, T = w.shape[0], w.shape[1], w.shape[2]
    side = 2.0 + 0.05 * T                                     # inches per panel
    _, labels, rotated = _ticks(T, tokens)
    longest = CHAR_IN * max(len(label) for label in labels)
    titled = [any(row) for row in titles]
    left = PAD_IN + LINE_IN * (2 if row_labels is not None else 1) + longest + PAD_IN
    bottom = PAD_IN + LINE_IN + (longest if rotated else LINE_IN) + PAD_IN
    top = PAD_IN + (LINE_IN if titled[0] else 0) + (1.5 * LINE_IN if title else 0)
    gap_x, gap_y = 2 * PAD_IN, PAD_IN + (LINE_IN if any(titled[1:]) else 0)
    panels_width, panels_height = C * side + (C - 1) * gap_x, R * side + (R - 1) * gap_y
    width, height = left + panels_width + PAD_IN + COLORBAR_IN, bottom + panels_height + top
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=(left + panels_width) / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap_x / side, hspace=gap_y / side)
    axes = fig.subplots(R, C, squeeze=False)
    for r in range(R):
        for c in range(C):
            a = axes[r, c]
            image = a.imshow(w[r, c], vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")   # panels are square
            _label_axes(a, T, tokens, left=c == 0, bottom=r == R - 1)
            if row_labels is not None and c == 0:
                a.set_ylabel(f"{row_labels[r]}\nquery (attending)")
            if titles[r][c]:
                a.set_title(titles[r][c], fontsize="medium")
            if marks is not None:
                for i, j in zip(*np.nonzero(marks)):
                    a.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    bar_height = min(panels_height, 4.0)                      # centred beside the panels
    bar = fig.add_axes(((width - COLORBAR_IN) / width, (bottom + (panels_height - bar_height) / 2) / height,
                        0.15 / width, bar_height / height))
    fig.colorbar(image, cax=bar, label="weight")
    if title:
        fig.suptitle(title, y=1 - PAD_IN / height, va="top")
    return fig


def plot_attention(weights, tokens: Sequence[str] | None = None, ax: Axes | None = None, title: str | None = None,
                   path: str | Path | None = None, *, panel_titles: Sequence[str] | None = None,
                   marks=None) -> Figure:
    """Heatmap of attention weights: rows are queries, columns are keys.

    `weights` is (T, T); (H, T, T) for H heads side by side, titled "head h"; or (L, H, T, T) for L
    layers of H heads, one row per layer, titled "layer l · head h". With more than one panel, `ax`
    must be None. `tokens` labels the rows and columns (every k-th one, with its position, when T is
    large). `panel_titles` replaces the panels' titles, in order; `marks` (a (T, T) bool array, or a
    list of (row, column) cells) outlines cells in red, e.g. where the right answer is.
    Saves a PNG (or any format matplotlib knows) at `path` if given.
    """
    w = np.asarray(weights, dtype=np.float64)
    layered = w.ndim == 4
    if w.ndim == 2:
        w = w[None]                                           # [1, T, T]
    if w.ndim == 3:
        w = w[None]                                           # [1, H, T, T]
    if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"plot_attention: expected weights of shape (T, T), (H, T, T) or (L, H, T, T), "
                         f"got {np.shape(weights)}")
    L, H, T = w.shape[0], w.shape[1], w.shape[2]
    if tokens is not None and len(tokens) != T:
        raise ValueError(f"plot_attention: {len(tokens)} tokens for a {T}x{T} attention map")
    if ax is not None and L * H > 1:
        raise ValueError(f"plot_attention: one ax cannot hold {L * H} panels; leave ax=None")
    if panel_titles is not None:
        if len(panel_titles) != L * H:
            raise ValueError(f"plot_attention: {len(panel_titles)} panel titles for {L * H} panels")
        titles = [list(panel_titles[l * H:(l + 1) * H]) for l in range(L)]
    elif layered and L * H > 1:
        titles = [[f"layer {l} · head {h}" for h in range(H)] for l in range(L)]
    else:
        titles = [[f"head {h}" if H > 1 else None for h in range(H)]]
    cells = None
    if marks is not None:
        cells = np.asarray(marks)
        if cells.dtype != np.bool_:                           # a list of (row, column) pairs
            listed, cells = cells.reshape(-1, 2), np.zeros((T, T), dtype=bool)
            cells[listed[:, 0], listed[:, 1]] = True
        if cells.shape != (T, T):
            raise ValueError(f"plot_attention: marks of shape {cells.shape} for a {T}x{T} attention map")
    if ax is None:
        return _save(_grid(w, tokens, titles, title, cells), path)
    fig = ax.figure
    image = ax.imshow(w[0, 0], vmin=0.0, vmax=1.0, cmap="viridis")
    _label_axes(ax, T, tokens, left=True, bottom=True)
    if cells is not None:
        for i, j in zip(*np.nonzero(cells)):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_attention_steps(snapshots: Mapping[int, np.ndarray], tokens: Sequence[str] | None = None,
                         panel_names: Sequence[str] | None = None, title: str | None = None,
                         path: str | Path | None = None) -> Figure:
    """Attention maps as training goes: `snapshots` maps a step to that step's maps (P, T, T), one per
    head (e.g. layer 0 head 0, layer 0 head 1, ...). One column per step, one row per head, named by
    `panel_names`, so a map can be followed from blurry to sharp. Saves to `path` if given."""
    steps = sorted(snapshots)
    if not steps:
        raise ValueError("plot_attention_steps: no snapshots to plot")
    w = np.stack([np.asarray(snapshots[s], dtype=np.float64).reshape(-1, *np.shape(snapshots[s])[-2:])
                  for s in steps], axis=1)                    # [P, steps, T, T]
    names = list(panel_names) if panel_names is not None else [f"head {p}" for p in range(w.shape[0])]
    if len(names) != w.shape[0]:
        raise ValueError(f"plot_attention_steps: {len(names)} panel names for {w.shape[0]} maps per step")
    titles = [[f"step {s}" if r == 0 else None for s in steps] for r in range(w.shape[0])]
    return _save(_grid(w, tokens, titles, title, None, row_labels=names), path)


# ---------------------------------------------------------------------------- curves


def plot_losses(losses: Sequence[float], accuracies: Sequence[float] | None = None,
                grad_norms: Mapping[str, Sequence[float]] | None = None,
                entropies: Mapping[str, Sequence[float]] | None = None,
                path: str | Path | None = None, title: str | None = None, *,
                held_out: tuple[Sequence[int], Sequence[float]] | None = None) -> Figure:
    """Training curves, one panel each: loss (and accuracy), gradient norms of the projections,
    mean attention entropy per head. Each series has one value per step; `held_out` is (steps,
    losses) on sequences never trained on, drawn beside the batch loss. One legend covers the loss
    panel's two y axes. Saves to `path` if given."""
    panels = [p for p in (grad_norms, entropies) if p]
    fig = Figure(figsize=(6.4, 2.8 * (1 + len(panels))))
    axes = fig.subplots(1 + len(panels), 1, squeeze=False)[:, 0]
    _margins(fig, len(axes), left=0.85, right=0.7 if accuracies is not None else 0.2, bottom=0.5,
             top=0.55 if title else 0.2, gap=0.45)        # room for tick labels and one-line axis labels
    steps = np.arange(1, len(losses) + 1)
    lines = axes[0].plot(steps, losses, color="tab:blue", linewidth=1, label="batch loss")
    if held_out is not None:
        lines += axes[0].plot(held_out[0], held_out[1], color="tab:green", marker="o", markersize=3,
                              label="held-out loss")
    _log_decades(axes[0], losses, *([held_out[1]] if held_out is not None else []))
    axes[0].set_ylabel("cross-entropy (log)")
    if accuracies is not None:
        right = axes[0].twinx()
        lines += right.plot(steps, accuracies, color="tab:orange", alpha=0.7, linewidth=1, label="batch accuracy")
        right.set_ylim(0.0, 1.02)
        right.set_ylabel("token accuracy")
    axes[0].legend(lines, [line.get_label() for line in lines], fontsize="small", loc="center right")
    for ax, series, label in zip(axes[1:], panels, ["gradient norm", "attention entropy (nats)"]):
        for name, values in series.items():
            ax.plot(steps[: len(values)], values, label=name, linewidth=1)
        ax.set_ylabel(label)
        ax.legend(fontsize="x-small", ncol=2)
    if grad_norms:
        _log_decades(axes[1], *grad_norms.values())
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_self_bias(dims: Sequence[int], self_wins: Sequence[float], self_weight: Sequence[float] | None = None,
                   T: int = 3, path: str | Path | None = None, title: str | None = None) -> Figure:
    """Naive attention's self-bias against the vector size d: the fraction of rows whose largest
    weight is on the token itself (and, if given, the mean weight on itself), with chance, 1/T."""
    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(dims, self_wins, marker="o", label="rows where self wins")
    if self_weight is not None:
        ax.plot(dims, self_weight, marker="s", label="mean weight on self")
    ax.axhline(1 / T, color="gray", linestyle="--", label=f"chance, 1/{T}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(dims), [str(d) for d in dims])
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("d, the size of each token vector")
    ax.set_ylabel("fraction")
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(title or f"naive attention, {T} random tokens: self wins more often as d grows",
                 fontsize="medium")
    return _save(fig, path)


# ---------------------------------------------------------------------------- terminal


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


# ---------------------------------------------------------------------------- the graph


def _names(params) -> dict[int, str]:
    """id(tensor) -> name, from a dict name -> Tensor, (name, Tensor) pairs such as
    `model.named_parameters()`, or a Module: its parameters' dotted names, and the Q K V S P H that
    any of its attention layers kept with `keep_intermediates`."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):                   # a Module
        names = {id(t): name for name, t in params.named_parameters()}
        for module in params.modules():
            for name, t in getattr(module, "intermediates", {}).items():
                names.setdefault(id(t), name)
        return names
    pairs = params.items() if isinstance(params, Mapping) else params
    return {id(t): name for name, t in pairs}


def _graph(tensor: ta.Tensor, op: str) -> tuple[list[ta.Tensor], list[tuple[ta.Tensor, ta.Function]]]:
    """The tensors and the (output, Function) pairs of the graph behind `tensor`, found from its `_ctx`."""
    tensors, ops, seen, stack = [], [], set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        tensors.append(t)
        ctx = t._ctx
        if ctx is None:
            continue
        if not isinstance(ctx, ta.Function):
            raise RuntimeError(f"{op}: this graph was freed by backward(); call {op} before "
                               "backward, or use backward(retain_graph=True)")
        ops.append((t, ctx))
        stack.extend(reversed(ctx.parents))                   # first input first
    return tensors, ops


def draw_graph(tensor: ta.Tensor, params: Mapping[str, ta.Tensor] | None = None) -> str:
    """Graphviz DOT text of the graph that produced `tensor`: a box per tensor (its shape, and the
    norm of its .grad when it has one) and an ellipse per op (its Function class name).

    Call it before `backward()`, or after `backward(retain_graph=True)`: a plain backward frees the
    graph as it goes, and then there is nothing left to draw. `params` (e.g.
    `dict(model.named_parameters())`, or the Module itself) names the tensors it contains.
    """
    names = _names(params)
    tensors, ops = _graph(tensor, "draw_graph")
    ids = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    lines = ["digraph G {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    for t in tensors:
        label = f"{names[id(t)]}\\n" if id(t) in names else ""
        label += str(tuple(t.shape))
        if t.grad is not None:
            label += f"\\n|grad| = {np.linalg.norm(t.grad):.3g}"
        style = ', style=filled, fillcolor="#dde8f8"' if t._ctx is None and t.requires_grad else ""
        lines.append(f'  {ids[id(t)]} [shape=box, label="{label}"{style}];')
    for n, (out, ctx) in enumerate(ops):
        lines.append(f'  op{n} [shape=ellipse, label="{type(ctx).__name__}"];')
        lines.append(f"  op{n} -> {ids[id(out)]};")
        lines.extend(f"  {ids[id(p)]} -> op{n};" for p in ctx.parents)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _summary(t: ta.Tensor) -> str:
    """A tensor's value in one short line: the number itself for one element, else mean and spread."""
    a = t.data
    if a.dtype == np.bool_:
        return f"{int(a.sum())} of {a.size} True"
    if a.size == 1:
        return f"= {float(a.reshape(-1)[0]):.4g}"
    if a.size == 0:
        return "empty"
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return "no finite values"
    text = f"mean {finite.mean():.3g}, std {finite.std():.3g}"
    return text + (f", {a.size - finite.size} inf/nan" if finite.size < a.size else "")


def _layers(tensors: list[ta.Tensor], ops: list[tuple[ta.Tensor, ta.Function]]) -> dict[int, int]:
    """Row of every node (tensors by id(t), ops by id(ctx)) by topological depth: an op one row below
    its deepest input, its output one row below it; a leaf right above the first op that uses it."""
    parents = {id(out): ctx.parents for out, ctx in ops}
    ctx_of = {id(out): ctx for out, ctx in ops}
    depth: dict[int, int] = {}
    for t in reversed(tensors):                               # make sure every input is placed first
        stack = [(t, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in depth:
                continue
            inputs = parents.get(id(node), ())
            if not ready and any(id(p) not in depth for p in inputs):
                stack.append((node, True))
                stack.extend((p, False) for p in inputs if id(p) not in depth)
                continue
            depth[id(node)] = 0 if not inputs else 2 + max(depth[id(p)] for p in inputs)
    rows = dict(depth)
    for out, ctx in ops:
        rows[id(ctx)] = depth[id(out)] - 1
    first_use: dict[int, int] = {}
    for _, ctx in ops:
        for p in ctx.parents:
            first_use[id(p)] = min(first_use.get(id(p), 10**9), rows[id(ctx)])
    for t in tensors:                                         # leaves sit right above their first use
        if id(t) not in ctx_of and id(t) in first_use:
            rows[id(t)] = first_use[id(t)] - 1
    return rows


def plot_graph(tensor: ta.Tensor, params=None, path: str | Path | None = None) -> Figure:
    """The graph behind `tensor`, drawn with matplotlib alone (no Graphviz), inputs at the top.

    A box per tensor: its name (from `params`: a dict name -> Tensor, `module.named_parameters()`, or
    a Module, whose parameter names and kept attention intermediates Q K V S P H it uses; unnamed
    leaves are "input" or "constant"), its shape and dtype, a summary of
    its values and, once backward has filled it, the norm of its .grad (use
    `backward(retain_graph=True)`, and `retain_grad()` on the intermediates you want to see). An
    ellipse per op, named by its Function class. Rows follow topological depth. Returns the Figure
    and saves a PNG at `path` if given.
    """
    names = _names(params)
    tensors, ops = _graph(tensor, "plot_graph")
    rows = _layers(tensors, ops)
    nodes: dict[int, list] = {}                               # row -> [key, ...] in drawing order
    label: dict[int, tuple[str, bool]] = {}                   # key -> (text, is_op)
    for t in tensors:
        name = names.get(id(t)) or ("output" if t is tensor else "" if t._ctx is not None
                                    else "constant" if t.size == 1 else "input" if not t.requires_grad else "leaf")
        lines = [name] if name else []
        lines.append(f"{tuple(t.shape)} {t.dtype}")
        lines.append(_summary(t))
        if t.grad is not None:
            lines.append(f"|grad| {np.linalg.norm(t.grad):.3g}")
        label[id(t)] = ("\n".join(lines), False)
        nodes.setdefault(rows[id(t)], []).append(id(t))
    for _, ctx in ops:
        label[id(ctx)] = (type(ctx).__name__, True)
        nodes.setdefault(rows[id(ctx)], []).append(id(ctx))
    edges = [(id(p), id(ctx)) for _, ctx in ops for p in ctx.parents] + [(id(ctx), id(out)) for out, ctx in ops]
    above = {}
    for a, b in edges:
        above.setdefault(b, []).append(a)
    x: dict[int, float] = {}
    order = sorted(nodes)
    for r in order:                                           # order each row by where its inputs are
        row = nodes[r]
        row.sort(key=lambda k: np.mean([x[a] for a in above.get(k, []) if a in x] or [len(x)]))
        for i, k in enumerate(row):
            x[k] = i - (len(row) - 1) / 2
    width = max(len(row) for row in nodes.values())
    height = len(order)
    fig = Figure(figsize=(max(4.0, 2.3 * width), 0.75 * height + 0.4), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(-width / 2, width / 2)
    ax.set_ylim(-height + 0.4, 0.6)
    ax.axis("off")
    y = {k: -order.index(r) for r in order for k in nodes[r]}
    artists = {}
    for k, (text, is_op) in label.items():
        style = (dict(boxstyle="ellipse,pad=0.3", facecolor="#fff3d6", edgecolor="#b07d1a") if is_op else
                 dict(boxstyle="round,pad=0.3", facecolor="#dde8f8", edgecolor="#4a6fa5"))
        artists[k] = ax.text(x[k], y[k], text, ha="center", va="center", fontsize=7, bbox=style, zorder=2)
    for a, b in edges:                                        # an edge that skips rows bows out, past the boxes
        bend = 0.0 if y[a] - y[b] <= 1 else 0.4
        ax.annotate("", xy=(0.5, 1.0), xycoords=artists[b], xytext=(0.5, 0.0), textcoords=artists[a],
                    arrowprops=dict(arrowstyle="-|>", color="#555555", linewidth=0.8, shrinkA=4, shrinkB=4,
                                    connectionstyle=f"arc3,rad={bend}"), zorder=1)
    ax.set_title(f"the graph behind a {tuple(tensor.shape)} tensor: {len(ops)} ops, {len(tensors)} tensors",
                 fontsize="medium")
    return _save(fig, path)


def render_graph(tensor: ta.Tensor, path: str | Path, params: Mapping[str, ta.Tensor] | None = None) -> Path:
    """Render `draw_graph(tensor)` to `path` (.svg, .png or .pdf, by its suffix) with Graphviz's `dot`.

    Raises RuntimeError if Graphviz is not installed; `draw_graph` still gives the DOT text then, and
    `plot_graph` draws the graph with matplotlib alone.
    """
    path = Path(path)
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render_graph: Graphviz is not installed (no `dot` program on PATH), so the graph "
                           "cannot be rendered; draw_graph(tensor) still returns the DOT text, which any "
                           "Graphviz viewer can show (install it with e.g. `apt-get install graphviz`), and "
                           "plot_graph(tensor) draws it with matplotlib")
    fmt = path.suffix.lstrip(".") or "svg"
    subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=draw_graph(tensor, params), text=True, check=True)
    return path
