"""The run's job graph laid out in columns for an SVG drawing (pure: no I/O).

A job's column is the length of the longest chain of `needs` before it; matrix cells of
one job share its column and the edges of its needs. The template `_dag.html` draws the
result; every label there is escaped text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipline.server.web.status import Badge

__all__ = ["Graph", "Node", "layout"]

NODE_W = 200
NODE_H = 46
GAP_X = 56
GAP_Y = 14
PAD = 8
MAX_LABEL = 24


@dataclass(frozen=True, slots=True)
class Node:
    """A job (or matrix cell) to draw: `job_id` is what other jobs' `needs` name."""

    key: str
    job_id: str
    label: str
    needs: tuple[str, ...]
    badge: Badge
    href: str | None = None
    live: str = ""
    duration: str = ""


@dataclass(frozen=True, slots=True)
class Placed:
    node: Node
    x: int
    y: int

    @property
    def short_label(self) -> str:
        label = self.node.label
        return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Placed, ...]
    edges: tuple[str, ...]  # SVG path data, from a need to the job that needs it
    width: int
    height: int


def _columns(nodes: Sequence[Node]) -> dict[str, int]:
    needs: dict[str, set[str]] = {}
    for node in nodes:
        needs.setdefault(node.job_id, set()).update(node.needs)
    known = set(needs)
    depth: dict[str, int] = {}

    def visit(job_id: str, trail: frozenset[str]) -> int:
        if job_id in depth:
            return depth[job_id]
        before = [n for n in needs[job_id] if n in known and n not in trail]
        found = 1 + max((visit(n, trail | {job_id}) for n in before), default=-1)
        depth[job_id] = found
        return found

    for job_id in needs:
        visit(job_id, frozenset())
    return depth


def layout(nodes: Sequence[Node]) -> Graph:
    """Place the nodes (input order within a column) and route the edges."""
    if not nodes:
        return Graph((), (), 0, 0)
    column = _columns(nodes)
    rows: dict[int, int] = {}
    placed: list[Placed] = []
    for node in nodes:
        col = column[node.job_id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        placed.append(Placed(node, PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)))
    by_job: dict[str, list[Placed]] = {}
    for p in placed:
        by_job.setdefault(p.node.job_id, []).append(p)
    edges: list[str] = []
    for target in placed:
        for need in dict.fromkeys(target.node.needs):
            for source in by_job.get(need, []):
                x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
                x2, y2 = target.x, target.y + NODE_H // 2
                mid = (x1 + x2) // 2
                edges.append(f"M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}")
    width = PAD * 2 + (max(column.values()) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values()) * (NODE_H + GAP_Y) - GAP_Y
    return Graph(tuple(placed), tuple(edges), width, height)
