"""A real Shipline server on 127.0.0.1 for the deployment control plane: `wiring` builds it
as `shipline server` does (store on SQLite or PostgreSQL, git mirrors, embedded runner with
the shell executor, provenance signing), served by uvicorn with the deployment worker; the
deployment controller is `FakeRollouts` (the data plane has its own tests)."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shipline.domain.records import TokenKind, Trust
from shipline.engine.access import Principal
from shipline.engine.deploy_worker import DeploymentWorker
from shipline.engine.embedded import EmbeddedRunner
from shipline.plan.events import Event
from shipline.security.tokens import new_token
from shipline.server.app import create_app
from shipline.server.context import ServerContext
from shipline.settings import Settings
from shipline.testing.fake_rollouts import FakeRollouts
from shipline.wiring import build_deployment_worker, build_server
from tests.contract.store_backends import (
    PG_URL,
    create_pg_database,
    drop_pg_database,
    pg_unavailable,
    unavailable,
)

WORKFLOW = """
on: [push, workflow_dispatch, pull_request]
jobs:
  build:
    runs-on: x
    steps:
      - uses: actions/checkout@v4
      - run: |
          mkdir -p dist
          echo "version $GITHUB_SHA" > dist/version.txt
          if [ -f BROKEN ]; then touch dist/BROKEN; fi
      - uses: actions/upload-artifact@v4
        with: {name: app, path: dist}
  prod:
    needs: build
    runs-on: x
    environment: {name: production, url: "https://prod.example.test"}
    steps:
      - run: echo "key is ${{ secrets.DEPLOY_KEY != '' && 'present' || 'absent' }}"
      - uses: shipline/deploy@v1
        with: {artifact: app}
"""
# Environment files are read whole: a usable target with the rules. The deployment
# controller here is `FakeRollouts`, which does not start the target.
TARGET = "target: {local: {start: ./run}}\ntraffic: {port: 8080}\n"
PRODUCTION = (
    TARGET
    + """
protection:
  reviewers: {roles: [maintainer], required: 1}
  branches: [main]
