"""Charts drawn on the server as SVG: line charts with axes and labels, and the lineage graph.

Strokes and text use ``currentColor`` and the series colours come from CSS classes (``s0`` .. ``s5`` in
``static/ui.css``, which sets them for light and dark themes), so a chart follows the page's theme. Every text
that comes from the registry passes through :func:`markupsafe.escape`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

from t2reg.cli.ui.views import LineageNode, LineagePage, Panel, RankProfile, Series

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 60, 150, 16, 44  # margins: the legend sits in the right one
TICKS = 5
COLOURS = 6  # series classes s0 .. s5


@dataclass(frozen=True)
class Scale:
    """A linear map from data values to pixels."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def line_chart(panel: Panel, x_label: str, marks: bool = True) -> Markup:
    """One panel's series as lines (with a mark per point, unless ``marks`` is off for long series), ticked axes,
    axis labels and a legend."""
    points = [p for s in panel.series for p in s.points]
    if not points:
        return Markup('<p class="empty">no steps recorded yet</p>')
    x = Scale(*_padded([p[0] for p in points]), LEFT, WIDTH - RIGHT)
    y = Scale(*_padded([p[1] for p in points]), HEIGHT - BOTTOM, TOP)
    parts = [_axes(x, y, x_label, panel.y_label)]
    for index, series in enumerate(panel.series):
        colour = f"s{index % COLOURS}"
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in series.points)
        parts.append(f'<polyline class="line {colour}" points="{path}"/>')
        parts += [] if not marks else [f'<circle class="point {colour}" cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5">'
                  f'<title>{escape(series.label)}: {px:g}, {py:.4g}</title></circle>' for px, py in series.points]
        legend_y = TOP + 14 * index + 8
        parts.append(f'<line class="line {colour}" x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 24}" '
                     f'y1="{legend_y}" y2="{legend_y}"/>'
                     f'<text x="{WIDTH - RIGHT + 28}" y="{legend_y + 4}">{escape(_clipped(series.label))}</text>')
    return _svg(WIDTH, HEIGHT, panel.title, "".join(parts))


def rank_profile(profile: RankProfile) -> Markup:
    """z along one matrix's singular values, the rank drawn on [0, 1] so matrices of any width share an axis."""
    last = max(1, len(profile.z) - 1)
    layer = profile.name.split(".")
    label = " ".join(layer[2:4]) if len(layer) > 4 else profile.name
    points = tuple((i / last, z) for i, z in enumerate(profile.z))
    return line_chart(Panel(profile.name, "z", (Series(label, points),)), "singular-value rank (0 = largest), relative",
                      marks=False)


def _padded(values: Sequence[float]) -> tuple[float, float]:
    """The data's range, widened a little (and around a single value) so no point sits on an axis."""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return low - 1.0, high + 1.0
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _axes(x: Scale, y: Scale, x_label: str, y_label: str) -> str:
    parts = [f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}"/>']
    for value in _ticks(x.low, x.high):
        parts.append(f'<line class="tick" x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{HEIGHT - BOTTOM}" '
                     f'y2="{HEIGHT - BOTTOM + 4}"/><text class="xtick" x="{x(value):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{value:g}</text>')
    for value in _ticks(y.low, y.high):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
                     f'<text class="ytick" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(f'<text class="label" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text class="label" transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    """About :data:`TICKS` round values (1, 2 or 5 times a power of ten apart) inside [low, high]."""
    raw = (high - low) / TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step) + 1)]


def _clipped(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _svg(width: int, height: int, title: str, body: str) -> Markup:
    return Markup(f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>')


# -- lineage -----------------------------------------------------------------------------------------------------

NODE_W, NODE_H = 220, 42
COLUMN, ROW = 400, 64  # spacing between generations (left to right, room for edge labels) and between siblings


def lineage_graph(page: LineagePage, link: Callable[[LineageNode], str]) -> Markup:
    """Generations as columns (ancestors left, descendants right), siblings stacked in each (an ordered transfer
    and its shuffled control side by side); every node a link to its page, edges labelled with their relation and
    a mixture component's alpha."""
    depths = sorted({n.depth for n in page.nodes})
    columns = {d: [n for n in page.nodes if n.depth == d] for d in depths}
    place: dict[str, tuple[float, float]] = {}
    for c, depth in enumerate(depths):
        for r, node in enumerate(columns[depth]):
            place[node.key] = (20 + c * COLUMN, 20 + r * ROW)
    width = 40 + (len(depths) - 1) * COLUMN + NODE_W
    height = 40 + max(len(v) for v in columns.values()) * ROW
    parts = [_edge(place[e.parent], place[e.child], _edge_label(e.relation, e.weight)) for e in page.edges]
    parts += [_node(node, place[node.key], link(node), node.key == page.root) for node in page.nodes]
    return _svg(width, height, f"lineage of {page.root}", "".join(parts))


def _edge_label(relation, weight: float | None) -> str:
    text = "made by" if relation is None else relation.value.replace("_", " ")
    return text if weight is None else f"{text} α={weight:.3g}"


def _edge(parent: tuple[float, float], child: tuple[float, float], label: str) -> str:
    x1, y1 = parent[0] + NODE_W, parent[1] + NODE_H / 2
    x2, y2 = child[0], child[1] + NODE_H / 2
    return (f'<g class="edge"><line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
            # labelled near the parent's end: edges that meet at one child stay apart there
            f'<text x="{x1 + 8:.1f}" y="{y1 + (y2 - y1) * 8 / max(1.0, x2 - x1) - 4:.1f}">{escape(label)}</text></g>')


def _node(node: LineageNode, at: tuple[float, float], href: str, root: bool) -> str:
    x, y = at
    kind = "root" if root else node.kind.value
    return (f'<a class="node {kind}" href="{escape(href)}" data-key="{escape(node.key)}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 17}">{escape(_clipped(node.label, 30))}</text>'
            f'<text class="detail" x="{x + 8}" y="{y + 33}">{escape(_clipped(node.detail, 34))}</text></a>')

