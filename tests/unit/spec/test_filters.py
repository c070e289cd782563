"""Filter patterns: GitHub's documented examples, ordering rules, validation, actionlint corpus."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import ReusedAnchorWarning, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from shipline.spec.filters import (
    compile_pattern,
    match_patterns,
    paths_allowed,
    ref_allowed,
    validate_pattern,
)
from tests.conformance.corpus import load_corpus

# GitHub's "Filter pattern cheat sheet": (pattern, names it matches, names it must not match).
REF_EXAMPLES = [
    ("feature/*", ["feature/my-branch", "feature/your-branch"], ["feature/your-branch/x", "feat"]),
    (
        "feature/**",
        ["feature/beta-a/my-branch", "feature/your-branch", "feature/mona/the/octocat"],
        ["feature", "features/x"],
    ),
    ("main", ["main"], ["main2", "xmain", "Main"]),
    ("releases/mona-the-octocat", ["releases/mona-the-octocat"], ["releases/mona"]),
    ("*", ["main", "releases"], ["all/the/branches", "releases/v1"]),
    ("**", ["all/the/branches", "every/tag", "main"], []),
    ("*feature", ["mona-feature", "feature", "ver-10-feature"], ["feature-x", "a/feature"]),
    ("v2*", ["v2", "v2.0", "v2.9"], ["v1", "v2/x"]),
    ("v[12].[0-9]+.[0-9]+", ["v1.10.1", "v2.0.0"], ["v3.0.0", "v1.x.1", "v1.1", "v1-1-1", "v1.."]),
]
PATH_EXAMPLES = [
    ("*", ["README.md", "server.rb"], ["docs/README.md"]),
    ("*.jsx?", ["page.js", "page.jsx"], ["page.jsxx", "page.j", "a/page.js"]),
    ("**", ["all/the/files.md"], []),
    ("*.js", ["app.js", "index.js"], ["js/index.js", "app.jsx"]),
    ("**.js", ["index.js", "js/index.js", "src/js/app.js"], ["index.jsx"]),
    ("docs/*", ["docs/README.md", "docs/file.txt"], ["docs/mona/octocat.txt", "README.md"]),
    ("docs/**", ["docs/README.md", "docs/mona/octocat.txt"], ["README.md", "mydocs/x.md"]),
    (
        "docs/**/*.md",
        ["docs/README.md", "docs/mona/hello-world.md", "docs/a/markdown/file.md"],
        ["docs/a.txt", "README.md"],
    ),
    (
        "**/docs/**",
        ["docs/hello.md", "dir/docs/my-file.txt", "space/docs/plan/space.doc"],
        ["mydocs/x.md", "docs"],
    ),
    ("**/README.md", ["README.md", "js/README.md"], ["xREADME.md", "README.md.bak"]),
    ("**/*src/**", ["a/src/app.js", "my-src/code/js/app.js"], ["src", "a/srcx/app.js"]),
    ("**/*-post.md", ["my-post.md", "path/their-post.md"], ["post.md", "my-post.mdx"]),
    (
        "**/migrate-*.sql",
        ["migrate-10909.sql", "db/migrate-v1.0.sql", "db/sept/migrate-v1.sql"],
        ["db/migrate.sql", "migrate-1/x.sql"],
    ),
    # Not in the table, but follows from its rules.
    ("a**/b", ["a/b", "ax/b", "ax/y/b"], ["ab"]),
    ("[CB]at", ["Cat", "Bat"], ["cat", "Hat", "CBat"]),
    ("[0-9a-z]+", ["abc9", "z"], ["A", ""]),
    ("a.b", ["a.b"], ["axb"]),
    ("(a|b)$", ["(a|b)$"], ["a", "b"]),
    ("a/?b", ["ab", "a/b"], ["a//b"]),
]


def _cases(examples: list[tuple[str, list[str], list[str]]]) -> list[tuple[str, str, bool]]:
    return [(p, name, True) for p, yes, _ in examples for name in yes] + [
        (p, name, False) for p, _, no in examples for name in no
    ]


@pytest.mark.parametrize(("pattern", "name", "expected"), _cases(REF_EXAMPLES + PATH_EXAMPLES))
def test_documented_examples(pattern: str, name: str, expected: bool) -> None:
    assert bool(compile_pattern(pattern).fullmatch(name)) is expected
    assert match_patterns(name, [pattern]) is expected


@pytest.mark.parametrize(("pattern", "_yes", "_no"), REF_EXAMPLES)
def test_documented_ref_examples_are_valid(pattern: str, _yes: object, _no: object) -> None:
    assert validate_pattern(pattern, kind="ref") == []


@pytest.mark.parametrize(("pattern", "_yes", "_no"), PATH_EXAMPLES)
def test_documented_path_examples_are_valid(pattern: str, _yes: object, _no: object) -> None:
    assert validate_pattern(pattern, kind="path") == []


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        (["*.md", "!README.md"], "hello.md", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "docs/hello.md", False),
        (["*.md", "!README.md", "README*"], "README.md", True),
        (["*.md", "!README.md", "README*"], "README.doc", True),
        (["releases/**", "!releases/**-alpha"], "releases/10", True),
        (["releases/**", "!releases/**-alpha"], "releases/beta/mona", True),
        (["releases/**", "!releases/**-alpha"], "releases/10-alpha", False),
        (["releases/**", "!releases/**-alpha"], "releases/beta/3-alpha", False),
        # A negative pattern before any positive one has nothing to exclude.
        (["!main", "**"], "main", True),
        (["!main"], "dev", False),
        ([], "main", False),
        # Only a leading `!` negates; an escaped one is literal.
        (["\\!main"], "!main", True),
        (["\\!main"], "main", False),
        (["!!main"], "!main", False),
        (["**", "!!main"], "!main", False),
        (["ma!n"], "ma!n", True),
    ],
)
def test_last_matching_pattern_wins(patterns: list[str], name: str, expected: bool) -> None:
    assert match_patterns(name, patterns) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a\\+", "a+", True),
        ("a\\+", "aa", False),
        ("a\\?", "a?", True),
        ("\\[x]", "[x]", True),
        ("a\\\\b", "a\\b", True),
        ("foo\\bar", "foo\\bar", True),
        ("[ab]+", "abba", True),
        ("[ab]?c", "c", True),
        # Broken patterns degrade instead of raising: unclosed `[` and stray `+` are literal,
        # an empty set or a reversed range matches nothing.
        ("v[0-", "v[0-", True),
        ("v*+", "v1+", True),
        ("?a", "?a", True),
        ("[]", "", False),
        ("v[9-0]", "v5", False),
        ("[a-]", "-", True),
    ],
)
def test_escapes_and_broken_patterns(pattern: str, name: str, expected: bool) -> None:
    assert bool(compile_pattern(pattern).fullmatch(name)) is expected


def test_compiled_patterns_are_cached() -> None:
    assert compile_pattern("feature/**") is compile_pattern("feature/**")


def test_ref_allowed() -> None:
    assert ref_allowed("anything", None, None)
    assert ref_allowed("main", ["main", "releases/**"], None)
    assert not ref_allowed("dev", ["main", "releases/**"], None)
    assert not ref_allowed("main", [], None)
    assert not ref_allowed("dev/x", None, ["dev/**"])
    assert ref_allowed("main", None, ["dev/**"])
    assert ref_allowed("dev/keep", None, ["dev/**", "!dev/keep"])
    # GitHub rejects both forms on one event; given anyway, both must let it through.
    assert not ref_allowed("main", ["**"], ["main"])


@pytest.mark.parametrize(
    ("changed", "include", "ignore", "expected"),
    [
        (["a.py"], None, None, True),
        (None, ["**.js"], None, True),
        (None, None, ["docs/**"], True),
        (["README.md", "src/a.js"], ["**.js"], None, True),
        (["README.md"], ["**.js"], None, False),
        ([], ["**.js"], None, False),
        (["docs/a.md"], None, ["docs/**"], False),
        (["docs/a.md", "src/x.py"], None, ["docs/**"], True),
        ([], None, ["docs/**"], False),
        (["sub/docs/a.md"], ["sub/**", "!sub/docs/**"], None, False),
        (["sub/docs/a.md", "sub/x.c"], ["sub/**", "!sub/docs/**"], None, True),
        (["docs/api/x.md"], None, ["docs/**", "!docs/api/**"], True),
        (["a.js"], ["**.js"], ["a.js"], False),
    ],
)
def test_paths_allowed(
    changed: list[str] | None, include: list[str] | None, ignore: list[str] | None, expected: bool
) -> None:
    assert paths_allowed(changed, include, ignore) is expected


@pytest.mark.parametrize(
    ("pattern", "kind", "offsets", "fragment"),
    [
        ("", "ref", [0], "empty"),
        ("!", "path", [0], "'!'"),
        ("?a", "path", [0], "preceding"),
        ("a*?", "ref", [2], "preceding"),
        ("v*+", "ref", [2], "preceding"),
        ("a??", "path", [2], "preceding"),
        ("**/?", "path", [3], "preceding"),
        ("!+a", "path", [1], "preceding"),
        ("[]", "path", [1], "empty"),
        ("[x]", "path", [2], "one character"),
        ("a[bc", "path", [3], "missing ']'"),
        ("[9-0]", "path", [3], "reversed"),
        ("[a-]", "path", [3], "no end"),
        ("a\nb", "path", [1], "line break"),
        ("^foo", "ref", [0], "'^'"),
        ("a b", "ref", [1], "' '"),
        ("a~1", "ref", [1], "'~'"),
        ("a:b", "ref", [1], "':'"),
        ("a\tb", "ref", [1], "'\\t'"),
        ("a\x7fb", "ref", [1], "control"),
        ("/main", "ref", [0], "start with '/'"),
        ("!/main", "ref", [1], "start with '/'"),
        ("main/", "ref", [4], "end with"),
        ("v1.", "ref", [2], "end with"),
        (".", "ref", [0], "end with"),
        ("a..b", "ref", [2], "'..'"),
        ("a@{b", "ref", [2], "'@{'"),
        ("v\\d+", "ref", [1], "can be escaped"),
        ("a\\", "ref", [1], "can be escaped"),
        ("a\\*", "ref", [2], "'*'"),
        ("a\\\\b", "ref", [2], "'\\'"),
        (" a", "path", [0], "whitespace"),
        ("a ", "path", [0], "whitespace"),
        ("./a", "path", [0], "'.'"),
        ("!../a", "path", [0], "'.'"),
        ("..", "path", [0], "'.'"),
    ],
)
def test_validate_reports_offset(
    pattern: str, kind: Literal["ref", "path"], offsets: list[int], fragment: str
) -> None:
    errors = validate_pattern(pattern, kind=kind)
    assert [e.offset for e in errors] == offsets
    assert fragment in errors[0].message


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("**", "ref"),
        ("!*", "ref"),
        ("a\\+", "ref"),
        ("\\!a", "ref"),
        ("releases/**-alpha", "ref"),
        ("foo\\bar", "path"),
        ("a\\*", "path"),
        ("a b", "path"),
        ("a..b", "path"),
        ("!docs/**", "path"),
        ("**/*.md", "path"),
        ("ünïcode/ブランチ", "ref"),
    ],
)
def test_validate_accepts(pattern: str, kind: Literal["ref", "path"]) -> None:
    assert validate_pattern(pattern, kind=kind) == []


# --- actionlint corpus -------------------------------------------------------------------

_REF_KEYS = {"branches", "branches-ignore", "tags", "tags-ignore"}
_PATH_KEYS = {"paths", "paths-ignore"}

# Errors of actionlint's `glob` rule whose column we deliberately do not reproduce:
# (case id, line) -> why. Empty: every reported column matches.
COLUMN_DIVERGENCES: dict[tuple[str, int], str] = {}


@dataclass(frozen=True)
class CorpusPattern:
    case: str
    expect: str
    line: int  # 1-based, as actionlint reports
    col: int  # 1-based column of the pattern's first character
    pattern: str
    kind: Literal["ref", "path"]


@pytest.fixture(scope="module")
def corpus() -> list[tuple[dict[str, Any], list[CorpusPattern]]]:
    """Each case of the actionlint corpus with the filter patterns found in it."""
    cases: list[dict[str, Any]] = load_corpus("actionlint/cases.json")
    return [(case, _patterns(case)) for case in cases]


def _pattern_at(
    case: dict[str, Any], seq: Any, key: Any, value: Any, kind: Literal["ref", "path"]
) -> CorpusPattern | None:
    if not isinstance(value, str) or value == "":
        return None  # empty values are the parser's business, as in actionlint
    line, col = seq.lc.item(key) if isinstance(seq, CommentedSeq) else seq.lc.value(key)
    quoted = isinstance(value, SingleQuotedScalarString | DoubleQuotedScalarString)
    return CorpusPattern(case["id"], case["expect"], line + 1, col + 1 + quoted, value, kind)


def _patterns(case: dict[str, Any]) -> list[CorpusPattern]:
    """Every filter pattern in a case, with where it starts in the file."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReusedAnchorWarning)  # some cases test anchors
            doc = yaml.load(case["input"])
    except YAMLError:
        return []
    if not isinstance(doc, CommentedMap):
        return []
    found: list[CorpusPattern | None] = []
    on = doc.get("on")
    for event in on.values() if isinstance(on, CommentedMap) else []:
        if not isinstance(event, CommentedMap):
            continue
        for key, values in event.items():
            # `image_version.versions` is checked with the ref rules by actionlint too.
            kind: Literal["ref", "path"] | None = (
                "ref" if key in _REF_KEYS | {"versions"} else "path" if key in _PATH_KEYS else None
            )
            if kind is None:
                continue
            if isinstance(values, CommentedSeq):
                found += [_pattern_at(case, values, i, v, kind) for i, v in enumerate(values)]
            else:
                found.append(_pattern_at(case, event, key, values, kind))
    jobs = doc.get("jobs")
    for job in jobs.values() if isinstance(jobs, CommentedMap) else []:
        snapshot = job.get("snapshot") if isinstance(job, CommentedMap) else None
        if isinstance(snapshot, CommentedMap) and "version" in snapshot:
            found.append(_pattern_at(case, snapshot, "version", snapshot["version"], "ref"))
    return [p for p in found if p is not None]


