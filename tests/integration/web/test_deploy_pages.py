"""Approvals and environments on a real server (the deployment control plane as
`tests/integration/deployments` runs it, with `FakeRollouts` as the data plane), through a
browser-like client: approve or reject a waiting deployment, roll back and forward; the
server refuses whoever may not (403 even for a form posted by hand) and forms without the
CSRF token, and audits it all."""

from __future__ import annotations

import re
from typing import Any

import httpx

from shipline.domain.records import TokenKind
from shipline.engine.access import Principal
from tests.integration.deployments.conftest import DeployServer, commit, repo, sqlite_server, write
from tests.integration.web.conftest import PASSWORD, csrf, no_inline_code

__all__ = ["repo", "sqlite_server"]  # the server fixtures, found by pytest through this import


def person(server: DeployServer, name: str, role: str) -> tuple[str, httpx.Client]:
    """A member of project `app` with a password: their API token and a signed-in browser."""
    created = server.call("POST", "/users", json={"name": name, "password": PASSWORD})
    assert created.status_code == 201, created.text
    answer = server.call("PUT", f"/projects/app/members/{name}", json={"role": role})
    assert answer.status_code == 200, answer.text
    with server.context.store.transaction() as tx:
        user = tx.users.get(name)
    assert user is not None
    token, _ = server.context.access.create_token(
        Principal(user.id, user.name, False, 0, TokenKind.USER), "test", None
    )
    browser = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    page = browser.get("/ui/login")
    signed = browser.post(
        "/ui/login", data={"name": name, "password": PASSWORD, "csrf_token": csrf(page.text)}
    )
    assert signed.status_code == 303, signed.text
    return token, browser


def words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def ship(server: DeployServer, alice: str, bob: str) -> int:
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    answer = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert answer.status_code == 200, answer.text
    server.wait_job(run_id, "prod", "completed")
    return run_id


def test_a_waiting_deployment_is_approved_from_the_approvals_page(
    sqlite_server: DeployServer,
) -> None:
    server = sqlite_server
    alice, alice_ui = person(server, "alice", "maintainer")
    _, bob_ui = person(server, "bob", "maintainer")
    _, vic_ui = person(server, "vic", "viewer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")

    page = bob_ui.get("/ui/approvals")
    assert page.status_code == 200
    no_inline_code(page.text)
    text = words(page.text)
    assert "app → production" in text and "Requested by alice" in text
    assert "Approvals 0 of 1" in text and f'href="/ui/runs/{run_id}"' in page.text
    approve = f"/ui/runs/{run_id}/environments/production/approve"

    # the initiator may not review their own deployment: the page says so (no form), and
    # the server refuses a hand-made form with the service's reason; a viewer is told too
    own_page = words(alice_ui.get("/ui/approvals").text)
    assert "Nothing waits for your approval" in own_page
    assert "Not for you to decide" in own_page and "may not review its own" in own_page
    assert "Not for you to decide" not in words(page.text) and "Approve run" in page.text
    vic_page = words(vic_ui.get("/ui/approvals").text)
    assert "Not for you to decide: vic is not one of environment production&#39;s reviewers" in (
        vic_page
    )
    own = alice_ui.post(approve, data={"csrf_token": csrf(alice_ui.get("/ui/approvals").text)})
    assert own.status_code == 403
    assert "may not review its own deployment" in own.text
    # a viewer's hand-made form is refused by the server
    forged = vic_ui.post(approve, data={"csrf_token": csrf(vic_ui.get("/ui/approvals").text)})
    assert forged.status_code == 403
    # without the session's CSRF token nothing happens
    assert bob_ui.post(approve, data={"comment": "x"}).status_code == 403
    assert server.job(run_id, "prod")["status"] == "waiting"

    done = bob_ui.post(approve, data={"csrf_token": csrf(page.text), "comment": "ship <it>"})
    assert done.status_code == 303
    after = bob_ui.get(done.headers["location"])
    assert f"Run {run_id} production approved." in after.text
    assert server.wait_job(run_id, "prod", "completed")["conclusion"] == "success"
    assert "Nothing waits for an approval" in bob_ui.get("/ui/approvals").text

    environments = bob_ui.get("/ui/projects/app/environments")
    text = words(environments.text)
    assert "Current release #1" in text and "Success deploy #1" in text
    decisions = [(e["actor"], e["decision"]) for e in server.audit("deployment.approve")]
    assert sorted(decisions) == [("alice", "denied"), ("bob", "allowed"), ("vic", "denied")]
    assert ("bob", "ship <it>") in [
        (e["actor"], e["reason"]) for e in server.audit("deployment.approve")
    ]


