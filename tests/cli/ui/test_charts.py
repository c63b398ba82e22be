"""The SVG charts: axes with round ticks and labels, every point drawn, registry text escaped."""

from __future__ import annotations

import re

from t2reg.cli.ui.charts import _ticks, line_chart, lineage_graph
from t2reg.cli.ui.views import LineageEdge, LineageNode, LineagePage, NodeKind, Panel, Series
from t2reg.enums import Relation


def test_ticks_are_round_and_inside_the_range():
    assert _ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert _ticks(-3.2, 41.0) == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_a_line_chart_has_axes_labels_a_legend_and_its_points():
    panel = Panel("search", "score", (Series("best <so far>", ((0, 0.1), (1, 0.3), (2, 0.5))),
                                      Series("mean", ((0, 0.0), (1, 0.2)))))
    svg = str(line_chart(panel, "iteration"))
    assert svg.count('<circle class="point s0"') == 3 and svg.count('<circle class="point s1"') == 2
    assert ">iteration</text>" in svg and ">score</text>" in svg and "best &lt;so far&gt;" in svg
    assert len(re.findall(r'class="ytick"', svg)) >= 3 and 'class="axis"' in svg


def test_a_chart_with_no_points_says_so():
    assert "no steps recorded yet" in line_chart(Panel("kl", "KL", ()), "iteration")


def test_the_lineage_graph_links_every_node_and_labels_alpha():
    page = LineagePage("mix:1", (LineageNode("a:1", NodeKind.VERSION, "a:1", "native", -1),
                                 LineageNode("7", NodeKind.JOB, "job 7", "published it", -1),
                                 LineageNode("mix:1", NodeKind.VERSION, "mix:1", "adapted", 0)),
                       (LineageEdge("a:1", "mix:1", Relation.MIXTURE_COMPONENT, 0.25), LineageEdge("7", "mix:1", None)))
    svg = str(lineage_graph(page, lambda node: f"/to/{node.key}"))
    assert re.findall(r'<a class="node (\w+)" href="([^"]+)"', svg) == [("version", "/to/a:1"), ("job", "/to/7"),
                                                                       ("root", "/to/mix:1")]
    assert "mixture component α=0.25" in svg and "made by" in svg
