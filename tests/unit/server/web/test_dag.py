"""The job graph's layout: columns by longest chain of needs, edges from each need."""

from __future__ import annotations

from shipline.server.web.dag import GAP_X, NODE_W, PAD, Node, layout
from shipline.server.web.status import PENDING


def node(key: str, needs: tuple[str, ...] = (), job_id: str | None = None) -> Node:
    return Node(key, job_id or key, key, needs, PENDING)


def test_columns_follow_the_longest_chain_of_needs() -> None:
    graph = layout(
        [
            node("lint"),
            node("test (3.11)", ("lint",), "test"),
            node("test (3.12)", ("lint",), "test"),
            node("build"),
            node("deploy", ("build", "test")),
        ]
    )
    column = {p.node.key: (p.x - PAD) // (NODE_W + GAP_X) for p in graph.nodes}
    assert column == {"lint": 0, "build": 0, "test (3.11)": 1, "test (3.12)": 1, "deploy": 2}
    # lint -> each test cell, build -> deploy, each test cell -> deploy
    assert len(graph.edges) == 5
    assert graph.width == PAD * 2 + 3 * NODE_W + 2 * GAP_X


def test_unknown_needs_and_cycles_do_not_break_the_drawing() -> None:
    graph = layout([node("a", ("b", "missing")), node("b", ("a",))])
    assert len(graph.nodes) == 2 and len(graph.edges) == 2
    assert layout([]).nodes == ()


def test_long_labels_are_shortened_for_the_box_only() -> None:
    graph = layout([node("x" * 60)])
    placed = graph.nodes[0]
    assert len(placed.short_label) == 24 and placed.short_label.endswith("…")
    assert placed.node.label == "x" * 60
