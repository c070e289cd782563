"""A real server on 127.0.0.1 (uvicorn in a thread, the app as `wiring.build_server`
builds it, SQLite in tmp_path) and the real `git` client talking to it."""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shipline.domain.records import RunRecord
from shipline.server.app import create_app
from shipline.server.context import ServerContext
from shipline.settings import Settings
from shipline.store.ports import RunFilter
from shipline.wiring import build_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
    )
    return env


@dataclass
class Clone:
    """A working copy of a hosted repository."""

    path: Path
    env: dict[str, str]

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{result.stderr}")
        return result

    def write(self, path: str, text: str) -> None:
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()


@dataclass
class Hosted:
    """The server, its admin token and helpers to make users and clones."""

    url: str
    context: ServerContext
    admin_token: str
    tmp: Path

    def api(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )

    def project(self, name: str = "app") -> None:
        response = self.api("POST", "/projects", json={"name": name, "repository": "hosted"})
        assert response.status_code == 201, response.text

    def user(self, name: str, role: str | None, project: str = "app") -> str:
        """A user with `role` in `project` and an API token of theirs."""
        assert self.api("POST", "/users", json={"name": name}).status_code == 201
        if role is not None:
            response = self.api("PUT", f"/projects/{project}/members/{name}", json={"role": role})
            assert response.status_code == 200, response.text
        from shipline.domain.records import TokenKind
        from shipline.engine.access import Principal

        with self.context.store.transaction() as tx:
            user = tx.users.get(name)
        assert user is not None
        me = Principal(user.id, user.name, False, 0, TokenKind.USER)
        token, _ = self.context.access.create_token(me, "git", None)
        return token

    def remote(self, user: str, token: str, project: str = "app") -> str:
        host = self.url.removeprefix("http://")
        return f"http://{user}:{token}@{host}/git/{project}.git"

    def clone(self, user: str, token: str, project: str = "app", name: str = "work") -> Clone:
        home = self.tmp / f"home-{name}"
        home.mkdir(exist_ok=True)
        env = git_env(home)
        path = self.tmp / name
        result = subprocess.run(
            ["git", "clone", "-q", self.remote(user, token, project), str(path)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        clone = Clone(path, env)
        clone.git("checkout", "-q", "-B", "main")
        return clone

    def runs(self, project: str = "app") -> list[RunRecord]:
        with self.context.store.transaction(write=False) as tx:
            found = tx.projects.get(project)
            assert found is not None
            return list(reversed(tx.runs.page(RunFilter(project_id=found.id), limit=100).items))

    def wait_runs(self, count: int, project: str = "app", timeout: float = 20) -> list[RunRecord]:
        """The project's runs once there are `count` (pushes start them after the response)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs(project)
            if len(runs) >= count:
                return runs
            time.sleep(0.05)
        raise AssertionError(f"{count} runs expected, found {len(self.runs(project))}")


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Hosted]:
    settings = Settings.with_flags(state_dir=tmp_path / "state", runner_slots=1)
    context, _runner = build_server(settings)  # the runner is not started: runs stay queued
    token = context.access.bootstrap_admin(None)
    assert token is not None
    port = free_port()
    config = uvicorn.Config(
        create_app(context), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield Hosted(f"http://127.0.0.1:{port}", context, token, tmp_path)
    server.should_exit = True
    thread.join(timeout=10)
    context.store.close()
