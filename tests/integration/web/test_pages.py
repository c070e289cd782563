"""The dashboard's pages over real services: what a signed-in user sees, page by page."""

from __future__ import annotations

import re

from shipline.domain.status import Conclusion, Status
from tests.integration.web.conftest import Web, no_inline_code

ANSI_LINE = "\x1b[1;31mboom\x1b[0m and \x1b[32mgreen\x1b[0m"


def test_projects_list_shows_only_what_the_user_may_see(web: Web) -> None:
    web.project("app")
    web.project("secret-project")
    web.user("dev", role="developer")
    page = web.signed_in("dev").get("/ui/")
    assert page.status_code == 200
    assert 'href="/ui/projects/app"' in page.text
    assert "secret-project" not in page.text
    no_inline_code(page.text)
    hidden = web.signed_in("dev").get("/ui/projects/secret-project")
    assert hidden.status_code == 404 and "Not found" in hidden.text


def test_project_overview_lists_workflows_and_runs_with_filters_and_pages(web: Web) -> None:
    project_id = web.project()
    first = web.trigger()
    for i in range(30):
        web.seed_run(
            project_id,
            ref="refs/heads/dev" if i % 3 == 0 else "refs/heads/main",
            event="tag" if i == 29 else "push",
        )
    web.user("viewer", role="viewer")
    browser = web.signed_in("viewer")
    page = browser.get("/ui/projects/app")
    assert page.status_code == 200
    no_inline_code(page.text)
    assert "Workflows" in page.text and ".shipline/workflows/ci.yml" in page.text
    assert page.text.count('<tr>\n      <th scope="row">') == 25
    older = re.search(r'href="(\?cursor=[^"]+)" rel="next"', page.text)
    assert older is not None
    rest = browser.get("/ui/projects/app" + older.group(1).replace("&amp;", "&"))
    assert rest.text.count('<th scope="row"><a href="/ui/runs/') == 6
    assert f'href="/ui/runs/{first}"' in rest.text
    dev = browser.get("/ui/projects/app", params={"branch": "dev"})
    assert dev.text.count('<th scope="row"><a href="/ui/runs/') == 10
    tags = browser.get("/ui/projects/app", params={"event": "tag"})
    assert tags.text.count('<th scope="row"><a href="/ui/runs/') == 1
    queued = browser.get("/ui/projects/app", params={"status": "queued"})
    assert queued.text.count('<th scope="row"><a href="/ui/runs/') == 25
    bad = browser.get("/ui/projects/app", params={"status": "bogus"})
    assert bad.status_code == 422 and "no such status" in bad.text


def test_run_page_draws_the_graph_jobs_steps_and_the_log(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    job_id = web.run_job(run_id, ["hello", ANSI_LINE])
    web.user("viewer", role="viewer")
    browser = web.signed_in("viewer")
    page = browser.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200, page.text
    html = page.text
    no_inline_code(html)
    assert '<svg class="dag"' in html
    # build ran and succeeded; test was queued after it: both nodes, status in words
    assert re.search(r'class="node st-success[^"]*" data-live="job:build"', html)
    assert re.search(r'class="node st-queued[^"]*" data-live="job:test"', html)
    assert ">Success</" in html and ">Queued</" in html
    assert 'id="L2"' in html and 'href="#L2"' in html
    assert '<span class="ansi-bold ansi-fg-red">boom</span>' in html
    assert '<span class="ansi-fg-green">green</span>' in html
    assert "Say things" in html
    # a viewer is not offered the actions
    assert "Cancel run" not in html
    job_page = browser.get(f"/ui/runs/{run_id}/jobs/{job_id}", params={"q": "BOOM"})
    assert "1 of 2 lines contain" in job_page.text and 'id="L2"' in job_page.text
    assert 'id="L1"' not in job_page.text
    download = browser.get(f"/ui/runs/{run_id}/jobs/{job_id}/log.txt")
    assert download.status_code == 200
    assert download.text == "hello\nboom and green\n"
    assert "attachment" in download.headers["content-disposition"]


def test_pages_carry_the_security_headers(web: Web) -> None:
    web.project()
    web.user("dev", role="developer")
    for url in ("/ui/login", "/ui/"):
        browser = web.signed_in("dev") if url != "/ui/login" else web.browser()
        response = browser.get(url)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    css = web.browser().get("/ui/static/dashboard.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    js = web.browser().get("/ui/static/live.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_the_root_leads_to_the_dashboard_and_the_api_keeps_json_errors(web: Web) -> None:
    browser = web.browser()
    assert browser.get("/").headers["location"] == "/ui/"
    assert browser.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"
    missing = browser.get("/ui/nothing-here")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    paths = web.api().get("/openapi.json").json()["paths"]
    assert not any(p.startswith("/ui") for p in paths)


def test_a_run_that_completed_has_rerun_forms_for_developers(web: Web) -> None:
    web.project()
    run_id = web.trigger()
    web.run_job(run_id, ["build"], Conclusion.FAILURE)
    assert web.status(run_id) == (Status.COMPLETED, Conclusion.FAILURE)
    web.user("dev", role="developer")
    html = web.signed_in("dev").get(f"/ui/runs/{run_id}").text
    assert "Re-run failed jobs" in html and "Re-run all jobs" in html
    assert re.search(r'data-while="running" hidden', html)
