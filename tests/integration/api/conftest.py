"""The API over real services: a SQLite store in tmp_path, a real git repository as the
project's source, `AccessService` and `RunService` as the server wires them."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipline.domain.records import ProjectRecord, TokenKind
from shipline.engine.access import AccessService, Principal
from shipline.engine.service import RunService
from shipline.scm.repository import GitRepository
from shipline.security.keyfiles import SecretsKeySource
from shipline.server.app import create_app
from shipline.server.context import ServerContext
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore
from shipline.store.sql.store import SqlStore
from shipline.testing import FrozenClock
from shipline.wiring import attempt_dir

CI = """
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: ubuntu-latest
        steps: [{run: echo build}]
      test:
        needs: build
        runs-on: ubuntu-latest
        steps: [{run: echo test}]
"""
DEPLOY = """
    on:
      workflow_dispatch:
        inputs:
          level: {type: choice, options: [low, high], required: true}
    jobs:
      go: {runs-on: x, steps: [{run: 'true'}]}
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with `ci.yml` (push, dispatch) and `deploy.yml` (dispatch with a
    required choice input)."""
    repo = tmp_path_factory.mktemp("source")
    (repo / ".shipline" / "workflows").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(CI))
    (repo / ".shipline" / "workflows" / "deploy.yml").write_text(textwrap.dedent(DEPLOY))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


@dataclass
class Api:
    """A test client with the admin's token, and the store behind it."""

    client: TestClient
    store: SqlStore
    access: AccessService
    admin_token: str
    source: Path

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    def project(self, name: str = "app") -> ProjectRecord:
        response = self.client.post(
            "/api/v1/projects",
            json={"name": name, "repository": str(self.source), "default_branch": "main"},
            headers=self.auth(),
        )
        assert response.status_code == 201, response.text
        with self.store.transaction() as tx:
            record = tx.projects.get(name)
        assert record is not None
        return record

    def user(self, name: str, role: str | None = None, project: str = "app") -> str:
        """A user (with `role` in `project` when given) and a token of theirs."""
        response = self.client.post("/api/v1/users", json={"name": name}, headers=self.auth())
        assert response.status_code == 201, response.text
        if role is not None:
            response = self.client.put(
                f"/api/v1/projects/{project}/members/{name}",
                json={"role": role},
                headers=self.auth(),
            )
            assert response.status_code == 200, response.text
        with self.store.transaction() as tx:
            user = tx.users.get(name)
        assert user is not None
        me = Principal(user.id, user.name, False, 0, TokenKind.USER)
        token, _ = self.access.create_token(me, "test", None)
        return token


def build(tmp_path: Path, source: Path) -> tuple[ServerContext, SqlStore, AccessService, str]:
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = FrozenClock()
    access = AccessService(store, clock)
    runs = RunService(
        store, clock, lambda p: GitRepository(p.repository, tmp_path / "mirrors" / str(p.id))
    )
    token = access.bootstrap_admin(None)
    assert token is not None
    blobs = BlobStore(tmp_path / "blobs")
    context = ServerContext(
        store=store,
        clock=clock,
        access=access,
        runs=runs,
        runner_slots=4,
        log_poll_interval=0.02,
        artifacts=lambda run_id, attempt: LocalArtifactStore(
            blobs, attempt_dir(tmp_path, run_id, attempt)
        ),
        caches=LocalCacheStore(blobs, tmp_path / "caches.json").listed,
        keyring=SecretsKeySource(tmp_path).keyring,
    )
    return context, store, access, token


@pytest.fixture
def api(tmp_path: Path, source: Path) -> Iterator[Api]:
    context, store, access, token = build(tmp_path, source)
    with TestClient(create_app(context)) as client:
        yield Api(client, store, access, token, source)
    store.close()
