"""Runs over HTTP: trigger, list with pagination and filters, detail with jobs, cancel."""

from __future__ import annotations

from tests.integration.api.conftest import Api


def trigger(api: Api, body: dict[str, object], token: str | None = None) -> list[dict[str, object]]:
    response = api.client.post("/api/v1/projects/app/runs", json=body, headers=api.auth(token))
    assert response.status_code == 201, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_trigger_then_detail_with_jobs_and_cancel(api: Api) -> None:
    api.project()
    (run,) = trigger(api, {"workflow": "ci.yml"})
    assert run["status"] == "queued" and run["conclusion"] is None
    assert (
        run["project"] == "app"
        and run["ref"] == "refs/heads/main"
        and run["event"] == "workflow_dispatch"
    )
    detail = api.client.get(f"/api/v1/runs/{run['id']}", headers=api.auth()).json()
    assert [j["job"] for j in detail["jobs"]] == ["build"]  # test waits for build
    job = detail["jobs"][0]
    assert job["status"] == "queued" and job["steps"] == []
    jobs = api.client.get(f"/api/v1/runs/{run['id']}/jobs", headers=api.auth()).json()["items"]
    assert [j["id"] for j in jobs] == [job["id"]]
    one = api.client.get(f"/api/v1/runs/{run['id']}/jobs/{job['id']}", headers=api.auth())
    assert one.status_code == 200 and one.json()["name"] == "build"
    assert (
        api.client.get(f"/api/v1/runs/{run['id']}/jobs/999", headers=api.auth()).status_code == 404
    )
    cancelled = api.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=api.auth())
    assert cancelled.status_code == 200
    assert (
        cancelled.json()["status"] == "completed" and cancelled.json()["conclusion"] == "cancelled"
    )
    after = api.client.get(f"/api/v1/runs/{run['id']}", headers=api.auth()).json()
    assert after["jobs"][0]["conclusion"] == "cancelled"
    assert api.client.get("/api/v1/runs/424242", headers=api.auth()).status_code == 404


def test_an_event_starts_every_workflow_it_triggers(api: Api) -> None:
    api.project()
    runs = trigger(api, {"event": "push"})
    assert [r["workflow_file"] for r in runs] == [".shipline/workflows/ci.yml"]


def test_a_viewer_may_read_but_not_trigger_or_cancel(api: Api) -> None:
    api.project()
    (run,) = trigger(api, {"workflow": "ci.yml"})
    viewer = api.user("vic", "viewer")
    response = api.client.post(
        "/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=api.auth(viewer)
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert (
        api.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=api.auth(viewer)).status_code
        == 403
    )
    assert api.client.get(f"/api/v1/runs/{run['id']}", headers=api.auth(viewer)).status_code == 200
    outsider = api.user("eve")
    assert (
        api.client.get(f"/api/v1/runs/{run['id']}", headers=api.auth(outsider)).status_code == 404
    )
    with api.store.transaction() as tx:
        denied = [a for a in tx.audit.iterate() if a.decision == "denied"]
    assert {a.action for a in denied} >= {"run.trigger", "run.cancel", "run.read"}
    developer = api.user("dev", "developer")
    assert len(trigger(api, {"workflow": "ci.yml"}, developer)) == 1


def test_bad_dispatch_inputs_refs_and_workflows_are_422_or_404_naming_the_field(api: Api) -> None:
    api.project()
    cases = [
        ({"workflow": "deploy.yml", "inputs": {"level": "extreme"}}, 422, "inputs.level"),
        ({"workflow": "deploy.yml"}, 422, "inputs.level"),
        ({"workflow": "deploy.yml", "inputs": {"level": "low", "x": "1"}}, 422, "inputs.x"),
        ({"workflow": "deploy.yml", "inputs": {"level": 3}}, 422, "inputs.level"),
        ({"ref": "no-such-branch"}, 422, "ref"),
        ({"ref": "bad\x00ref"}, 422, "ref"),
        ({"workflow": "nope.yml"}, 404, "workflow"),
        ({"event": "pull_request"}, 422, "event"),
        ({"colour": "red"}, 422, "colour"),
    ]
    for body, status, field in cases:
        response = api.client.post("/api/v1/projects/app/runs", json=body, headers=api.auth())
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["field"] == field, body
    (run,) = trigger(api, {"workflow": "deploy.yml", "inputs": {"level": "high"}})
    assert run["inputs"] == {"level": "high"}


def test_25_runs_walked_page_by_page_newest_first_and_filtered(api: Api) -> None:
    api.project()
    made = [trigger(api, {"workflow": "ci.yml"})[0]["id"] for _ in range(24)]
    made += [r["id"] for r in trigger(api, {"event": "push"})]
    seen: list[object] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/api/v1/projects/app/runs", params=params, headers=api.auth()).json()
        seen += [r["id"] for r in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(made, reverse=True)
    pushes = api.client.get(
        "/api/v1/projects/app/runs", params={"event": "push"}, headers=api.auth()
    ).json()["items"]
    assert [r["id"] for r in pushes] == made[-1:]
    queued = api.client.get(
        "/api/v1/projects/app/runs",
        params={"status": "queued", "branch": "main", "workflow": ".shipline/workflows/ci.yml"},
        headers=api.auth(),
    ).json()["items"]
    assert len(queued) == 20  # the default limit
    for params in ({"cursor": "garbage"}, {"limit": 0}, {"status": "running"}):
        bad = api.client.get("/api/v1/projects/app/runs", params=params, headers=api.auth())
        assert bad.status_code == 422, params
        assert bad.json()["error"]["field"] == next(iter(params))


def test_rerun_over_http(api: Api) -> None:
    api.project()
    (run,) = trigger(api, {"workflow": "ci.yml"})
    early = api.client.post(f"/api/v1/runs/{run['id']}/rerun", json={}, headers=api.auth())
    assert early.status_code == 409  # not completed yet
    assert early.json()["error"]["code"] == "conflict"
    api.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=api.auth())
    again = api.client.post(
        f"/api/v1/runs/{run['id']}/rerun", json={"failed_only": True}, headers=api.auth()
    )
    assert again.status_code == 200, again.text
    assert again.json()["attempt"] == 2 and again.json()["status"] == "queued"
    bad = api.client.post(
        f"/api/v1/runs/{run['id']}/rerun", json={"failed_only": "maybe"}, headers=api.auth()
    )
    assert bad.status_code == 422
