"""Deployments in a real browser: a reviewer approves a waiting production deployment from
the approvals page, rolls production back from the environments page, and an admin then
finds both actions in the audit log. The server is the deployment control plane as
`tests/integration/deployments` runs it (real runner, store, git and provenance; the data
plane is `FakeRollouts`, which has its own tests)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, PASSWORD
from tests.browser.test_dashboard import WIDER_THAN_SCREEN
from tests.integration.deployments.conftest import (
    DeployServer,
    commit,
    repo,
    start_server,
    write,
)

__all__ = ["repo"]  # the repository fixture, found by pytest through this import

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT = 60_000
WORKFLOW = """
on: [push, workflow_dispatch]
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
  staging:
    needs: build
    runs-on: x
    environment: staging
    steps:
      - uses: shipline/deploy@v1
        with: {artifact: app}
  prod:
    needs: build
    runs-on: x
    environment: production
    steps:
      - uses: shipline/deploy@v1
        with: {artifact: app}
"""


STAGING = """
description: Every commit of main, two instances.
target:
  local: {instances: 2, start: python3 app.py, ports: 9200-9299}
strategy: {rolling: {batch_size: 1}}
health: {http: {path: /healthz, status: 200}}
traffic: {port: 8081}
protection: {}
"""
PRODUCTION = """
description: The shop, four instances behind the router on port 8080.
url: https://shop.example.test
target:
  local: {instances: 4, start: python3 app.py, ports: 9100-9199}
strategy:
  canary: {weights: [10, 50, 100], bake: 2m}
health: {http: {path: /healthz, status: 200}, unhealthy_threshold: 3}
traffic: {port: 8080}
rollback: {automatic: true, on: [hooks, health, analysis]}
protection:
  reviewers: {roles: [maintainer], required: 1}
  branches: [main]
