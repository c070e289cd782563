"""Hosted repositories over smart HTTP with the real git client: authentication, roles,
and the runs a push starts."""

from __future__ import annotations

import subprocess

import httpx

from shipline.domain.records import Trust
from tests.integration.source.conftest import Hosted, git_env

CI = """
    on:
      push:
        branches: [main]
        paths: ['src/**']
    jobs:
      build: {runs-on: ubuntu-latest, steps: [{run: echo build}]}
"""
DOCS = """
    on:
      push:
        paths-ignore: ['src/**']
    jobs:
      docs: {runs-on: ubuntu-latest, steps: [{run: echo docs}]}
"""
RELEASE = """
    on:
      push:
        tags: ['v*']
    jobs:
      release: {runs-on: ubuntu-latest, steps: [{run: echo release}]}
"""


def test_anonymous_requests_get_401_with_a_challenge_and_no_name_leaks(hosted: Hosted) -> None:
    hosted.project()
    for path in ("/git/app.git/info/refs?service=git-upload-pack", "/git/secret.git/info/refs"):
        response = httpx.get(hosted.url + path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic realm=")
    bad = httpx.get(
        hosted.url + "/git/app.git/info/refs?service=git-upload-pack", auth=("admin", "shp_u_x")
    )
    assert bad.status_code == 401
    wrong_user = httpx.get(
        hosted.url + "/git/app.git/info/refs?service=git-upload-pack",
        auth=("someone-else", hosted.admin_token),
    )
    assert wrong_user.status_code == 401
    audit = hosted.api("GET", "/audit", params={"action": "authenticate"}).json()["items"]
    assert {a["reason"] for a in audit} >= {
        "missing",
        "malformed",
        "user name does not match the token",
    }


def test_git_clone_without_credentials_fails_cleanly(hosted: Hosted) -> None:
    hosted.project()
    host = hosted.url.removeprefix("http://")
    home = hosted.tmp / "anon"
    home.mkdir()
    result = subprocess.run(
        ["git", "clone", f"http://{host}/git/app.git", str(hosted.tmp / "anon-clone")],
        env=git_env(home),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr or "could not read Username" in result.stderr


def test_viewers_fetch_developers_push_outsiders_see_nothing(hosted: Hosted) -> None:
    hosted.project()
    dev = hosted.user("dev", "developer")
    viewer = hosted.user("viewer", "viewer")
    outsider = hosted.user("outsider", None)

    work = hosted.clone("dev", dev)
    work.write("README.md", "hello\n")
    work.commit("first")
    push = work.git("push", "-q", "origin", "main")
    assert push.returncode == 0

    seen = hosted.clone("viewer", viewer, name="viewer-copy")
    assert (seen.path / "README.md").read_text() == "hello\n"
    seen.write("README.md", "changed by a viewer\n")
    seen.commit("not allowed")
    refused = seen.git("push", "origin", "main", check=False)
    assert refused.returncode != 0
    assert "403" in refused.stderr

    hidden = httpx.get(
        hosted.url + "/git/app.git/info/refs?service=git-upload-pack", auth=("outsider", outsider)
    )
    assert hidden.status_code == 404  # authenticated, but the project is not theirs to know


def test_a_push_starts_the_workflows_whose_filters_match(hosted: Hosted) -> None:
    hosted.project()
    dev = hosted.user("dev", "developer")
    work = hosted.clone("dev", dev)
    work.write(".shipline/workflows/ci.yml", CI)
    work.write(".shipline/workflows/docs.yml", DOCS)
    work.write(".shipline/workflows/release.yml", RELEASE)
    work.write("src/app.py", "print(1)\n")
    first = work.commit("pipeline and code")
    work.git("push", "-q", "origin", "main")
    runs = hosted.wait_runs(2)  # the tip commit touched src/ and the workflow files
    assert sorted(r.workflow_file.rsplit("/", 1)[1] for r in runs) == ["ci.yml", "docs.yml"]
    assert {(r.event, r.ref, r.sha, r.actor, r.trust) for r in runs} == {
        ("push", "refs/heads/main", first, "dev", Trust.TRUSTED)
    }

    work.write("docs/guide.md", "words\n")
    work.commit("docs only")
    work.git("push", "-q", "origin", "main")
    runs = hosted.wait_runs(3)
    assert runs[-1].workflow_file.endswith("docs.yml")

    work.write("src/app.py", "print(2)\n")
    work.commit("code only")
    work.git("push", "-q", "origin", "main")
    runs = hosted.wait_runs(4)
    assert runs[-1].workflow_file.endswith("ci.yml")

    work.git("tag", "v1.0")
    work.git("push", "-q", "origin", "v1.0")
    runs = hosted.wait_runs(6)  # paths filters do not apply to tags: docs runs too
    assert {(r.workflow_file.rsplit("/", 1)[1], r.ref) for r in runs[-2:]} == {
        ("release.yml", "refs/tags/v1.0"),
        ("docs.yml", "refs/tags/v1.0"),
    }

    work.git("push", "-q", "origin", "--delete", "v1.0")
    work.git("push", "-q", "origin", "main:feature")  # a new branch: ci only runs on main
    events = hosted.api("GET", "/audit", params={"action": "git.push"}).json()["items"]
    changes = [(e["target"], e["data"]["change"]) for e in events]
    assert ("refs/tags/v1.0", "deleted") in changes
    assert ("refs/heads/feature", "created") in changes
    assert ("refs/heads/main", "updated") in changes
