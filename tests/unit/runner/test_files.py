"""GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH files, read as GitHub reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipline.runner.files import CommandFileError, parse_key_values, read_key_values, read_paths


def test_name_value_lines() -> None:
    assert parse_key_values("a=1\nb=two words\n", "GITHUB_OUTPUT") == [
        ("a", "1"),
        ("b", "two words"),
    ]


def test_value_keeps_everything_after_the_first_equals() -> None:
    assert parse_key_values("url=https://x.test/?a=1&b=2\nempty=\n", "GITHUB_OUTPUT") == [
        ("url", "https://x.test/?a=1&b=2"),
        ("empty", ""),
    ]


def test_empty_lines_and_crlf_are_ignored() -> None:
    assert parse_key_values("\n\na=1\r\n\r\n\nb=2", "GITHUB_ENV") == [("a", "1"), ("b", "2")]


def test_heredoc_multi_line_value() -> None:
    text = 'json<<EOF\n{\n  "a": 1\n}\nEOF\nafter=yes\n'
    assert parse_key_values(text, "GITHUB_OUTPUT") == [
        ("json", '{\n  "a": 1\n}'),
        ("after", "yes"),
    ]


def test_heredoc_keeps_empty_lines_and_equals_inside() -> None:
    text = "body<<ghadelimiter_1\nx=y\n\nz<<w\nghadelimiter_1\n"
    assert parse_key_values(text, "GITHUB_OUTPUT") == [("body", "x=y\n\nz<<w")]


def test_heredoc_empty_value() -> None:
    assert parse_key_values("v<<EOF\nEOF\n", "GITHUB_OUTPUT") == [("v", "")]


def test_heredoc_with_crlf() -> None:
    assert parse_key_values("v<<EOF\r\nl1\r\nl2\r\nEOF\r\n", "GITHUB_ENV") == [("v", "l1\nl2")]


def test_equals_before_heredoc_marker_is_a_plain_value() -> None:
    assert parse_key_values("cmd=a<<b\n", "GITHUB_ENV") == [("cmd", "a<<b")]


def test_missing_delimiter_is_an_error_naming_it() -> None:
    with pytest.raises(CommandFileError, match="GITHUB_OUTPUT: matching delimiter not found 'EOF'"):
        parse_key_values("v<<EOF\nline\n", "GITHUB_OUTPUT")


def test_delimiter_must_match_the_whole_line() -> None:
    with pytest.raises(CommandFileError, match="delimiter not found"):
        parse_key_values("v<<EOF\nEOF \n EOF\nEOFX\n", "GITHUB_OUTPUT")


@pytest.mark.parametrize("line", ["novalue", "=value", "<<EOF", "v<<"])
def test_malformed_line_is_an_error_with_its_number(line: str) -> None:
    with pytest.raises(CommandFileError, match=r"GITHUB_ENV: line 2: "):
        parse_key_values(f"ok=1\n{line}\n", "GITHUB_ENV")


def test_read_key_values_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_key_values(tmp_path / "nope", "GITHUB_OUTPUT") == []


def test_read_key_values_from_file(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes("name=Zoë\nm<<X\n1\n2\nX\n".encode())
    assert read_key_values(path, "GITHUB_OUTPUT") == [("name", "Zoë"), ("m", "1\n2")]


def test_read_paths(tmp_path: Path) -> None:
    path = tmp_path / "path"
    path.write_text("/opt/tool/bin\n\n  /home/u/.local/bin  \r\n")
    assert read_paths(path) == ["/opt/tool/bin", "/home/u/.local/bin"]
    assert read_paths(tmp_path / "missing") == []
