"""Unit tests of `shipline.spec.expressions` beyond GitHub's corpus (see tests/conformance)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shipline.spec.expressions as ex
from shipline.spec.expressions import (
    ContextReference,
    ExpressionError,
    FunctionCall,
    Value,
    calls,
    evaluate,
    evaluate_template,
    has_expression,
    parse_expression,
    parse_template,
    references,
    to_json,
    to_string,
    truthy,
)


class RecordingHost:
    """A FunctionHost that answers from a table and records what it was asked."""

    def __init__(self, status: dict[str, bool], digest: str = "d1g3st") -> None:
        self.status = status
        self.digest = digest
        self.asked: list[str] = []
        self.hashed: list[list[str]] = []

    def status_function(self, name: str) -> bool:
        self.asked.append(name)
        return self.status[name]

    def hash_files(self, patterns: list[str]) -> str:
        self.hashed.append(patterns)
        return self.digest


def error_of(expr: str, contexts: dict[str, Value] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        evaluate(expr, contexts or {})
    return info.value


# Public API ---------------------------------------------------------------------------


def test_all_lists_exactly_the_public_api() -> None:
    assert sorted(ex.__all__) == sorted(
        [
            "KNOWN_FUNCTIONS", "ContextReference", "Expr", "ExpressionError", "FunctionCall",
            "FunctionHost", "Template", "TemplatePart", "Value", "calls", "evaluate",
            "evaluate_template", "has_expression", "parse_expression", "parse_template",
            "references", "to_json", "to_string", "truthy", "walk",
        ]
    )  # fmt: skip
    for name in ex.__all__:
        assert hasattr(ex, name)


def test_known_functions_are_lowercased_with_arities() -> None:
    assert ex.KNOWN_FUNCTIONS["startswith"] == (2, 2)
    assert ex.KNOWN_FUNCTIONS["success"] == (0, 0)
    assert ex.KNOWN_FUNCTIONS["hashfiles"][0] == 1
    assert all(name == name.lower() for name in ex.KNOWN_FUNCTIONS)


def test_parsing_is_cached() -> None:
    assert parse_expression("github.ref == 'refs/heads/main'") is parse_expression(
        "github.ref == 'refs/heads/main'"
    )


# Templates ----------------------------------------------------------------------------


def test_template_parts_and_offsets() -> None:
    t = parse_template("echo ${{ github.sha }} and ${{matrix.os}}!")
    assert [(p.text, p.source, p.offset) for p in t.parts] == [
        ("echo ", "", 0),
        (None, "github.sha", 5),
        (" and ", "", 22),
        (None, "matrix.os", 27),
        ("!", "", 41),
    ]
    assert t.parts[1].expr == parse_expression("github.sha")
    assert not t.is_single_expression


def test_closing_braces_inside_a_string_literal_do_not_close_the_expression() -> None:
    t = parse_template("${{ format('{{{0}}}', 'x}}') }} tail")
    assert t.parts[0].source == "format('{{{0}}}', 'x}}')"
    assert evaluate_template(t, {}) == "{x}}} tail"


def test_escaped_quote_inside_a_string_literal_keeps_the_string_open() -> None:
    t = parse_template("${{ 'it''s }}' }}")
    assert evaluate_template(t, {}) == "it's }}"


def test_unterminated_expression_is_a_parsing_error_at_its_opening() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template("run: echo ${{ github.sha")
    assert info.value.kind == "parsing"
    assert info.value.offset == 10
    assert "not closed" in info.value.message


def test_empty_expression_is_a_parsing_error() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template("a ${{   }} b")
    assert (info.value.kind, info.value.offset) == ("parsing", 2)
    assert info.value.message == "An expression was expected"


def test_syntax_error_inside_a_template_points_into_the_template() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template("x: ${{  1 2 }}")
    assert info.value.kind == "parsing"
    assert info.value.offset == 10  # the "2"
    assert info.value.expr == "x: ${{  1 2 }}"
    assert "position 11 within expression: x: ${{  1 2 }}" in str(info.value)


def test_single_expression_keeps_its_type_even_with_whitespace_around() -> None:
    ctx: dict[str, Value] = {"inputs": {"n": 3, "flags": ["a"]}}
    assert evaluate_template("${{ inputs.n }}", ctx) == 3
    assert evaluate_template("  ${{ inputs.flags }}\n", ctx) == ["a"]
    assert parse_template(" ${{ 1 }} ").is_single_expression


def test_mixed_template_concatenates_github_string_forms() -> None:
    ctx: dict[str, Value] = {"v": {"n": 3, "t": True, "no": None, "o": {}, "f": 0.5}}
    out = evaluate_template("${{ v.n }}-${{ v.t }}-${{ v.no }}-${{ v.o }}-${{ v.f }}", ctx)
    assert out == "3-true--Object-0.5"


def test_text_without_expressions() -> None:
    assert not has_expression("echo hello")
    assert has_expression("echo ${{ 1 }}")
    assert evaluate_template("echo hello", {}) == "echo hello"
    assert parse_template("").parts == ()


# Contexts, names and case -------------------------------------------------------------


def test_context_and_property_names_ignore_case() -> None:
    ctx: dict[str, Value] = {"GitHub": {"Event_Name": "push"}}
    assert evaluate("github.EVENT_NAME", ctx) == "push"
    assert evaluate("GITHUB['event_name']", ctx) == "push"


def test_function_names_and_string_comparison_ignore_case() -> None:
    assert evaluate("STARTSWITH('Refs/Heads/Main', 'refs/heads/')", {}) is True
    assert evaluate("'MAIN' == 'main'", {}) is True
    assert evaluate("toJson(fromJSON('[1]'))", {}) == "[\n  1\n]"


def test_unknown_context_is_reported_even_on_a_branch_never_evaluated() -> None:
    e = error_of("false && nosuch.value", {})
    assert e.kind == "parsing"
    assert e.message == "Unrecognized named-value: 'nosuch'"
    assert e.offset == 9


def test_unknown_function_and_wrong_arity_are_parse_errors() -> None:
    for text, message in [
        ("nope()", "Unrecognized function: 'nope'"),
        ("join()", "Too few parameters supplied: 'join'"),
        ("contains(1, 2, 3)", "Too many parameters supplied: 'contains'"),
        ("success(1)", "Too many parameters supplied: 'success'"),
    ]:
        with pytest.raises(ExpressionError) as info:
            parse_expression(text)
        assert (info.value.kind, info.value.message) == ("parsing", message)


def test_error_text_names_the_expression_and_position() -> None:
    e = error_of("format('{0}')")
    assert e.kind == "evaluation"
    assert str(e) == (
        "The following format string references more arguments than were supplied: {0}. "
        "Located at position 1 within expression: format('{0}')"
    )


def test_limits() -> None:
    with pytest.raises(ExpressionError, match="max expression length"):
        parse_expression("1" * 21_001)
    with pytest.raises(ExpressionError, match="max expression depth 50"):
        parse_expression("!" * 50 + "true")
    huge = "x" * 40_000  # 16 copies: 1.28 MB at 2 bytes a character
    e = error_of("format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', s)", {"s": huge})
    assert e.kind == "evaluation"
    assert "maximum allowed memory" in e.message


# Values -------------------------------------------------------------------------------


def test_logical_operators_return_operands_and_short_circuit() -> None:
    assert evaluate("'' || 'fallback'", {}) == "fallback"
    assert evaluate("inputs.name && 'set'", {"inputs": {"name": "x"}}) == "set"
    assert evaluate("false && fromJSON('not json')", {}) is False  # right side not evaluated


def test_star_filter_and_missing_indices() -> None:
    ctx: dict[str, Value] = {"labels": [{"name": "bug"}, {"other": 1}, {"name": "ui"}]}
    assert evaluate("labels.*.name", ctx) == ["bug", "ui"]
    assert evaluate("labels[5]", ctx) is None
    assert evaluate("labels[0].missing", ctx) is None
    assert evaluate("contains(labels.*.name, 'UI')", ctx) is True


def test_python_ints_and_floats_are_both_numbers() -> None:
    ctx: dict[str, Value] = {"a": 1, "b": 1.0, "big": 10**20}
    assert evaluate("a == b", ctx) is True
    assert evaluate("a < 1.5", ctx) is True
    assert to_string(10**20) == "1E+20"
    assert to_string(2.0) == "2"
    assert to_string(0.1 + 0.2) == "0.3"
    assert evaluate("1", {}) == 1.0
    assert evaluate("tojson(a)", ctx) == "1"


def test_to_json_is_githubs_pretty_json() -> None:
    value: Value = {"a": [1, None, True, 'q"\n'], "b": {}, "c": []}
    assert to_json(value) == (
        '{\n  "a": [\n    1,\n    null,\n    true,\n    "q\\"\\n"\n  ],\n  "b": {},\n  "c": []\n}'
    )
    assert to_json(math.nan) == "NaN"


def test_truthy() -> None:
    assert [truthy(v) for v in (None, False, 0, -0.0, math.nan, "")] == [False] * 6
    assert [truthy(v) for v in (True, 1, "0", "false", [], {})] == [True] * 6


# Status functions and hashFiles ---------------------------------------------------------


def test_status_functions_default_without_a_host() -> None:
    assert evaluate("success()", {}) is True
    assert evaluate("always()", {}) is True
    assert evaluate("failure()", {}) is False
    assert evaluate("cancelled()", {}) is False


def test_status_functions_ask_the_host_with_lowercased_names() -> None:
    host = RecordingHost({"success": False, "failure": True, "always": True, "cancelled": False})
    assert evaluate("Failure() && !SUCCESS()", {}, host) is True
    assert host.asked == ["failure", "success"]


def test_hash_files_goes_to_the_host_and_needs_one() -> None:
    host = RecordingHost({}, digest="abc123")
    assert evaluate("hashFiles('**/go.sum', 'x.lock')", {}, host) == "abc123"
    assert host.hashed == [["**/go.sum", "x.lock"]]
    e = error_of("hashFiles('**/go.sum')")
    assert e.kind == "evaluation"


# Static analysis ----------------------------------------------------------------------


def test_references_give_each_access_its_longest_static_chain() -> None:
    expr = parse_expression(
        "steps.Build.outputs.x == 'a' && contains(github.event.*.labels, env['K']) || m[x.y]"
    )
    assert references(expr) == [
        ContextReference("steps", ("build", "outputs", "x"), 0),
        ContextReference("github", ("event", None, "labels"), 41),
        ContextReference("env", ("k",), 64),
        ContextReference("m", (None,), 77),
        ContextReference("x", ("y",), 79),
    ]


def test_references_of_a_bare_context_and_of_function_results() -> None:
    assert references(parse_expression("toJSON(matrix)")) == [ContextReference("matrix", (), 7)]
    assert references(parse_expression("fromJSON('{}').a")) == []


def test_calls_list_every_function_as_written() -> None:
    expr = parse_expression("format('{0}', toJSON(x)) && success()")
    assert calls(expr) == [
        FunctionCall("format", 2, 0),
        FunctionCall("toJSON", 1, 14),
        FunctionCall("success", 0, 28),
    ]


def test_walk_visits_every_node() -> None:
    nodes = list(ex.walk(parse_expression("!(a.b == 1)")))
    assert [type(n).__name__ for n in nodes] == [
        "Not", "Group", "Compare", "Index", "NamedValue", "Literal", "Literal"
    ]  # fmt: skip


# Properties ---------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15).map(float)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_from_json_reads_back_what_to_json_writes(value: Value) -> None:
    assert evaluate("fromJSON(x)", {"x": to_json(value)}) == value


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_a_number_equals_its_string_form(n: int) -> None:
    assert evaluate("n == s", {"n": float(n), "s": to_string(n)}) is True


@given(json_values)
def test_not_not_is_truthiness(value: Value) -> None:
    assert evaluate("!!v", {"v": value}) is truthy(value)
