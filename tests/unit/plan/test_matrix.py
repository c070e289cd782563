"""Matrix expansion, labels and `--matrix` selection, checked against GitHub's documentation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipline.plan.matrix import MatrixError, cell_label, expand_matrix, select_cells


def test_product_first_key_slowest() -> None:
    cells = expand_matrix({"os": ["ubuntu", "windows"], "version": [10, 12, 14]})
    assert cells == [
        {"os": "ubuntu", "version": 10},
        {"os": "ubuntu", "version": 12},
        {"os": "ubuntu", "version": 14},
        {"os": "windows", "version": 10},
        {"os": "windows", "version": 12},
        {"os": "windows", "version": 14},
    ]


def test_github_include_example() -> None:
    # docs.github.com "Running variations of jobs in a workflow",
    # "Example: Expanding configurations"
    matrix = {
        "fruit": ["apple", "pear"],
        "animal": ["cat", "dog"],
        "include": [
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    }
    assert expand_matrix(matrix) == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_github_include_adds_to_matching_cells_only() -> None:
    # docs: "Example: Adding configurations" (os x version, include node 16 on windows)
    matrix = {
        "os": ["windows-latest", "ubuntu-latest"],
        "node": [14, 16],
        "include": [{"os": "windows-latest", "node": 16, "npm": 6}],
    }
    assert expand_matrix(matrix) == [
        {"os": "windows-latest", "node": 14},
        {"os": "windows-latest", "node": 16, "npm": 6},
        {"os": "ubuntu-latest", "node": 14},
        {"os": "ubuntu-latest", "node": 16},
    ]


def test_include_never_overwrites_an_original_value() -> None:
    cells = expand_matrix({"os": ["linux"], "include": [{"os": "mac", "arch": "arm"}]})
    assert cells == [{"os": "linux"}, {"os": "mac", "arch": "arm"}]


def test_github_exclude_example() -> None:
    # docs: "Excluding matrix configurations": 12 combinations minus 3 excluded = 9
    matrix = {
        "os": ["macos-latest", "windows-latest"],
        "version": [12, 14, 16],
        "environment": ["staging", "production"],
        "exclude": [
            {"os": "macos-latest", "version": 12, "environment": "production"},
            {"os": "windows-latest", "version": 16},
        ],
    }
    cells = expand_matrix(matrix)
    assert len(cells) == 9
    assert {"os": "macos-latest", "version": 12, "environment": "production"} not in cells
    assert not [c for c in cells if c["os"] == "windows-latest" and c["version"] == 16]
    assert {"os": "macos-latest", "version": 12, "environment": "staging"} in cells


def test_exclude_runs_before_include() -> None:
    # An excluded combination can be added back by an include (GitHub processes exclude first).
    matrix = {
        "os": ["a", "b"],
        "exclude": [{"os": "b"}],
        "include": [{"os": "b", "extra": True}],
    }
    assert expand_matrix(matrix) == [{"os": "a"}, {"os": "b", "extra": True}]


def test_exclude_with_unknown_key_excludes_nothing() -> None:
    assert expand_matrix({"os": ["a", "b"], "exclude": [{"arch": "x"}]}) == [
        {"os": "a"},
        {"os": "b"},
    ]


def test_exclude_matches_mapping_values() -> None:
    matrix = {"cfg": [{"a": 1, "b": 2}, {"a": 3}], "exclude": [{"cfg": {"b": 2, "a": 1}}]}
    assert expand_matrix(matrix) == [{"cfg": {"a": 3}}]


def test_include_only_matrix() -> None:
    matrix = {
        "include": [
            {"site": "production", "datacenter": "site-a"},
            {"site": "staging", "datacenter": "site-b"},
        ]
    }
    assert expand_matrix(matrix) == matrix["include"]


def test_empty_vector_is_an_error() -> None:
    with pytest.raises(MatrixError, match='"version" does not contain any values'):
        expand_matrix({"os": ["linux"], "version": []})


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (["a"], "must be a mapping"),
        ({"os": "linux"}, '"os" must be a sequence'),
        ({"os": ["a"], "include": {"x": 1}}, '"include" must be a sequence'),
        ({"os": ["a"], "exclude": "x"}, '"exclude" must be a sequence'),
        ({"os": ["a"], "include": ["x"]}, '"include" entry must be a mapping'),
        ({"os": ["a"], "exclude": ["x"]}, '"exclude" entry must be a mapping'),
    ],
)
def test_malformed_matrix_is_an_error(matrix: object, message: str) -> None:
    with pytest.raises(MatrixError, match=message):
        expand_matrix(matrix)


def test_no_matrix_is_one_empty_cell() -> None:
    assert expand_matrix(None) == [{}]


def test_cell_label() -> None:
    assert cell_label({"python": "3.11", "os": "ubuntu"}) == "3.11, ubuntu"
    assert cell_label({"flag": True, "off": False, "n": 8, "f": 3.1}) == "true, false, 8, 3.1"
    assert cell_label({"cfg": {"a": 1}, "list": [1, 2]}) == '{"a": 1}, [1, 2]'


CELLS: list[dict[str, object]] = [
    {"python-version": 3.1, "os": "ubuntu", "debug": True},
    {"python-version": 3.11, "os": "ubuntu", "debug": False},
    {"python-version": "3.12", "os": "windows", "debug": False},
    {"python-version": 3.0, "os": "windows", "debug": True},
]


def test_select_cells_no_selector_keeps_all() -> None:
    assert select_cells(CELLS, []) == CELLS


def test_select_cells_by_number_and_string() -> None:
    assert select_cells(CELLS, [("python-version", "3.11")]) == [CELLS[1]]
    assert select_cells(CELLS, [("python-version", "3.12")]) == [CELLS[2]]


def test_select_cells_float_as_yaml_reads_it() -> None:
    # `python-version: [3.10]` is the float 3.1 in YAML; GitHub shows it as "3.1".
    assert select_cells(CELLS, [("python-version", "3.1")]) == [CELLS[0]]
    assert select_cells(CELLS, [("python-version", "3.10")]) == [CELLS[0]]


def test_select_cells_whole_float() -> None:
    assert select_cells(CELLS, [("python-version", "3")]) == [CELLS[3]]
    assert select_cells(CELLS, [("python-version", "3.0")]) == [CELLS[3]]


def test_select_cells_booleans() -> None:
    assert select_cells(CELLS, [("debug", "true")]) == [CELLS[0], CELLS[3]]
    assert select_cells(CELLS, [("debug", "false")]) == [CELLS[1], CELLS[2]]


def test_select_cells_same_key_is_or_different_keys_are_and() -> None:
    either = [("python-version", "3.11"), ("python-version", "3.12")]
    assert select_cells(CELLS, either) == [CELLS[1], CELLS[2]]
    both = [("os", "windows"), ("debug", "true")]
    assert select_cells(CELLS, both) == [CELLS[3]]


def test_select_cells_missing_key_matches_nothing() -> None:
    assert select_cells(CELLS, [("arch", "arm")]) == []


_values = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "c"]), st.booleans())
_vectors = st.dictionaries(
    st.sampled_from(["os", "py", "arch", "node"]),
    st.lists(_values, min_size=1, max_size=3, unique_by=repr),
    min_size=1,
)


@given(data=st.data(), vectors=_vectors)
def test_cells_are_product_minus_excluded(
    data: st.DataObject, vectors: dict[str, list[object]]
) -> None:
    full = expand_matrix(dict(vectors))
    assert len(full) == math.prod(len(v) for v in vectors.values())
    exclude = data.draw(st.lists(st.sampled_from(full), max_size=3))
    cells = expand_matrix({**vectors, "exclude": exclude})
    # repr, not ==: in Python 1 == True, in a matrix they are different values.
    gone = {repr(e) for e in exclude}
    assert len(cells) == len(full) - len({repr(c) for c in full} & gone)
    assert all(repr(c) not in gone for c in cells)
