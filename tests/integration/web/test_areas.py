"""Tokens, users, the audit log, artifacts and the live streams of the dashboard."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

from shipline.domain.status import Conclusion
from tests.integration.web.conftest import PASSWORD, Web, csrf, no_inline_code


def sse(body: str) -> list[tuple[str, dict[str, object]]]:
    found = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_a_new_token_is_shown_once_works_and_can_be_revoked(web: Web) -> None:
    web.user("dev")
    browser = web.signed_in("dev")
    page = browser.get("/ui/tokens")
    assert "this session" in page.text
    created = browser.post(
        "/ui/tokens",
        data={"csrf_token": csrf(page.text), "name": "laptop <cli>", "expires_in_days": "30"},
    )
    assert created.status_code == 201
    no_inline_code(created.text)
    token = re.search(r'id="new-token" class="secret" readonly value="(shp_u_[^"]+)"', created.text)
    assert token is not None
    assert "laptop &lt;cli&gt;" in created.text
    plaintext = token.group(1)
    api = web.api()
    auth = {"Authorization": f"Bearer {plaintext}"}
    assert api.get("/api/v1/tokens", headers=auth).status_code == 200
    again = browser.get("/ui/tokens")
    assert plaintext not in again.text and "laptop &lt;cli&gt;" in again.text
    token_id = api.get("/api/v1/tokens", headers=auth).json()["items"][0]["id"]
    revoked = browser.post(f"/ui/tokens/{token_id}/revoke", data={"csrf_token": csrf(again.text)})
    assert revoked.status_code == 303
    assert api.get("/api/v1/tokens", headers=auth).status_code == 401
    bad = browser.post(
        "/ui/tokens",
        data={"csrf_token": csrf(again.text), "name": "x", "expires_in_days": "-1"},
    )
    assert bad.status_code == 422 and "expiry is a number of days" in bad.text


def test_someone_elses_token_cannot_be_revoked_from_the_dashboard(web: Web) -> None:
    web.user("dev")
    web.user("eve")
    victim = web.api().get("/api/v1/tokens").json()["items"][0]["id"]  # the admin's token
    eve = web.signed_in("eve")
    response = eve.post(
        f"/ui/tokens/{victim}/revoke", data={"csrf_token": csrf(eve.get("/ui/tokens").text)}
    )
    assert response.status_code == 404
    assert web.api().get("/api/v1/tokens").status_code == 200


def test_admins_list_and_create_users(web: Web) -> None:
    web.user("boss", admin=True)
    browser = web.signed_in("boss")
    page = browser.get("/ui/users")
    assert page.status_code == 200 and ">Users<" in page.text
    no_inline_code(page.text)
    response = browser.post(
        "/ui/users",
        data={
            "csrf_token": csrf(page.text),
            "name": "newbie",
            "password": PASSWORD,
            "is_admin": "",
        },
    )
    assert response.status_code == 303
    listed = browser.get("/ui/users").text
    assert "newbie" in listed
    assert web.signed_in("newbie").get("/ui/").status_code == 200
    duplicate = browser.post(
        "/ui/users", data={"csrf_token": csrf(listed), "name": "newbie", "password": PASSWORD}
    )
    assert duplicate.status_code == 409 and "exists already" in duplicate.text


def test_the_audit_log_filters_and_verifies_its_chain(web: Web) -> None:
    web.project()
    web.project("other")
    web.user("boss", admin=True)
    browser = web.signed_in("boss")
    page = browser.get("/ui/audit")
    assert page.status_code == 200
    no_inline_code(page.text)
    assert "user.login" in page.text and "project.create" in page.text
    only = browser.get("/ui/audit", params={"action": "project.create"}).text
    assert "<code>user.login</code>" not in only and only.count("<code>project.create</code>") == 2
    one = browser.get("/ui/audit", params={"project": "other"}).text
    assert one.count("<code>project.create</code>") == 1
    verified = browser.get("/ui/audit", params={"verify": "1"}).text
    assert "The hash chain verifies" in verified
    from sqlalchemy import text

    with web.store.engine.begin() as conn:  # tamper with a record behind the server's back
        conn.execute(text("UPDATE audit_events SET actor = 'nobody' WHERE id = 2"))
    broken = browser.get("/ui/audit", params={"verify": "1"}).text
    assert "The hash chain is broken at record 2" in broken


def test_artifacts_page_lists_none_for_a_run_without(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.user("viewer", role="viewer")
    page = web.signed_in("viewer").get(f"/ui/runs/{run_id}/artifacts")
    assert page.status_code == 200 and "This run uploaded no artifacts." in page.text
    missing = web.signed_in("viewer").get(f"/ui/runs/{run_id}/artifacts/nope/zip")
    assert missing.status_code == 404


def test_the_run_stream_sends_states_then_ends(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.run_job(run_id, ["one"])
    web.run_job(run_id, ["two"], Conclusion.FAILURE)
    web.user("viewer", role="viewer")
    browser = web.signed_in("viewer")
    response = browser.get(f"/ui/runs/{run_id}/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    assert [e for e, _ in events] == ["update", "end"]
    update = events[0][1]
    assert update["run"] == {
        "live": "run",
        "badge": {"key": "failure", "icon": "✗", "text": "Failed"},
        "duration": update["run"]["duration"],  # type: ignore[index]
    }
    jobs = update["jobs"]
    assert isinstance(jobs, list)
    assert [(j["live"], j["badge"]["text"]) for j in jobs] == [
        ("job:build", "Success"),
        ("job:test", "Failed"),
    ]
    assert jobs[1]["steps"][0]["name"] == "Say things"


def test_the_log_stream_numbers_lines_on_and_resumes(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    job_id = web.run_job(run_id, ["\x1b[31mred\x1b[0m <i>x</i>", "second"])
    web.user("viewer", role="viewer")
    browser = web.signed_in("viewer")
    url = f"/ui/runs/{run_id}/jobs/{job_id}/log/events"
    events = sse(browser.get(url, params={"after": -1, "line": 1}).text)
    assert events[0] == (
        "lines",
        {
            "step": 0,
            "lines": [
                {"n": 1, "segs": [["ansi-fg-red", "red"], ["", " <i>x</i>"]]},
                {"n": 2, "segs": [["", "second"]]},
            ],
        },
    )
    assert events[-1] == ("end", {"badge": {"key": "success", "icon": "✓", "text": "Success"}})
    resumed = sse(browser.get(url, headers={"Last-Event-ID": "0.2"}).text)
    assert [e for e, _ in resumed] == ["end"]
    assert browser.get(f"/ui/runs/{run_id}/jobs/999/log/events").status_code == 404


def test_artifacts_are_listed_with_digests_and_downloaded(web: Web, tmp_path: Path) -> None:
    web.project()
    run_id = web.trigger()
    assert web.context.artifacts is not None
    wheel = tmp_path / "app.whl"
    wheel.write_bytes(b"wheel bytes")
    notes = tmp_path / "NOTES.txt"
    notes.write_text("<script>notes</script>\n")
    web.context.artifacts(run_id, 1).put(
        "dist", "build", [("app.whl", wheel), ("docs/<b>.txt", notes)]
    )
    web.user("viewer", role="viewer")
    browser = web.signed_in("viewer")
    page = browser.get(f"/ui/runs/{run_id}/artifacts")
    assert page.status_code == 200
    no_inline_code(page.text)
    assert hashlib.sha256(b"wheel bytes").hexdigest() in page.text
    assert "docs/&lt;b&gt;.txt" in page.text and "<b>.txt" not in page.text
    archive = browser.get(f"/ui/runs/{run_id}/artifacts/dist/zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert sorted(z.namelist()) == ["app.whl", "docs/<b>.txt"]
    one = browser.get(f"/ui/runs/{run_id}/artifacts/dist/files/docs/<b>.txt")
    assert one.content == b"<script>notes</script>\n"
    assert one.headers["content-disposition"].startswith("attachment")
    assert one.headers["x-content-type-options"] == "nosniff"
    assert web.browser().get(f"/ui/runs/{run_id}/artifacts/dist/zip").status_code == 303