"""
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def write(repo: Path, path: str, text: str) -> None:
    file = repo / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(textwrap.dedent(text))


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@dataclass
class DeployServer:
    """The running server, its context, an admin token, and helpers over the API."""

    url: str
    context: ServerContext
    runner: EmbeddedRunner
    worker: DeploymentWorker
    rollouts: FakeRollouts
    admin: str
    repo: Path
    state: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {token or self.admin}"},
            timeout=30,
        )

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        with self.http(token) as client:
            return client.request(method, path, **kw)

    def user(self, name: str, role: str, project: str = "app") -> str:
        assert self.call("POST", "/users", json={"name": name}).status_code == 201
        answer = self.call("PUT", f"/projects/{project}/members/{name}", json={"role": role})
        assert answer.status_code == 200, answer.text
        with self.context.store.transaction() as tx:
            user = tx.users.get(name)
        assert user is not None
        me = Principal(user.id, user.name, False, 0, TokenKind.USER)
        token, _ = self.context.access.create_token(me, "test", None)
        self.tokens[name] = token
        return token

    def trigger(self, token: str, ref: str = "main") -> int:
        answer = self.call("POST", "/projects/app/runs", token, json={"ref": ref, "event": "push"})
        assert answer.status_code == 201, answer.text
        return int(answer.json()["items"][0]["id"])

    def trigger_untrusted(self, actor: str, ref: str) -> int:
        with self.context.store.transaction() as tx:
            project = tx.projects.get("app")
        assert project is not None
        repo = self.context.runs.repositories(project)
        repo.fetch()
        full_ref, sha = repo.resolve(ref)
        event = Event(
            name="pull_request",
            ref=full_ref,
            sha=sha,
            repository=project.name,
            actor=actor,
            payload={"action": "opened", "pull_request": {"head": {"sha": sha}}},
        )
        runs = self.context.runs.trigger_event(project, event, trust=Trust.UNTRUSTED, fetch=False)
        return runs[0].id

    def run(self, run_id: int) -> dict[str, Any]:
        answer = self.call("GET", f"/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def job(self, run_id: int, key: str) -> dict[str, Any]:
        for job in self.run(run_id)["jobs"]:
            if job["key"] == key:
                found: dict[str, Any] = job
                return found
        raise AssertionError(f"no job {key} in run {run_id}")

    def wait(self, what: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError("timed out waiting")

    def wait_job(self, run_id: int, key: str, status: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for job in self.run(run_id)["jobs"]:
                if job["key"] == key and job["status"] == status:
                    return job  # type: ignore[no-any-return]
            return None

        return self.wait(found)  # type: ignore[no-any-return]

    def log(self, run_id: int, job_id: int) -> str:
        answer = self.call("GET", f"/runs/{run_id}/jobs/{job_id}/logs")
        assert answer.status_code == 200, answer.text
        return answer.text

    def audit(self, action: str) -> list[dict[str, Any]]:
        answer = self.call("GET", "/audit", params={"action": action, "limit": 100})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


def _serve(server: DeployServer, http: uvicorn.Server, ready: threading.Event) -> None:
    async def main() -> None:
        tasks = [
            asyncio.create_task(http.serve()),
            asyncio.create_task(server.runner.run()),
            asyncio.create_task(server.worker.run()),
        ]
        while not http.started:
            await asyncio.sleep(0.02)
        ready.set()
        while not http.should_exit:
            await asyncio.sleep(0.05)
        await server.runner.stop(5)
        await server.worker.stop(5)
        await asyncio.wait(tasks, timeout=10)

    asyncio.run(main())


def start_server(tmp_path: Path, database_url: str, repo: Path) -> Iterator[DeployServer]:
    state = tmp_path / "state"
    admin = new_token(TokenKind.USER)[0]
    settings = Settings(
        state_dir=state,
        database_url=database_url or f"sqlite:///{state}/shipline.db",
        runner_slots=4,
        admin_token=admin,
        port=0,
    )
    context, runner = build_server(
        settings, host_env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    )
    context.access.bootstrap_admin(admin)
    rollouts = FakeRollouts(delay=0.05)
    worker = build_deployment_worker(settings, context, rollouts)
    worker.poll_interval = 0.05
    config = uvicorn.Config(create_app(context), host="127.0.0.1", port=0, log_level="warning")
    http = uvicorn.Server(config)
    http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    server = DeployServer("", context, runner, worker, rollouts, admin, repo, state)
    ready = threading.Event()
    thread = threading.Thread(target=_serve, args=(server, http, ready), daemon=True)
    thread.start()
    assert ready.wait(20), "the server did not start"
    port = http.servers[0].sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    answer = server.call(
        "POST", "/projects", json={"name": "app", "repository": str(repo), "default_branch": "main"}
    )
    assert answer.status_code == 201, answer.text
    try:
        yield server
    finally:
        http.should_exit = True
        thread.join(30)
        context.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    write(root, ".shipline/workflows/deploy.yml", WORKFLOW)
    write(root, ".shipline/environments/production.yml", PRODUCTION)
    commit(root, "pipeline")
    return root


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path, repo: Path) -> Iterator[DeployServer]:
    """The server on each store backend."""
    if request.param == "sqlite":
        yield from start_server(tmp_path, "", repo)
        return
    reason = pg_unavailable()
    if reason is not None:
        unavailable(reason)
    name = create_pg_database()
    try:
        yield from start_server(tmp_path, PG_URL.format(name=name), repo)
    finally:
        drop_pg_database(name)


@pytest.fixture
def sqlite_server(tmp_path: Path, repo: Path) -> Iterator[DeployServer]:
    """The server on SQLite only (for the refusal cases, which do not touch the store's
    dialect-specific parts)."""
    yield from start_server(tmp_path, "", repo)
