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
    hidden = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) if not (ax.axison and axis.get_visible())
              for t in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True), axis.label, axis.offsetText]}
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
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), "two tick labels overlap"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
