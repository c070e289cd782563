"""Projects over HTTP: who may create, see, change and delete them."""

from __future__ import annotations

from tests.integration.api.conftest import Api


def test_create_show_list_and_delete(api: Api) -> None:
    api.project("app")
    shown = api.client.get("/api/v1/projects/app", headers=api.auth())
    assert shown.status_code == 200
    assert shown.json()["default_branch"] == "main"
    listed = api.client.get("/api/v1/projects", headers=api.auth()).json()
    assert [p["name"] for p in listed["items"]] == ["app"] and listed["next_cursor"] is None
    assert api.client.delete("/api/v1/projects/app", headers=api.auth()).status_code == 204
    assert api.client.get("/api/v1/projects/app", headers=api.auth()).status_code == 404
    with api.store.transaction() as tx:
        actions = [a.action for a in tx.audit.iterate()]
    assert "project.create" in actions and "project.delete" in actions


def test_a_duplicate_name_is_409_and_bad_bodies_are_422_naming_the_field(api: Api) -> None:
    api.project("app")
    again = api.client.post(
        "/api/v1/projects", json={"name": "app", "repository": "/x"}, headers=api.auth()
    )
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "conflict",
        "message": "a project named 'app' exists already",
        "field": "name",
    }
    for body, field in [
        ({"name": "Bad Name", "repository": "/x"}, "name"),
        ({"name": "ok"}, "repository"),
        ({"name": "ok", "repository": "/x", "colour": "red"}, "colour"),
        ({"name": "ok", "repository": "/x", "default_branch": "-x"}, "default_branch"),
    ]:
        response = api.client.post("/api/v1/projects", json=body, headers=api.auth())
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field
        assert response.json()["error"]["code"] == "invalid"
    broken = api.client.post(
        "/api/v1/projects",
        content=b"{not json",
        headers={**api.auth(), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422


def test_unknown_and_hidden_projects_are_both_404(api: Api) -> None:
    api.project("app")
    api.project("secret")
    token = api.user("dev", "developer", project="app")
    mine = api.auth(token)
    assert api.client.get("/api/v1/projects/app", headers=mine).status_code == 200
    hidden = api.client.get("/api/v1/projects/secret", headers=mine)
    unknown = api.client.get("/api/v1/projects/nope", headers=mine)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert api.client.get("/api/v1/projects/secret/runs", headers=mine).status_code == 404
    listed = api.client.get("/api/v1/projects", headers=mine).json()["items"]
    assert [p["name"] for p in listed] == ["app"]
    # Non-admins cannot create projects.
    made = api.client.post(
        "/api/v1/projects", json={"name": "mine", "repository": "/x"}, headers=mine
    )
    assert made.status_code == 403


def test_project_list_pages_for_a_member_of_some(api: Api) -> None:
    for n in range(7):
        api.project(f"p{n}")
    token = api.user("dev", "viewer", project="p1")
    for name in ("p3", "p4", "p6"):
        api.client.put(
            f"/api/v1/projects/{name}/members/dev", json={"role": "viewer"}, headers=api.auth()
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/projects", params=params, headers=api.auth(token)).json()
        seen += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["p6", "p4", "p3", "p1"]


def test_maintainers_set_roles_but_only_admins_grant_admin(api: Api) -> None:
    api.project("app")
    lead = api.auth(api.user("lead", "maintainer"))
    api.user("dev")
    ok = api.client.put(
        "/api/v1/projects/app/members/dev", json={"role": "developer"}, headers=lead
    )
    assert ok.status_code == 200 and ok.json() == {
        "project": "app",
        "user": "dev",
        "role": "developer",
    }
    up = api.client.put("/api/v1/projects/app/members/dev", json={"role": "admin"}, headers=lead)
    assert up.status_code == 403
    bad = api.client.put("/api/v1/projects/app/members/dev", json={"role": "owner"}, headers=lead)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "role"
    nobody = api.client.put(
        "/api/v1/projects/app/members/ghost", json={"role": "viewer"}, headers=lead
    )
    assert nobody.status_code == 404 and nobody.json()["error"]["field"] == "user"
