"""Secrets through the API: write-only values, roles, scopes, audit records without values."""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import stat

from tests.integration.api.conftest import Api


def canary() -> str:
    return "canary-" + pysecrets.token_hex(32)


def test_values_are_write_only_and_never_in_any_response(api: Api, tmp_path: object) -> None:
    api.project()
    value = canary()
    put = api.client.put(
        "/api/v1/projects/app/secrets/deploy_key", json={"value": value}, headers=api.auth()
    )
    assert put.status_code == 201, put.text
    assert put.json()["name"] == "DEPLOY_KEY"
    assert value not in put.text
    again = api.client.put(
        "/api/v1/projects/app/secrets/DEPLOY_KEY",
        json={"value": canary(), "environment": "production"},
        headers=api.auth(),
    )
    assert again.status_code == 201
    replaced = api.client.put(
        "/api/v1/projects/app/secrets/DEPLOY_KEY", json={"value": canary()}, headers=api.auth()
    )
    assert replaced.status_code == 200
    listed = api.client.get("/api/v1/projects/app/secrets", headers=api.auth())
    assert listed.status_code == 200
    assert [(s["name"], s["environment"]) for s in listed.json()["items"]] == [
        ("DEPLOY_KEY", ""),
        ("DEPLOY_KEY", "production"),
    ]
    assert all(
        set(s) == {"name", "environment", "updated_by", "created_at", "updated_at"}
        for s in listed.json()["items"]
    )
    assert (
        api.client.get("/api/v1/projects/app/secrets/DEPLOY_KEY", headers=api.auth()).status_code
        == 405
    )
    audit = api.client.get("/api/v1/audit", params={"limit": 200}, headers=api.auth())
    assert value not in audit.text
    actions = [e["action"] for e in audit.json()["items"]]
    assert actions.count("secret.set") == 3
    # The database never holds the value in clear.
    db = (tmp_path / "db.sqlite").read_bytes()  # type: ignore[operator]
    assert value.encode() not in db
    key = tmp_path / "secrets.key"  # type: ignore[operator]
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_short_values_and_bad_names_are_refused_with_a_reason(api: Api) -> None:
    api.project()
    short = api.client.put(
        "/api/v1/projects/app/secrets/PIN", json={"value": "dev"}, headers=api.auth()
    )
    assert short.status_code == 422
    error = short.json()["error"]
    assert error["field"] == "value"
    assert "at least 4 characters" in error["message"]
    assert "masked" in error["message"]
    for bad in ("GITHUB_TOKEN", "1ABC", "has-dash"):
        response = api.client.put(
            f"/api/v1/projects/app/secrets/{bad}", json={"value": canary()}, headers=api.auth()
        )
        assert response.status_code == 422, bad
        assert response.json()["error"]["field"] == "name"
    extra = api.client.put(
        "/api/v1/projects/app/secrets/OK", json={"value": canary(), "x": 1}, headers=api.auth()
    )
    assert extra.status_code == 422


def test_short_values_and_common_words_are_kept_with_a_warning(api: Api) -> None:
    """Case 14: values of 4-7 characters and common words mask poorly; they are stored
    (and masked) with a warning, which the audit record notes without the value."""
    api.project()
    for name, value, says in (
        ("PIN", "4821", "fewer than 8 characters"),
        ("WORD", "Password", "common word"),
    ):
        response = api.client.put(
            f"/api/v1/projects/app/secrets/{name}", json={"value": value}, headers=api.auth()
        )
        assert response.status_code == 201
        warnings = response.json()["warnings"]
        assert len(warnings) == 1 and says in warnings[0]
        assert value not in response.text
    strong = api.client.put(
        "/api/v1/projects/app/secrets/TOKEN", json={"value": canary()}, headers=api.auth()
    )
    assert strong.status_code == 201 and strong.json()["warnings"] == []
    events = api.client.get("/api/v1/audit?action=secret.set", headers=api.auth()).json()
    weak = {e["data"]["name"]: e["data"]["weak"] for e in events["items"]}
    assert weak == {"PIN": True, "WORD": True, "TOKEN": False}
    # hashes, request ids and times are random hex and digits: look at the rest
    random_fields = ("at", "request_id", "prev_hash", "hash")
    said = [{k: v for k, v in e.items() if k not in random_fields} for e in events["items"]]
    assert "4821" not in str(said)


def test_roles_developers_list_maintainers_change_others_see_nothing(api: Api) -> None:
    api.project()
    dev = api.user("dev", "developer")
    maint = api.user("maint", "maintainer")
    outsider = api.user("eve")
    value = canary()
    denied = api.client.put(
        "/api/v1/projects/app/secrets/K1", json={"value": value}, headers=api.auth(dev)
    )
    assert denied.status_code == 403
    assert (
        api.client.put(
            "/api/v1/projects/app/secrets/K1", json={"value": value}, headers=api.auth(maint)
        ).status_code
        == 201
    )
    assert api.client.get("/api/v1/projects/app/secrets", headers=api.auth(dev)).status_code == 200
    hidden = api.client.get("/api/v1/projects/app/secrets", headers=api.auth(outsider))
    assert hidden.status_code == 404
    assert (
        api.client.delete("/api/v1/projects/app/secrets/K1", headers=api.auth(dev)).status_code
        == 403
    )
    assert (
        api.client.delete("/api/v1/projects/app/secrets/K1", headers=api.auth(maint)).status_code
        == 204
    )
    assert (
        api.client.delete("/api/v1/projects/app/secrets/K1", headers=api.auth(maint)).status_code
        == 404
    )
    audit = api.client.get("/api/v1/audit", params={"limit": 200}, headers=api.auth()).json()[
        "items"
    ]
    denials = [e for e in audit if e["decision"] == "denied" and e["action"].startswith("secret.")]
    assert {e["action"] for e in denials} >= {"secret.set", "secret.delete", "secret.list"}
    assert value not in json.dumps(audit)