"""


@pytest.fixture
def deploy_site(tmp_path: Path, repo: Path) -> Iterator[DeployServer]:
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    write(repo, ".shipline/workflows/deploy.yml", WORKFLOW)
    write(repo, ".shipline/environments/staging.yml", STAGING)
    write(repo, ".shipline/environments/production.yml", PRODUCTION)
    commit(repo, "staging, then production")
    yield from start_server(tmp_path, "", repo)


def member(server: DeployServer, name: str, role: str | None, *, admin: bool = False) -> str:
    """A user with a password (and `role` in `app`), and an API token of theirs."""
    body = {"name": name, "password": PASSWORD, "is_admin": admin}
    assert server.call("POST", "/users", json=body).status_code == 201
    if role is not None:
        answer = server.call("PUT", f"/projects/app/members/{name}", json={"role": role})
        assert answer.status_code == 200, answer.text
    from shipline.domain.records import TokenKind
    from shipline.engine.access import Principal

    with server.context.store.transaction() as tx:
        user = tx.users.get(name)
    assert user is not None
    me = Principal(user.id, user.name, admin, 0, TokenKind.USER)
    return server.context.access.create_token(me, "test", None)[0]


def ship(server: DeployServer, author: str, reviewer: str) -> int:
    run_id = server.trigger(author)
    server.wait_job(run_id, "prod", "waiting")
    url = f"/runs/{run_id}/environments/production/approve"
    assert server.call("POST", url, reviewer, json={}).status_code == 200
    server.wait_job(run_id, "prod", "completed")
    return run_id


def sign_in(page: Any, url: str, name: str) -> None:
    page.goto(f"{url}/ui/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/")


def test_approve_a_deployment_roll_back_and_find_both_in_the_audit_log(
    deploy_site: DeployServer, browser_page: Any, shots: Path
) -> None:
    server, page = deploy_site, browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    alice = member(server, "alice", "developer")
    bob = member(server, "bob", "maintainer")
    member(server, "root", None, admin=True)

    # two good releases reach production, a third (broken) one is rolled back by itself
    ship(server, alice, bob)
    write(server.repo, "README", "two\n")
    commit(server.repo, "two")
    ship(server, alice, bob)
    write(server.repo, "BROKEN", "yes\n")
    commit(server.repo, "three, broken")
    ship(server, alice, bob)
    (server.repo / "BROKEN").unlink()
    write(server.repo, "README", "four\n")
    commit(server.repo, "four, fixed")
    waiting = server.trigger(alice)
    server.wait_job(waiting, "prod", "waiting")

    # bob approves the waiting deployment from the approvals page
    sign_in(page, server.url, "bob")
    page.get_by_role("link", name="Approvals").click()
    card = page.locator("li.approval", has_text="production")
    card.get_by_text("Requested by").wait_for()
    assert "alice" in card.inner_text()
    card.get_by_label("Comment (optional)").fill("release four, checked on staging")
    page.screenshot(path=str(shots / "approvals.png"), full_page=True)
    card.get_by_role("button", name=re.compile(r"^Approve run")).click()
    page.get_by_role("status").get_by_text("production approved").wait_for()
    server.wait_job(waiting, "prod", "completed")
    assert server.job(waiting, "prod")["conclusion"] == "success"

    # ... then rolls production back to the release before from the environments page
    page.goto(f"{server.url}/ui/projects/app")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Environments").click()
    production = page.locator("section#env-production")
    assert "Current release #4" in re.sub(r"\s+", " ", production.inner_text())
    production.get_by_label("Roll back to").select_option(value="2")
    production.get_by_role("button", name="Roll back production").click()
    page.get_by_role("status").get_by_text("queued").wait_for()

    def rolled_back() -> bool:
        items = server.call("GET", "/projects/app/deployments").json()["items"]
        return bool(items) and items[0]["kind"] == "rollback" and items[0]["state"] == "success"

    server.wait(rolled_back)
    page.reload()
    production = page.locator("section#env-production")
    production.get_by_text("Targets and rules").click()
    production.get_by_text("local processes: 4 instances of `python3 app.py`").wait_for()
    text = re.sub(r"\s+", " ", production.inner_text())
    assert "Current release #2" in text
    assert "canary, weights 10 % → 50 % → 100 %, bake 120 s" in text, text
    assert re.search(r"Success\s+rollback\s+#2 \(was #4\)", text), text
    assert re.search(r"Rolled back\s+deploy\s+#3", text), text
    page.evaluate("document.activeElement.blur()")
    shot = shots / "environments.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SHIPLINE_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, DOCS / "environments.png")

    # an admin sees both actions in the audit log
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server.url, "root")
    page.get_by_role("link", name="Audit log").click()
    rows = page.locator("table.audit tbody tr")
    # (bob approved the earlier runs through the API: the page's one carries the comment)
    for action, text in (
        ("deployment.approve", "release four, checked on staging"),
        ("deployment.rollback", "bob"),
    ):
        page.get_by_label("Action").fill(action)
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(rf"action={re.escape(action)}"))
        mine = rows.filter(has_text=action).filter(has_text="bob").filter(has_text=text)
        assert mine.count() == 1 and "allowed" in mine.inner_text(), action
    page.get_by_role("link", name="Verify the hash chain").click()
    page.get_by_text("The hash chain verifies").wait_for()
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    page.goto(f"{server.url}/ui/projects/app")
    figures = re.sub(r"\s+", " ", page.locator("dl.figures").inner_text())
    assert "3 of 4 changes failed" not in figures and "not restored yet" not in figures
    assert re.search(r"Change failure rate (\d+) %", figures), figures
    page.screenshot(path=str(shots / "project-overview.png"), full_page=True)

    # the new pages fit a phone's screen (wide tables scroll inside their box)
    page.set_viewport_size({"width": 380, "height": 800})
    for url in (
        "/ui/approvals",
        "/ui/projects/app",
        "/ui/projects/app/environments",
        "/ui/projects/app/secrets",
        "/ui/projects/app/deliveries",
        "/ui/runners",
    ):
        page.goto(f"{server.url}{url}")
        wide = page.evaluate("document.documentElement.scrollWidth")
        culprits = page.evaluate(WIDER_THAN_SCREEN)
        assert wide <= 381, f"{url} is {wide}px wide on a 380px screen: {culprits}"
    page.screenshot(path=str(shots / "environments-narrow.png"), full_page=True)
    assert problems == []
