"""Checks that a matplotlib Figure is readable: every text inside the canvas, titles and labels apart.

Shared by the tests that render figures (test_viz, test_train, test_walkthrough), imported as a plain
module from the tests folder.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox


def texts(fig: Figure) -> list[tuple[Text, Bbox]]:
    """(artist, window extent) of every visible, non-empty text of `fig`, after a full draw."""
    if not isinstance(fig.canvas, FigureCanvasAgg):          # a Figure made without pyplot has no renderer yet
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()                                            # texts that exist but are not drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
            if not (ax.axison and axis.get_visible()):
                hidden |= {id(t) for t in [axis.label, axis.offsetText]}
            lo, hi = sorted(axis.get_view_interval())
            hidden |= {id(label) for tick in ticks for label in (tick.label1, tick.label2)
                       if not (ax.axison and axis.get_visible())
                       or not lo - 1e-9 * abs(lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi)}   # relative: log axes
    return [(t, t.get_window_extent(renderer)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def assert_readable(fig: Figure) -> None:
    """Every text lies inside the canvas; the suptitle overlaps no panel title, nor one panel title
    another; no two tick labels of one axis overlap."""
    found = texts(fig)
    canvas = fig.bbox
    outside = [t.get_text() for t, e in found
               if e.x0 < canvas.x0 - 0.5 or e.y0 < canvas.y0 - 0.5 or e.x1 > canvas.x1 + 0.5 or e.y1 > canvas.y1 + 0.5]
    assert not outside, f"text outside the canvas: {outside}"
    renderer = fig.canvas.get_renderer()
    if fig._suptitle is not None and fig._suptitle.get_text():
        top = fig._suptitle.get_window_extent(renderer)
        for ax in fig.axes:
            title = ax.title
            if title.get_text():
                assert not top.overlaps(title.get_window_extent(renderer)), (
                    f"the suptitle overlaps the panel title {title.get_text()!r}")
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.title.get_text()]
    for i, a in enumerate(titles):
        assert not any(a.overlaps(b) for b in titles[i + 1:]), "two panel titles overlap"
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = {id(t) for t, _ in found}
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if id(t) in drawn]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), "two tick labels overlap"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"


PLOTS = ("plot_attention", "plot_attention_steps", "plot_losses", "plot_self_bias", "plot_graph")


def record_figures(monkeypatch) -> list[tuple[object, Figure]]:
    """Wrap viz's plotting functions so that every figure a command makes is kept, with the path it
    was saved at: [(path, figure)], in order."""
    from tinygrad_attn import viz

    made = []

    def recording(plot):
        def wrapper(*args, **kwargs):
            fig = plot(*args, **kwargs)
            made.append((kwargs.get("path"), fig))
            return fig
        return wrapper

    for name in PLOTS:
        monkeypatch.setattr(viz, name, recording(getattr(viz, name)))
    return made
