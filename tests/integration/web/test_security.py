"""The dashboard's defences: sessions, CSRF, permissions checked on the server, and output
escaping of everything a repository or a job's output can put on a page."""

from __future__ import annotations

import re

from shipline.domain.status import Conclusion, Status
from tests.integration.web.conftest import PASSWORD, Web, csrf, no_inline_code

SCRIPT = "<script>alert(1)</script>"
EVIL_LOG = [
    f"before {SCRIPT} after",
    "\x1b]8;;javascript:alert(2)\x07click me\x1b]8;;\x07",
    "\x1b[2J\x1b[1;1Hcursor moved\x1b[?25l",
    "\x1b]0;window title\x07visible",
    "progress 10%\rprogress 100%",
    '<img src=x onerror="alert(3)"> & "quotes"',
    "trojan \u202egnirts\u202c source",
    "\x1b[31m<b>red markup</b>\x1b[0m",
]


def test_signing_in_sets_a_session_cookie_scripts_cannot_read(web: Web) -> None:
    web.user("dev")
    browser = web.browser()
    form = browser.get("/ui/login")
    assert form.status_code == 200
    no_inline_code(form.text)
    response = browser.post(
        "/ui/login",
        data={"name": "dev", "password": PASSWORD, "csrf_token": csrf(form.text)},
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("shipline_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert browser.get("/ui/").status_code == 200


def test_behind_tls_the_session_cookie_is_secure(web: Web) -> None:
    web.user("dev")
    browser = web.browser("https://testserver")
    form = browser.get("/ui/login")
    response = browser.post(
        "/ui/login",
        data={"name": "dev", "password": PASSWORD, "csrf_token": csrf(form.text)},
    )
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("shipline_session=")
    )
    assert "Secure" in cookie


def test_a_wrong_password_is_refused_on_the_form_and_audited(web: Web) -> None:
    web.user("dev")
    browser = web.browser()
    form = browser.get("/ui/login")
    response = browser.post(
        "/ui/login", data={"name": "dev", "password": "wrong!!!!", "csrf_token": csrf(form.text)}
    )
    assert response.status_code == 401
    assert "Wrong user name or password." in response.text
    assert "shipline_session" not in response.headers.get("set-cookie", "")
    assert ("dev", "user.login", "denied") in web.audit_actions()


def test_the_sign_in_form_needs_its_own_csrf_value(web: Web) -> None:
    web.user("dev")
    browser = web.browser()
    browser.get("/ui/login")
    response = browser.post(
        "/ui/login", data={"name": "dev", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert "shipline_session" not in response.headers.get("set-cookie", "")
    fresh = web.browser()  # no cookie from the form at all (a cross-site post)
    response = fresh.post("/ui/login", data={"name": "dev", "password": PASSWORD, "csrf_token": ""})
    assert response.status_code == 403


def test_pages_send_strangers_to_sign_in_and_back_but_never_off_site(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.user("dev", role="developer")
    browser = web.browser()
    response = browser.get(f"/ui/runs/{run_id}?q=x")
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/login?next=%2Fui%2Fruns%2F{run_id}%3Fq%3Dx"
    form = browser.get(response.headers["location"])
    assert f'name="next" value="/ui/runs/{run_id}?q=x"' in form.text
    for target, lands in [
        (f"/ui/runs/{run_id}", f"/ui/runs/{run_id}"),
        ("//evil.example/", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/api/v1/tokens", "/ui/"),
    ]:
        fresh = web.browser()
        page = fresh.get("/ui/login")
        signed = fresh.post(
            "/ui/login",
            data={
                "name": "dev",
                "password": PASSWORD,
                "csrf_token": csrf(page.text),
                "next": target,
            },
        )
        assert signed.headers["location"] == lands, target


def test_signing_out_revokes_the_session_token(web: Web) -> None:
    web.user("dev")
    browser = web.signed_in("dev")
    stolen = browser.cookies.get("shipline_session")
    assert stolen
    page = browser.get("/ui/tokens")
    out = browser.post("/ui/logout", data={"csrf_token": csrf(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    replay = web.browser()
    replay.cookies.set("shipline_session", stolen)
    assert replay.get("/ui/").status_code == 303
    assert (
        web.api().get("/api/v1/projects", headers={"Authorization": f"Bearer {stolen}"}).status_code
        == 401
    )


def test_a_form_without_the_session_csrf_token_changes_nothing(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.user("dev", role="developer")
    browser = web.signed_in("dev")
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}):
        response = browser.post(f"/ui/runs/{run_id}/cancel", data=data)
        assert response.status_code == 403, data
        assert "this form has expired" in response.text
    assert web.status(run_id)[0] is not Status.COMPLETED
    assert ("dev", "dashboard.csrf", "denied") in web.audit_actions()
    # another user's token (from their own session) is not this session's
    web.user("other", role="developer")
    theirs = csrf(web.signed_in("other").get(f"/ui/runs/{run_id}").text)
    assert browser.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": theirs}).status_code == 403
    assert web.status(run_id)[0] is not Status.COMPLETED


def test_cancel_works_for_a_developer_with_the_form(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.user("dev", role="developer")
    browser = web.signed_in("dev")
    page = browser.get(f"/ui/runs/{run_id}")
    assert "Cancel run" in page.text
    response = browser.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": csrf(page.text)})
    assert response.status_code == 303 and response.headers["location"] == f"/ui/runs/{run_id}"
    assert web.status(run_id) == (Status.COMPLETED, Conclusion.CANCELLED)
    assert ("dev", "run.cancel", "allowed") in web.audit_actions()


def test_actions_are_checked_on_the_server_not_by_hiding_buttons(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.user("viewer", role="viewer")
    web.user("stranger")
    viewer = web.signed_in("viewer")
    page = viewer.get(f"/ui/runs/{run_id}")
    assert "Cancel run" not in page.text  # not offered...
    token = csrf(page.text)  # ...and forging the request does not help
    response = viewer.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 403 and "Not allowed" in response.text
    response = viewer.post(
        f"/ui/runs/{run_id}/rerun", data={"csrf_token": token, "failed_only": "0"}
    )
    assert response.status_code == 403
    assert web.status(run_id)[0] is not Status.COMPLETED
    assert ("viewer", "run.cancel", "denied") in web.audit_actions()
    stranger = web.signed_in("stranger")
    token = csrf(stranger.get("/ui/tokens").text)
    assert stranger.get(f"/ui/runs/{run_id}").status_code == 404
    assert stranger.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": token}).status_code == 404
    assert stranger.get(f"/ui/runs/{run_id}/events").status_code == 404
    assert stranger.get("/ui/audit").status_code == 403
    assert stranger.get("/ui/users").status_code == 403
    response = stranger.post(
        "/ui/users", data={"csrf_token": token, "name": "mallory", "password": PASSWORD}
    )
    assert response.status_code == 403
    nav = stranger.get("/ui/").text
    assert "Audit log" not in nav and ">Users<" not in nav


def test_hostile_names_and_log_lines_render_inert(web: Web) -> None:
    project_id = web.project()
    run_id = web.seed_run(
        project_id,
        ref=f"refs/heads/{SCRIPT}",
        workflow_name=f'CI {SCRIPT} "x" onload=alert(4)',
        actor="<b>mallory</b>",
    )
    web.user("viewer", role="viewer")
    browser = web.signed_in("viewer")
    overview = browser.get("/ui/projects/app").text
    run_page = browser.get(f"/ui/runs/{run_id}").text
    for html in (overview, run_page):
        assert SCRIPT not in html and "<b>mallory" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        no_inline_code(html)
    # now a real run whose job printed hostile output
    run_id = web.trigger()
    job_id = web.run_job(run_id, EVIL_LOG)
    html = browser.get(f"/ui/runs/{run_id}/jobs/{job_id}").text
    no_inline_code(html)
    log = html[html.index("data-log") :]
    assert SCRIPT not in log and "&lt;script&gt;alert(1)&lt;/script&gt;" in log
    assert "javascript:" not in log and "click me" in log
    assert "\x1b" not in html and "\x07" not in html and "\r" not in log
    assert "cursor moved" in log and "window title" not in log and "visible" in log
    assert "progress 100%" in log and "progress 10%" not in log
    assert "<img" not in log and "&lt;img src=x onerror=&#34;alert(3)&#34;&gt;" in log
    assert "\u202e" not in log and "&lt;U+202E&gt;" in log
    assert '<span class="ansi-fg-red">&lt;b&gt;red markup&lt;/b&gt;</span>' in log
    assert re.search(r'<a class="ln" href="#L\d+">', log)
    download = browser.get(f"/ui/runs/{run_id}/jobs/{job_id}/log.txt")
    assert "\x1b" not in download.text and download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-type"].startswith("text/plain")


def test_rerun_failed_from_the_form_starts_a_new_attempt(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.run_job(run_id, ["build"])
    web.run_job(run_id, ["test"], Conclusion.FAILURE)
    assert web.status(run_id) == (Status.COMPLETED, Conclusion.FAILURE)
    web.user("dev", role="developer")
    browser = web.signed_in("dev")
    token = csrf(browser.get(f"/ui/runs/{run_id}").text)
    response = browser.post(
        f"/ui/runs/{run_id}/rerun", data={"csrf_token": token, "failed_only": "1"}
    )
    assert response.status_code == 303
    with web.store.transaction() as tx:
        run = tx.runs.get(run_id)
        assert run is not None and run.attempt == 2
        assert [j.key for j in tx.jobs.for_run(run_id, 2) if j.status is Status.QUEUED] == ["test"]
    page = browser.get(f"/ui/runs/{run_id}").text
    assert "Cancel run" in page and re.search(
        r'class="node st-success[^"]*" data-live="job:build"', page
    )
    again = browser.post(f"/ui/runs/{run_id}/rerun", data={"csrf_token": token, "failed_only": "0"})
    assert again.status_code == 409 and "Conflict" in again.text
