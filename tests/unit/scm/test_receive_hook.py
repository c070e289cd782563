"""The pre-receive hook as git runs it: a process reading ref updates on standard input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from shipline.plan.protection import Grant, RefUpdate
from shipline.scm.receive_hook import RULES_ENV, parse_updates

LINE = f"{'0' * 40} {'a' * 40} refs/heads/main\n"


def hook(env_rules: str | None, stdin: str = LINE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != RULES_ENV}
    if env_rules is not None:
        env[RULES_ENV] = env_rules
    return subprocess.run(
        [sys.executable, "-I", "-m", "shipline.scm.receive_hook", "pre-receive"],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_the_server_s_rules_everything_is_refused() -> None:
    result = hook(None)
    assert result.returncode == 1
    assert "shipline: pushes are accepted only through the Shipline server" in result.stderr


def test_with_rules_it_refuses_what_they_refuse_and_accepts_the_rest() -> None:
    rules = json.dumps([Grant("branch", "main", "admin", may_push=False).to_json()])
    refused = hook(rules)
    assert refused.returncode == 1
    assert "refusing refs/heads/main: branch main is protected" in refused.stderr
    accepted = hook(rules, f"{'0' * 40} {'a' * 40} refs/heads/feature\n")
    assert (accepted.returncode, accepted.stderr) == (0, "")


def test_hook_input_is_parsed_strictly() -> None:
    assert parse_updates(LINE) == [RefUpdate("refs/heads/main", "0" * 40, "a" * 40)]
    with pytest.raises(ValueError):
        parse_updates("--upload-pack=x y refs/heads/main\n")
