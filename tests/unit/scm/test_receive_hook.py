"""The pre-receive hook as git runs it: a process reading ref updates on standard input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def _hook(tmp_path: Path, python: str) -> Path:
    from shipline.scm.hosted import HostedRepositories

    hosted = HostedRepositories(tmp_path, python=python)
    hosted.install_hooks()
    return hosted.hooks_dir / "pre-receive"


def _run_hook(hook: Path, text: str, rules: str | None) -> int:
    import subprocess

    env = {"PATH": "/usr/bin:/bin"}
    if rules is not None:
        env["SHIPLINE_PUSH_RULES"] = rules
    return subprocess.run(
        ["/bin/sh", str(hook)], input=text.encode(), env=env, capture_output=True, check=False
    ).returncode


def test_the_hook_skips_the_interpreter_only_when_nothing_can_be_refused(tmp_path: Path) -> None:
    # "python" here is /bin/false: any push the shell lets through did not need it
    hook = _hook(tmp_path, "/bin/false")
    sha = "a" * 40
    plain = f"{sha} {sha} refs/heads/main\n{sha} {sha} refs/tags/v1\n"
    assert _run_hook(hook, plain, "[]") == 0
    assert _run_hook(hook, plain, None) != 0  # not through the server: refused
    assert _run_hook(hook, plain, '[{"kind": "branch"}]') != 0  # rules: decided in Python
    assert _run_hook(hook, f"{sha} {sha} refs/pull/1/head\n", "[]") != 0
    assert _run_hook(hook, f"{sha} {sha} refs/heads/x\n{sha} {sha} refs/notes/y\n", "[]") != 0


def test_the_slow_path_sees_the_same_input(tmp_path: Path) -> None:
    import sys

    hook = _hook(tmp_path, sys.executable)
    sha = "a" * 40
    assert _run_hook(hook, f"{sha} {sha} refs/pull/1/head\n", "[]") == 1
    assert _run_hook(hook, f"{sha} {sha} refs/heads/x\n", "[]") == 0