def test_a_rejection_ends_the_job_with_the_reviewers_comment(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    alice, _ = person(server, "alice", "developer")
    _, bob_ui = person(server, "bob", "maintainer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    page = bob_ui.get("/ui/approvals")
    rejected = bob_ui.post(
        f"/ui/runs/{run_id}/environments/production/reject",
        data={"csrf_token": csrf(page.text), "comment": "not on a Friday"},
    )
    assert rejected.status_code == 303
    job = server.wait_job(run_id, "prod", "completed")
    assert job["conclusion"] == "failure"
    assert "rejected by bob: not on a Friday" in (job.get("error") or "")


def _deployment(server: DeployServer, state: str) -> Any:
    def found() -> Any:
        items = server.call("GET", "/projects/app/deployments").json()["items"]
        return items[0] if items and items[0]["state"] == state else None

    return server.wait(found)


def test_an_environment_is_rolled_back_and_forward_from_its_page(
    sqlite_server: DeployServer,
) -> None:
    server = sqlite_server
    alice, _ = person(server, "alice", "developer")
    bob, bob_ui = person(server, "bob", "maintainer")
    _, vic_ui = person(server, "vic", "viewer")
    ship(server, alice, bob)
    write(server.repo, "README", "two\n")
    commit(server.repo, "two")
    ship(server, alice, bob)
    write(server.repo, "BROKEN", "yes\n")
    commit(server.repo, "three, broken")
    ship(server, alice, bob)  # the controller rolls this one back by itself

    page = bob_ui.get("/ui/projects/app/environments")
    assert page.status_code == 200
    no_inline_code(page.text)
    text = words(page.text)
    assert "Current release #2" in text
    assert "Rolled back deploy #3" in text and "health check failed" in text
    assert '<option value="1">release #1' in page.text
    assert "Roll forward" not in text  # nothing newer than the current release ran well
    # the file declares protection only: the page says why it cannot be rolled out as is
    assert ".shipline/environments/production.yml" in text
    assert "Protection 1 approval(s) from role maintainer; not by whoever started" in text
    assert "Health, as the last deployment found it ↶ Rolled back" in text
    # the instances, as the targets report them (FakeRollouts: one per environment)
    assert "Port production-1 ● Running #2 100 % of requests 0" in text

    viewer_page = vic_ui.get("/ui/projects/app/environments")
    assert viewer_page.status_code == 200 and "Roll back production" not in viewer_page.text
    rollback = "/ui/projects/app/environments/production/rollback"
    forged = vic_ui.post(rollback, data={"csrf_token": csrf(vic_ui.get("/ui/tokens").text)})
    assert forged.status_code == 403
    assert bob_ui.post(rollback, data={"release": ""}).status_code == 403  # no CSRF token

    back = bob_ui.post(rollback, data={"csrf_token": csrf(page.text), "release": ""})
    assert back.status_code == 303 and "#env-production" in back.headers["location"]
    done = _deployment(server, "success")
    assert (done["kind"], done["release"]["id"], done["actor"]) == ("rollback", 1, "bob")
    page = bob_ui.get("/ui/projects/app/environments")
    text = words(page.text)
    assert "Current release #1" in text and "Success rollback #1 (was #2)" in text
    assert '<option value="2">release #2' in page.text  # now a roll forward target

    forward = bob_ui.post(
        "/ui/projects/app/environments/production/deploy",
        data={"csrf_token": csrf(page.text), "release": "2"},
    )
    assert forward.status_code == 303
    done = _deployment(server, "success")
    assert (done["kind"], done["release"]["id"]) == ("roll_forward", 2)
    assert "Success roll forward #2" in words(bob_ui.get("/ui/projects/app/environments").text)
    bad = bob_ui.post(
        "/ui/projects/app/environments/production/deploy",
        data={"csrf_token": csrf(page.text), "release": "<x>"},
    )
    assert bad.status_code == 422 and "choose a release" in bad.text
    actions = {(e["actor"], e["decision"]) for e in server.audit("deployment.rollback")}
    assert actions == {("bob", "allowed"), ("vic", "denied")}
