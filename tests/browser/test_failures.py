"""A failing run in a real browser: its page opens the failed job, **Go to the failing
line** shows the line where the step failed, and a branch whose name is HTML renders as
text everywhere it is shown (project page, run page), running nothing."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests.browser.conftest import PASSWORD, Site

TIMEOUT = 60_000
BRANCH = 'fix"><img/src=x/onerror=window.pwned=4><script>window.pwned=5</script>'
FAILING = """
    name: CI
    on: [push, workflow_dispatch]
    jobs:
      tests:
        runs-on: local
        steps:
          - name: Unit tests
            run: |
              for i in $(seq 1 80); do echo "test_$i PASSED"; done
              echo "test_checkout FAILED: expected 200, got 500"
              exit 1
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_a_failed_steps_log_opens_at_the_failing_line_and_a_hostile_branch_is_inert(
    site: Site, browser_page: Any, tmp_path: Path, shots: Path
) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    repo = tmp_path / "repo"  # the site's repository
    git(repo, "checkout", "-q", "-b", BRANCH)
    (repo / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(FAILING))
    git(repo, "commit", "-q", "-am", "a failing test")
    answer = site.api("POST", "/projects/web/runs", json={"workflow": "ci.yml", "ref": BRANCH})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["items"][0]["id"]

    page.goto(f"{site.url}/ui/projects/web")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/projects/web")
    branch = page.locator("table.runs a.branch").first
    assert branch.inner_text() == BRANCH  # the name as text, not as markup
    assert page.locator("main img, main script").count() == 0

    page.goto(f"{site.url}/ui/runs/{run_id}")
    page.locator(".run-head .badge", has_text="Failed").wait_for(timeout=TIMEOUT)
    page.reload()  # the finished page, with the failed job's log
    assert BRANCH in page.locator("main").inner_text()
    jump = page.get_by_role("link", name=re.compile(r"Go to the failing line \((\d+)\)"))
    jump.click()
    target = page.locator(".line:target")
    target.wait_for()
    assert "test_checkout FAILED: expected 200, got 500" in target.inner_text()
    assert "failing" in (target.get_attribute("class") or "")
    assert target.is_visible() and target.evaluate(
        "el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight }"
    )
    page.screenshot(path=str(shots / "failing-line.png"))
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.pwned") is None
    assert problems == []
