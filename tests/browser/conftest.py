"""A real `shipline server` on a free port with a project, a developer who signs in with a
password, and Playwright driving Debian's Chromium (`/usr/bin/chromium`; a browser is never
downloaded: `scripts/test` installs the `chromium` package)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shipline.domain.records import TokenKind
from shipline.security.tokens import new_token
from tests.e2e.conftest import Repo
from tests.e2e.test_server import Server, free_port

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery"

WORKFLOW = """
    name: CI
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: local
        steps:
          - name: Compile
            run: |
              printf '\\033[1;32mcompiled\\033[0m 12 modules\\n'
              printf '\\033[33mwarning\\033[0m: 1 deprecated call in \\033[4msrc/app.py\\033[24m:42\\n'
              echo 'hostile: <script>window.pwned=1</script> <img src=x onerror="window.pwned=2">'
              printf 'link: \\033]8;;javascript:window.pwned=3\\007click\\033]8;;\\007\\n'
      test:
        needs: build
        runs-on: local
        steps:
          - name: Wait for the release
            run: |
              echo waiting
              printf 'test_api.py::test_health \\033[32mPASSED\\033[0m\\n'
              printf 'test_api.py::test_orders \\033[32mPASSED\\033[0m\\n'
              until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.05; done
              echo released
      package:
        needs: test
        runs-on: local
        steps: [{{run: echo packaged}}]
"""


class Release:
    """What the `test` job waits for: someone listening on `port` (a port, not a file: in
    the sandbox the test's files are not visible, while a trusted run has the network)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sockets: list[socket.socket] = []

    def touch(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.sockets.append(listener)

    def close(self) -> None:
        for listener in self.sockets:
            listener.close()


@dataclass
class Site:
    server: Server
    url: str
    admin: dict[str, str]
    release: Release

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=self.admin, timeout=30, **kwargs
        )  # type: ignore[arg-type]

    def trigger(self) -> int:
        response = self.api("POST", "/projects/web/runs", json={"workflow": "ci.yml"})
        assert response.status_code == 201, response.text
        run_id: int = response.json()["items"][0]["id"]
        return run_id


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    release = Release()
    repo = Repo(tmp_path / "repo")
    repo.write(".shipline/workflows/ci.yml", WORKFLOW.format(port=release.port))
    repo.commit("pipeline")
    token = new_token(TokenKind.USER)[0]
    server = Server(tmp_path / "state", {"SHIPLINE_ADMIN_TOKEN": token})
    try:
        found = Site(server, server.url, {"Authorization": f"Bearer {token}"}, release)
        body = {"name": "web", "repository": str(repo.root), "default_branch": "main"}
        assert found.api("POST", "/projects", json=body).status_code == 201
        user = {"name": "alice", "password": PASSWORD}
        assert found.api("POST", "/users", json=user).status_code == 201
        role = found.api("PUT", "/projects/web/members/alice", json={"role": "developer"})
        assert role.status_code == 200
        yield found
    finally:
        server.kill()
        release.close()


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Where a test saves its screenshots (test output, kept after the run):
    `$SHIPLINE_TEST_OUTPUT/screenshots/<test>`, by default under `test-output/`."""
    base = Path(os.environ.get("SHIPLINE_TEST_OUTPUT", ROOT / "test-output"))
    folder = base / "screenshots" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"] if os.geteuid() == 0 else []
        )
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()
            browser.close()