def _glob_errors(case: dict[str, Any]) -> dict[int, list[int]]:
    """Expected `glob` errors of a case: line -> columns."""
    lines: dict[int, list[int]] = {}
    for error in case["expected_errors"]:
        if error["rule"] == "glob":
            lines.setdefault(error["line"], []).append(error["col"])
    return lines


def _offset_columns(p: CorpusPattern) -> list[int]:
    return sorted(p.col + e.offset for e in validate_pattern(p.pattern, kind=p.kind))


def test_corpus_glob_errors_are_reported_at_actionlints_columns(
    corpus: list[tuple[dict[str, Any], list[CorpusPattern]]],
) -> None:
    flagged = 0
    misaligned: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for case, patterns in corpus:
        expected = _glob_errors(case)
        if not expected:
            continue
        by_line = {p.line: p for p in patterns}
        for line, cols in expected.items():
            pattern = by_line.get(line)
            assert pattern is not None, f"{case['id']}:{line}: no pattern found on that line"
            ours = _offset_columns(pattern)
            assert ours, f"{case['id']}:{line}: {pattern.pattern!r} accepted, actionlint rejects"
            flagged += len(cols)
            if ours != sorted(cols):
                misaligned[(case["id"], line)] = (ours, sorted(cols))
    assert flagged >= 22  # the corpus as of this writing; fewer means extraction broke
    assert set(misaligned) == set(COLUMN_DIVERGENCES), misaligned


def test_corpus_patterns_in_valid_workflows_are_accepted(
    corpus: list[tuple[dict[str, Any], list[CorpusPattern]]],
) -> None:
    patterns = [p for case, found in corpus if case["expect"] == "valid" for p in found]
    assert len(patterns) >= 20
    rejected = {p: validate_pattern(p.pattern, kind=p.kind) for p in patterns}
    assert {p: e for p, e in rejected.items() if e} == {}


def test_corpus_patterns_actionlint_does_not_flag_are_accepted(
    corpus: list[tuple[dict[str, Any], list[CorpusPattern]]],
) -> None:
    """Patterns in invalid workflows whose line has no `glob` error (`foo\\bar`, `!*`, ...)."""
    patterns = [
        p
        for case, found in corpus
        if case["expect"] != "valid"
        for p in found
        if p.line not in _glob_errors(case)
    ]
    assert len(patterns) >= 20
    rejected = {p: validate_pattern(p.pattern, kind=p.kind) for p in patterns}
    assert {p: e for p, e in rejected.items() if e} == {}
