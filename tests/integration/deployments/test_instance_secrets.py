"""An environment's secrets reach its deployment's instances, and only then: the
deployment controller receives them once the environment's gate approved the job and the
release was verified (never before); the delivery is audited with the names only; the
value is in no API answer, job log, audit record or file of the state directory."""

from __future__ import annotations

import json
import secrets

from tests.integration.deployments.conftest import TARGET, DeployServer, commit, write


def test_environment_secrets_reach_the_rollout_after_approval_only(
    sqlite_server: DeployServer,
) -> None:
    server = sqlite_server
    alice = server.user("alice", "maintainer")
    bob = server.user("bob", "maintainer")
    canary = "canary-" + secrets.token_hex(16)
    for name, value, environment in (
        ("CANARY", canary, "production"),
        ("DEPLOY_KEY", "prod-deploy-key-123", "production"),
        ("PROJECT_WIDE", "project-wide-value", ""),
    ):
        answer = server.call(
            "PUT",
            f"/projects/app/secrets/{name}",
            json={"value": value, "environment": environment},
        )
        assert answer.status_code in (200, 201), answer.text
    run_id = server.trigger(alice)
    waiting = server.wait_job(run_id, "prod", "waiting")
    assert server.rollouts.requests == []  # nothing rolls out before the gate
    approved = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert approved.status_code == 200, approved.text
    done = server.wait_job(run_id, "prod", "completed")
    assert done["conclusion"] == "success", done

    [request] = server.rollouts.requests
    # The environment's own secrets, not the project's.
    assert request.secrets == {"CANARY": canary, "DEPLOY_KEY": "prod-deploy-key-123"}
    assert canary not in repr(request)

    [deployment] = server.call(
        "GET", "/projects/app/deployments", params={"environment": "production"}
    ).json()["items"]
    delivered = [
        e for e in server.audit("secret.deliver") if e["target"] == f"deployment:{deployment['id']}"
    ]
    assert [e["data"]["names"] for e in delivered] == [["CANARY", "DEPLOY_KEY"]]

    answers = [
        server.call("GET", "/projects/app/deployments").text,
        server.call("GET", f"/deployments/{deployment['id']}").text,
        server.call("GET", "/audit", params={"limit": 500}).text,
        server.call("GET", "/projects/app/secrets").text,
        json.dumps(server.run(run_id)),
        server.log(run_id, waiting["id"]),
    ]
    assert all(canary not in text for text in answers)
    needle = canary.encode()
    leaked = [p for p in server.state.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert leaked == []


def test_an_untrusted_run_that_may_deploy_gets_no_environment_secrets(
    sqlite_server: DeployServer,
) -> None:
    server = sqlite_server
    write(
        server.repo,
        ".shipline/environments/production.yml",
        TARGET + "protection: {allow_untrusted: true}\n",
    )
    commit(server.repo, "production takes pull requests")
    answer = server.call(
        "PUT",
        "/projects/app/secrets/CANARY",
        json={"value": "canary-" + secrets.token_hex(16), "environment": "production"},
    )
    assert answer.status_code in (200, 201), answer.text
    run_id = server.trigger_untrusted("mallory", "main")
    done = server.wait_job(run_id, "prod", "completed")
    assert done["conclusion"] == "success", done
    [request] = server.rollouts.requests
    assert request.secrets == {}
    [denied] = [e for e in server.audit("secret.deliver") if e["target"].startswith("deployment:")]
    assert denied["decision"] == "denied" and "untrusted" in denied["reason"]
    assert denied["data"]["names"] == ["CANARY"]
