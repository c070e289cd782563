"""The dashboard in a real browser: sign in, open a run, watch it live, read a log, cancel."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from tests.browser.conftest import PASSWORD, Site

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT = 60_000
# Elements sticking out of the screen (those inside a scrolling box do not count).
WIDER_THAN_SCREEN = """
Array.from(document.querySelectorAll("body *"))
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.closest(".list, .scroll, .log"))
  .slice(0, 5).map(e => e.tagName + "." + e.getAttribute("class"))
"""


def test_sign_in_watch_a_run_read_its_log_and_cancel_it(
    site: Site, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    run_id = site.trigger()

    # signing in brings the user back to the page they asked for
    page.goto(f"{site.url}/ui/runs/{run_id}")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/ui/runs/{run_id}")

    # the graph: build succeeds, test runs, package waits -- updated live, without reloading
    dag = page.locator("svg.dag")
    build = dag.locator('g.node[data-live="job:build"]')
    test = dag.locator('g.node[data-live="job:test"]')
    build.locator("tspan.text", has_text="Success").wait_for(timeout=TIMEOUT)
    test.locator("tspan.text", has_text="Running").wait_for(timeout=TIMEOUT)
    assert (
        dag.locator('g.node[data-live="job:package"] tspan.text', has_text="Pending").count() == 1
    )
    page.locator("#log").get_by_text("waiting").wait_for(timeout=TIMEOUT)

    # the build job's log: colours as classes, hostile text shown as text
    dag.get_by_role("link", name=re.compile(r"^build: Success")).click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    compiled = page.locator(".log .ansi-fg-green", has_text="compiled")
    assert compiled.count() == 1 and "ansi-bold" in (compiled.get_attribute("class") or "")
    assert (
        page.locator(".log").get_by_text("<script>window.pwned=1</script>", exact=False).count()
        == 1
    )
    assert page.locator(".log script, .log img, .log a[href^='javascript']").count() == 0
    assert page.evaluate("window.pwned") is None
    line = page.locator(".log .line", has_text="hostile").get_attribute("id")
    assert line is not None and re.fullmatch(r"L\d+", line)
    page.goto(f"{page.url}#{line}")
    assert page.evaluate("document.querySelector(':target').id") == line

    # the run page, for the README
    page.goto(f"{site.url}/ui/runs/{run_id}")
    test.locator("tspan.text", has_text="Running").wait_for(timeout=TIMEOUT)
    page.locator("#log").get_by_text("waiting").wait_for(timeout=TIMEOUT)
    shot = tmp_path / "run-page.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SHIPLINE_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, DOCS / "screenshot.png")

    # cancel: the button is a form; the page comes back with the run cancelled
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_url(f"**/ui/runs/{run_id}")
    page.locator(".run-head .badge", has_text="Cancelled").wait_for(timeout=TIMEOUT)
    status = site.api("GET", f"/runs/{run_id}").json()
    assert (status["status"], status["conclusion"]) == ("completed", "cancelled")
    page.get_by_role("button", name="Re-run all jobs").wait_for()
    assert problems == []


def test_a_run_turns_green_live_then_keyboard_and_narrow_screens(
    site: Site, browser_page: Any
) -> None:
    page = browser_page
    run_id = site.trigger()
    page.goto(f"{site.url}/ui/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/")

    # live: the page is not reloaded (the marker survives) while the run goes green
    page.goto(f"{site.url}/ui/runs/{run_id}")
    page.locator('g.node[data-live="job:test"] tspan.text', has_text="Running").wait_for(
        timeout=TIMEOUT
    )
    page.evaluate("window.stillThisPage = true")
    site.release.touch()
    page.locator(".log .line", has_text="released").wait_for(timeout=TIMEOUT)
    page.locator(".run-head .badge", has_text="Success").wait_for(timeout=TIMEOUT)
    package = page.locator('g.node[data-live="job:package"] tspan.text', has_text="Success")
    package.wait_for(timeout=TIMEOUT)
    page.locator('[data-job="job:package"] .step-name', has_text="echo packaged").wait_for()
    page.get_by_role("button", name="Re-run all jobs").wait_for()
    assert page.evaluate("window.stillThisPage") is True

    page.set_viewport_size({"width": 380, "height": 800})
    for url in ("/ui/", "/ui/projects/web", f"/ui/runs/{run_id}", "/ui/tokens"):
        page.goto(f"{site.url}{url}")
        wide = page.evaluate("document.documentElement.scrollWidth")
        culprits = page.evaluate(WIDER_THAN_SCREEN)
        assert wide <= 381, f"{url} is {wide}px wide on a 380px screen: {culprits}"
