"""Authentication over HTTP: bearer tokens, login, the caller's tokens."""

from __future__ import annotations

from tests.integration.api.conftest import Api


def test_no_token_or_a_bad_one_is_401_in_the_error_shape_and_audited(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eDp5"}):
        response = api.client.get("/api/v1/projects", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    forged = "shp_u_" + "A" * 43
    assert api.client.get("/api/v1/projects", headers=api.auth(forged)).status_code == 401
    with api.store.transaction() as tx:
        denied = [a for a in tx.audit.iterate() if a.action == "authenticate"]
    assert [a.decision for a in denied] == ["denied"] * 4
    assert {a.reason for a in denied} >= {"missing", "malformed", "unknown"}
    assert all(forged not in str(a) for a in denied)


def test_the_run_endpoints_authenticate_in_their_read_and_audit_a_refusal(api: Api) -> None:
    api.project()
    run = api.client.post(
        "/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=api.auth()
    ).json()["items"][0]
    paths = ["/api/v1/projects/app/runs", f"/api/v1/runs/{run['id']}"]
    for path in paths:
        assert api.client.get(path, headers=api.auth()).status_code == 200
        refused = api.client.get(path, headers=api.auth("shp_u_" + "A" * 43))
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthenticated"
    with api.store.transaction() as tx:
        denied = [a for a in tx.audit.iterate() if a.action == "authenticate"]
    assert [(a.target, a.reason) for a in denied] == [(f"GET {p}", "unknown") for p in paths]


def test_a_token_is_shown_once_listed_without_its_secret_and_refused_once_revoked(
    api: Api,
) -> None:
    created = api.client.post(
        "/api/v1/tokens", json={"name": "ci", "expires_in_days": 7}, headers=api.auth()
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("shp_u_") and body["expires_at"] is not None
    mine = api.auth(body["token"])
    listed = api.client.get("/api/v1/tokens", headers=mine).json()["items"]
    assert {t["name"] for t in listed} == {"bootstrap", "ci"}
    assert body["token"] not in str(listed)
    assert api.client.get("/api/v1/projects", headers=mine).status_code == 200
    assert api.client.delete(f"/api/v1/tokens/{body['id']}", headers=api.auth()).status_code == 204
    refused = api.client.get("/api/v1/projects", headers=mine)
    assert refused.status_code == 401
    assert api.client.delete("/api/v1/tokens/9999", headers=api.auth()).status_code == 404


def test_login_gives_a_session_token_and_repeated_failures_are_throttled(api: Api) -> None:
    made = api.client.post(
        "/api/v1/users", json={"name": "ana", "password": "correct horse"}, headers=api.auth()
    )
    assert made.status_code == 201 and made.json()["is_admin"] is False
    ok = api.client.post("/api/v1/login", json={"name": "ana", "password": "correct horse"})
    assert ok.status_code == 200
    assert api.client.get("/api/v1/tokens", headers=api.auth(ok.json()["token"])).status_code == 200
    codes = [
        api.client.post(
            "/api/v1/login", json={"name": "ana", "password": "wrong guess"}
        ).status_code
        for _ in range(7)
    ]
    assert codes[0] == 401 and codes[-1] == 429
    last = api.client.post("/api/v1/login", json={"name": "ana", "password": "wrong guess"})
    assert last.json()["error"]["code"] == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1


def test_users_are_for_admins(api: Api) -> None:
    api.project()
    token = api.user("vic", "viewer")
    assert api.client.get("/api/v1/users", headers=api.auth(token)).status_code == 403
    names = [u["name"] for u in api.client.get("/api/v1/users", headers=api.auth()).json()["items"]]
    assert names == ["vic", "admin"]
    again = api.client.post("/api/v1/users", json={"name": "vic"}, headers=api.auth())
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
