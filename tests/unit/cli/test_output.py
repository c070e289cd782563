"""Human output of the client commands and what `projects create` sends as --repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipline.cli.projects import _repository
from shipline.cli.tables import print_fields, print_table, short_ref, state, when


def test_plain_table_in_a_pipe_is_aligned_columns(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["id", "status"], [["1", "completed/success"], ["12", "queued"]])
    assert capsys.readouterr().out.splitlines() == [
        "ID  STATUS",
        "1   completed/success",
        "12  queued",
    ]


def test_empty_table_says_so_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["id"], [])
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "(none)\n")


def test_fields_leave_out_empty_values(capsys: pytest.CaptureFixture[str]) -> None:
    print_fields([("run", 1), ("error", None), ("status", "queued")])
    assert capsys.readouterr().out == "run:    1\nstatus: queued\n"


def test_words() -> None:
    assert state({"status": "completed", "conclusion": "failure"}) == "completed/failure"
    assert state({"status": "in_progress", "conclusion": None}) == "in_progress"
    assert when("2026-01-02T03:04:05.123456Z") == "2026-01-02 03:04:05"
    assert when(None) == ""
    assert short_ref("refs/heads/feature/x") == "feature/x"
    assert short_ref("refs/tags/v1") == "v1"


def test_repo_urls_are_sent_as_given_and_local_paths_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app").mkdir()
    assert _repository("app") == str(tmp_path / "app")
    assert _repository("./app") == str(tmp_path / "app")
    assert _repository("https://git.example/app.git") == "https://git.example/app.git"
    assert _repository("git@git.example:app.git") == "git@git.example:app.git"
    assert _repository("missing") == "missing"
