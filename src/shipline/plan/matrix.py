"""Matrix expansion exactly as GitHub does it.

1. The cartesian product of every key except `include`/`exclude`, first key slowest.
2. `exclude` entries remove each combination they match (an entry matches when all of its
   keys equal the combination's values; partial entries match many).
3. Each `include` entry is merged into every original combination for which it would not
   overwrite an original matrix value (values it added earlier may be overwritten); an entry
   that fits no combination becomes a combination of its own.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

Cell = dict[str, object]


class MatrixError(ValueError):
    """A matrix that cannot be expanded; the message is for the user."""


@dataclass(frozen=True, slots=True)
class Expansion:
    cells: tuple[tuple[tuple[str, object], ...], ...]

    def as_dicts(self) -> list[Cell]:
        return [dict(c) for c in self.cells]


def _equal(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def expand_matrix(matrix: object) -> list[Cell]:
    """Expand a matrix mapping into its cells (an empty mapping gives no cells)."""
    if matrix is None:
        return [{}]
    if not isinstance(matrix, dict):
        raise MatrixError(f"a matrix must be a mapping, not {type(matrix).__name__}")
    include = matrix.get("include") or []
    exclude = matrix.get("exclude") or []
    if not isinstance(include, list):
        raise MatrixError('"include" must be a sequence of mappings')
    if not isinstance(exclude, list):
        raise MatrixError('"exclude" must be a sequence of mappings')
    vectors: list[tuple[str, list[object]]] = []
    for key, values in matrix.items():
        if key in ("include", "exclude"):
            continue
        if not isinstance(values, list):
            raise MatrixError(
                f'matrix vector "{key}" must be a sequence, not {type(values).__name__}'
            )
        if not values:
            raise MatrixError(f'matrix vector "{key}" does not contain any values')
        vectors.append((key, values))

    cells: list[Cell] = []
    if vectors:
        names = [k for k, _ in vectors]
        for combo in itertools.product(*(v for _, v in vectors)):
            cells.append(dict(zip(names, combo, strict=True)))
    for entry in exclude:
        if not isinstance(entry, dict):
            raise MatrixError('each "exclude" entry must be a mapping')
        cells = [c for c in cells if not all(k in c and _equal(c[k], v) for k, v in entry.items())]

    original_keys = {k for k, _ in vectors}
    originals = list(range(len(cells)))
    extra: list[Cell] = []
    for entry in include:
        if not isinstance(entry, dict):
            raise MatrixError('each "include" entry must be a mapping')
        matched = False
        for i in originals:
            cell = cells[i]
            fits = all(
                _equal(cell[k], v) for k, v in entry.items() if k in original_keys and k in cell
            )
            if fits:
                cell.update(entry)
                matched = True
        if not matched:
            extra.append(dict(entry))
    return cells + extra


def cell_label(cell: Cell) -> str:
    """The values of a cell as GitHub shows them after a job's name: `3.11, ubuntu`."""
    parts = []
    for value in cell.values():
        if isinstance(value, dict | list):
            parts.append(json.dumps(value, separators=(", ", ": ")))
        elif isinstance(value, bool):
            parts.append("true" if value else "false")
        elif value is None:
            parts.append("")
        else:
            parts.append(str(value))
    return ", ".join(parts)


def select_cells(cells: list[Cell], selectors: list[tuple[str, str]]) -> list[Cell]:
    """Keep the cells whose values match every `KEY=VALUE` selector (same key: any value)."""
    if not selectors:
        return cells
    wanted: dict[str, set[str]] = {}
    for key, value in selectors:
        wanted.setdefault(key, set()).add(value)

    def text(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    def number(s: str) -> float | None:
        try:
            return float(s)
        except ValueError:
            return None

    def matches(v: object, vs: set[str]) -> bool:
        if text(v) in vs:
            return True
        # YAML reads `3.10` as the float 3.1 and `3.0` as 3.0 (shown "3"): compare numbers
        # as numbers, so `--matrix python-version=3.10` selects the cell the user wrote.
        if isinstance(v, int | float) and not isinstance(v, bool):
            return any(number(s) == v for s in vs)
        return False

    out = []
    for cell in cells:
        if all(k in cell and matches(cell[k], vs) for k, vs in wanted.items()):
            out.append(cell)
    return out
