"""Probes, metrics, request ids, the audit endpoint and the 500 shape."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from shipline.server.app import create_app
from tests.integration.api.conftest import Api, build


def test_probes_answer_without_credentials(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Path, source: Path) -> None:
    context, store, _, _ = build(tmp_path, source)
    with TestClient(create_app(context)) as client:
        store.close()
        (tmp_path / "db.sqlite").unlink()
        (tmp_path / "db.sqlite").mkdir()  # no database can be opened there any more
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_metrics_report_runs_jobs_queue_slots_and_request_durations(api: Api) -> None:
    api.project()
    api.client.post("/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=api.auth())
    text = api.client.get("/metrics").text
    assert 'shipline_runs{status="queued"} 1.0' in text
    assert 'shipline_jobs{status="queued"} 1.0' in text
    assert "shipline_queue_depth 1.0" in text
    assert "shipline_runner_slots 4.0" in text
    assert "shipline_runner_slots_busy 0.0" in text
    assert 'route="/api/v1/projects/{project}/runs"' in text
    assert "shipline_http_request_duration_seconds_bucket" in text
    services = api.client.app.state.services  # type: ignore[attr-defined]
    for listener in services.context.job_listeners:  # a job of 42 s ends
        listener("success", 42.0)
    text = api.client.get("/metrics").text
    assert 'shipline_job_duration_seconds_bucket{conclusion="success",le="60.0"} 1.0' in text
    assert 'shipline_job_duration_seconds_bucket{conclusion="success",le="30.0"} 0.0' in text


def test_request_ids_are_honoured_or_made_and_audited(api: Api) -> None:
    given = api.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"
    made = api.client.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert made.headers["X-Request-Id"] not in ("", "bad id\twith tab")
    api.client.post(
        "/api/v1/projects",
        json={"name": "app", "repository": "/x"},
        headers={**api.auth(), "X-Request-Id": "req-7"},
    )
    with api.store.transaction() as tx:
        (record,) = tx.audit.page(action="project.create").items
    assert record.request_id == "req-7"


def test_audit_is_for_admins_filtered_and_read_only(api: Api) -> None:
    api.project("app")
    api.project("other")
    page = api.client.get(
        "/api/v1/audit", params={"project": "app", "limit": 5}, headers=api.auth()
    ).json()
    assert [a["action"] for a in page["items"]] == ["project.create"]
    assert page["items"][0]["hash"]
    creations = api.client.get(
        "/api/v1/audit", params={"action": "project.create"}, headers=api.auth()
    ).json()["items"]
    assert [a["target"] for a in creations] == ["other", "app"]
    viewer = api.user("vic", "viewer")
    assert api.client.get("/api/v1/audit", headers=api.auth(viewer)).status_code == 403
    for method in ("PUT", "PATCH", "DELETE"):
        response = api.client.request(method, "/api/v1/audit", headers=api.auth())
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_unexpected_error_is_a_bare_500_without_traceback(tmp_path: Path, source: Path) -> None:
    context, store, _, token = build(tmp_path, source)
    app = create_app(context)

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("secret-value-in-message")

    context.access.list_tokens = broken  # type: ignore[method-assign]
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(
            "/api/v1/tokens", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "r1"}
        )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "Traceback" not in response.text and "secret-value" not in response.text
    assert response.headers["X-Request-Id"] == "r1"
    store.close()


def test_error_bodies_never_hold_a_traceback(api: Api) -> None:
    for method, url, body in [
        ("GET", "/api/v1/runs/abc", None),
        ("GET", "/api/v1/nowhere", None),
        ("POST", "/api/v1/projects", {"name": 1}),
        ("GET", "/api/v1/runs/99999999999999999999999", None),
    ]:
        response = api.client.request(method, url, json=body, headers=api.auth())
        assert response.status_code in (404, 422), url
        assert set(response.json()) == {"error"} and "Traceback" not in response.text
