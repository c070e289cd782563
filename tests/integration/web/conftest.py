"""The dashboard over real services (as `tests/integration/api` builds them): a SQLite
store, a real git repository, the engine's services; a browser-like client that keeps
cookies and sends the forms' CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from shipline.domain.records import StepRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.access import AccessService
from shipline.server.app import create_app
from shipline.server.context import ServerContext
from shipline.store.ports import NewRun
from shipline.store.sql.store import SqlStore
from tests.integration.api.conftest import build, source

__all__ = ["source"]  # the session's repository fixture, found by pytest through this import

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf(html: str) -> str:
    """The first CSRF token of a page's forms."""
    found = _CSRF.search(html)
    assert found is not None, "no form with a CSRF token on this page"
    return found.group(1)


@dataclass
class Web:
    """The app, its store and services, and the admin's API token."""

    context: ServerContext
    store: SqlStore
    access: AccessService
    admin_token: str
    source: Path
    app: object

    def api(self) -> TestClient:
        client = TestClient(self.app)  # type: ignore[arg-type]
        client.headers["Authorization"] = f"Bearer {self.admin_token}"
        return client

    def browser(self, base_url: str = "http://testserver") -> TestClient:
        """A client without credentials that follows no redirects (tests look at them)."""
        return TestClient(self.app, base_url=base_url, follow_redirects=False)  # type: ignore[arg-type]

    def user(self, name: str, *, role: str | None = None, admin: bool = False) -> None:
        """A user with a password (and `role` in project `app` when given)."""
        api = self.api()
        body = {"name": name, "password": PASSWORD, "is_admin": admin}
        assert api.post("/api/v1/users", json=body).status_code == 201
        if role is not None:
            response = api.put(f"/api/v1/projects/app/members/{name}", json={"role": role})
            assert response.status_code == 200, response.text

    def signed_in(self, name: str, base_url: str = "http://testserver") -> TestClient:
        browser = self.browser(base_url)
        page = browser.get("/ui/login")
        response = browser.post(
            "/ui/login",
            data={"name": name, "password": PASSWORD, "csrf_token": csrf(page.text)},
        )
        assert response.status_code == 303, response.text
        return browser

    def project(self, name: str = "app") -> int:
        body = {"name": name, "repository": str(self.source), "default_branch": "main"}
        response = self.api().post("/api/v1/projects", json=body)
        assert response.status_code == 201, response.text
        with self.store.transaction() as tx:
            found = tx.projects.get(name)
        assert found is not None
        return found.id

    def trigger(self, project: str = "app") -> int:
        response = self.api().post(f"/api/v1/projects/{project}/runs", json={"workflow": "ci.yml"})
        assert response.status_code == 201, response.text
        run_id: int = response.json()["items"][0]["id"]
        return run_id

    def seed_run(self, project_id: int, **changes: object) -> int:
        """A run stored directly (for names the repository could not hold)."""
        fields: dict[str, object] = {
            "project_id": project_id,
            "workflow_file": ".shipline/workflows/ci.yml",
            "workflow_name": "CI",
            "workflow_text": "on: push\njobs: {}\n",
            "event": "push",
            "ref": "refs/heads/main",
            "sha": "a" * 40,
            "actor": "alice",
        }
        fields.update(changes)
        with self.store.transaction() as tx:
            return tx.runs.create(NewRun(**fields), now=self.context.clock.now()).id  # type: ignore[arg-type]

    def run_job(
        self, run_id: int, lines: list[str], conclusion: Conclusion = Conclusion.SUCCESS
    ) -> int:
        """Run the run's first queued job as a runner would: start it, one step that writes
        `lines`, finish it (the engine then queues what needs it)."""
        now = self.context.clock.now()
        with self.store.transaction() as tx:
            job = next(j for j in tx.jobs.for_run(run_id) if j.status is Status.QUEUED)
            claimed = tx.jobs.claim("runner", None, lease_seconds=60, now=now)
            assert claimed is not None and claimed.id == job.id
        self.context.runs.job_started(job.id)
        with self.store.transaction() as tx:
            tx.steps.upsert(
                StepRecord(job.id, 0, "s0", "Say things", Status.IN_PROGRESS, started_at=now)
            )
            tx.logs.append(job.id, 0, "".join(f"{line}\n" for line in lines).encode(), 0)
            tx.steps.upsert(
                StepRecord(job.id, 0, "s0", "Say things", Status.COMPLETED, conclusion, 0, now, now)
            )
        self.context.runs.job_finished(job.id, conclusion)
        return job.id

    def status(self, run_id: int) -> tuple[Status, Conclusion | None]:
        with self.store.transaction() as tx:
            run = tx.runs.get(run_id)
        assert run is not None
        return run.status, run.conclusion

    def audit_actions(self) -> list[tuple[str, str, str]]:
        with self.store.transaction() as tx:
            return [(r.actor, r.action, r.decision) for r in tx.audit.iterate()]


@pytest.fixture
def web(tmp_path: Path, source: Path) -> Iterator[Web]:
    context, store, access, token = build(tmp_path, source)
    app = create_app(context)
    with TestClient(app):  # runs the app's startup
        yield Web(context, store, access, token, source, app)
    store.close()


def no_inline_code(html: str) -> None:
    """What the CSP would block must not be there at all: inline scripts, style elements
    and attributes, inline event handlers, `javascript:` links. (Only real tags count:
    escaped text that reads like one is inert, which other tests check.)"""
    tags = re.findall(r"<[a-zA-Z][^<>]*>", html)
    for tag in tags:
        assert not re.match(r"<script\b(?![^>]*\bsrc=)", tag), f"inline script: {tag}"
        assert not re.match(r"<style\b", tag), f"style element: {tag}"
        assert not re.search(r"\sstyle\s*=", tag), f"style attribute: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", tag), f"event handler: {tag}"
        assert not re.search(r"=\s*[\"']?\s*javascript:", tag, re.I), f"javascript link: {tag}"


def follow(response: httpx.Response) -> str:
    return response.headers["location"]
