"""Webhook deliveries against a real server: the project's repository is a local git
repository standing in for the forge (with `refs/pull/1/head` as GitHub publishes it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

from shipline.domain.records import Trust
from shipline.domain.status import Status
from tests.fixtures.webhooks import payload
from tests.integration.source.conftest import Hosted

CI = """
    on: [push, pull_request]
    jobs:
      build:
        runs-on: ubuntu-latest
        steps: [{run: 'echo "$TITLE"', env: {TITLE: '${{ github.event.pull_request.title }}'}}]
"""


class Forge:
    """A repository with `main` and a fork's pull request head at `refs/pull/1/head`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.com")
        self.git("config", "user.name", "Dev")
        (root / ".shipline" / "workflows").mkdir(parents=True)
        (root / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(CI))
        self.base = self.commit("pipeline")
        self.head = self.pull_head("fork change")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, message: str) -> str:
        (self.root / "file.txt").write_text(message)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def pull_head(self, message: str) -> str:
        """A commit on top of main, published as the pull request's head (not on a branch)."""
        tree = self.git("rev-parse", "HEAD^{tree}")
        sha = self.git("commit-tree", tree, "-p", self.base, "-m", message)
        self.git("update-ref", "refs/pull/1/head", sha)
        return sha


@pytest.fixture
def forge(hosted: Hosted, tmp_path: Path) -> Forge:
    repo = Forge(tmp_path / "forge")
    response = hosted.api("POST", "/projects", json={"name": "app", "repository": str(repo.root)})
    assert response.status_code == 201
    return repo


def secret(hosted: Hosted, project: str = "app") -> str:
    response = hosted.api("POST", f"/projects/{project}/webhook/secret")
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["urls"]["github"].endswith(f"/hooks/github?project={project}")
    return str(out["secret"])


def deliver(
    hosted: Hosted,
    forge: str,
    event: str,
    body: bytes,
    key: str,
    delivery: str,
    project: str = "app",
    **headers: str,
) -> httpx.Response:
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    sent = {"Content-Type": "application/json", **headers}
    if forge == "github":
        sent |= {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={signature}",
        }
    elif forge == "gitea":
        sent |= {
            "X-Gitea-Event": event,
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Signature": signature,
        }
    else:
        sent |= {"X-Gitlab-Event": event, "Idempotency-Key": delivery, "X-Gitlab-Token": key}
    return httpx.post(
        f"{hosted.url}/hooks/{forge}",
        params={"project": project},
        content=body,
        headers=sent,
        timeout=60,
    )


def test_unverified_deliveries_get_401_start_nothing_and_are_audited(
    hosted: Hosted, forge: Forge
) -> None:
    key = secret(hosted)
    body = payload("github_push", before="0" * 40, after=forge.base)
    assert deliver(hosted, "github", "push", body, "wrong secret", "d1").status_code == 401
    tampered = deliver(hosted, "github", "push", body, key, "d2")
    assert tampered.status_code == 200  # the honest one passes ...
    one_byte = body.replace(b'"main"', b'"mair"')
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    response = httpx.post(  # ... a body changed by one byte under its signature does not
        f"{hosted.url}/hooks/github",
        params={"project": "app"},
        content=one_byte,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d3",
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    assert response.status_code == 401
    assert deliver(hosted, "github", "push", body, key, "d4", project="nope").status_code == 401
    other = hosted.api("POST", "/projects", json={"name": "other", "repository": str(forge.root)})
    assert other.status_code == 201
    other_key = secret(hosted, "other")
    assert deliver(hosted, "github", "push", body, other_key, "d5").status_code == 401
    assert len(hosted.runs()) == 1  # only the honest delivery's
    denied = hosted.api("GET", "/audit", params={"action": "webhook.receive"}).json()["items"]
    assert sorted(d["reason"] for d in denied) == [
        "bad signature",
        "bad signature",
        "bad signature",
        "no webhook secret for this project",
    ]
    assert all(key not in json.dumps(d) for d in denied)


def test_oversized_bodies_get_413(hosted: Hosted, forge: Forge) -> None:
    key = secret(hosted)
    hosted.context.webhook_max_bytes = 1000
    big = b'{"pad": "' + b"x" * 2000 + b'"}'
    assert deliver(hosted, "github", "push", big, key, "big").status_code == 413
    audit = hosted.api("GET", "/audit", params={"action": "webhook.receive"}).json()["items"]
    assert audit[0]["reason"] == "body over 1000 bytes"


def test_a_replay_starts_exactly_one_run_and_an_admin_can_redeliver(
    hosted: Hosted, forge: Forge
) -> None:
    key = secret(hosted)
    body = payload("github_push", before="0" * 40, after=forge.base)
    first = deliver(hosted, "github", "push", body, key, "72d3162e")
    again = deliver(hosted, "github", "push", body, key, "72d3162e")
    assert first.status_code == again.status_code == 200
    assert first.json()["outcome"] == "processed" and not first.json()["duplicate"]
    assert again.json()["duplicate"] and again.json()["runs"] == first.json()["runs"]
    runs = hosted.runs()
    assert len(runs) == 1
    assert (runs[0].event, runs[0].sha, runs[0].actor, runs[0].trust) == (
        "push",
        forge.base,
        "octocat",
        Trust.TRUSTED,
    )
    deliveries = hosted.api("GET", "/projects/app/deliveries").json()["items"]
    assert [(d["delivery_id"], d["outcome"], d["runs"]) for d in deliveries] == [
        ("72d3162e", "processed", [runs[0].id])
    ]
    redone = hosted.api("POST", f"/projects/app/deliveries/{deliveries[0]['id']}/redeliver")
    assert redone.status_code == 200 and redone.json()["redeliveries"] == 1
    assert len(hosted.runs()) == 2
    dev = hosted.user("dev", "developer")
    denied = hosted.api(
        "POST", f"/projects/app/deliveries/{deliveries[0]['id']}/redeliver", token=dev
    )
    assert denied.status_code == 403


def test_an_old_push_replayed_after_a_force_push_starts_nothing(
    hosted: Hosted, forge: Forge
) -> None:
    key = secret(hosted)
    old = forge.base
    forge.git("commit", "-q", "--amend", "-m", "rewritten")
    body = payload("github_push", before="0" * 40, after=old)
    response = deliver(hosted, "github", "push", body, key, "new-id-for-an-old-body")
    assert response.json()["outcome"] in ("ignored", "failed")
    assert hosted.runs() == []


def test_a_pull_request_from_a_first_time_contributor_waits_for_approval(
    hosted: Hosted, forge: Forge
) -> None:
    key = secret(hosted)
    body = payload("github_pull_request", head=forge.head, base=forge.base)
    response = deliver(hosted, "github", "pull_request", body, key, "pr-1")
    assert response.json()["outcome"] == "waiting", response.text
    (run,) = hosted.runs()
    assert (run.event, run.ref, run.sha, run.trust, run.status) == (
        "pull_request",
        "refs/pull/1/head",
        forge.head,
        Trust.UNTRUSTED,
        Status.WAITING,
    )
    shown = hosted.api("GET", f"/runs/{run.id}").json()
    assert shown["trust"] == "untrusted" and shown["status"] == "waiting"

    stranger = hosted.user("stranger", "developer")
    assert hosted.api("POST", f"/runs/{run.id}/approve", token=stranger).status_code == 403
    dev = hosted.user("dev", "developer")
    assert hosted.api("POST", f"/runs/{run.id}/approve", token=dev).status_code == 403
    lead = hosted.user("lead", "maintainer")
    approved = hosted.api("POST", f"/runs/{run.id}/approve", token=lead)
    assert approved.status_code == 200 and approved.json()["status"] == "queued"
    assert hosted.api("POST", f"/runs/{run.id}/approve", token=lead).status_code == 409

    # a new push to the pull request needs a new approval
    new_head = forge.pull_head("another fork change")
    sync = json.loads(payload("github_pull_request", head=new_head, base=forge.base))
    sync["action"] = "synchronize"
    again = deliver(hosted, "github", "pull_request", json.dumps(sync).encode(), key, "pr-2")
    assert again.json()["outcome"] == "waiting"
    latest = hosted.runs()[-1]
    assert (latest.sha, latest.status, latest.trust) == (new_head, Status.WAITING, Trust.UNTRUSTED)


def test_pull_requests_from_forks_are_untrusted_and_same_repo_ones_trusted(
    hosted: Hosted, forge: Forge
) -> None:
    key = secret(hosted)
    data = json.loads(payload("github_pull_request", head=forge.head, base=forge.base))
    data["pull_request"]["author_association"] = "CONTRIBUTOR"
    response = deliver(hosted, "github", "pull_request", json.dumps(data).encode(), key, "a")
    assert response.json()["outcome"] == "processed"
    fork_run = hosted.runs()[-1]
    assert (fork_run.trust, fork_run.status) == (Trust.UNTRUSTED, Status.QUEUED)

    forge.git("update-ref", "refs/heads/feature", forge.head)
    data["pull_request"]["head"]["repo"]["full_name"] = "octo/app"
    data["pull_request"]["head"]["ref"] = "feature"
    data["pull_request"]["author_association"] = "MEMBER"
    response = deliver(hosted, "github", "pull_request", json.dumps(data).encode(), key, "b")
    same_repo = hosted.runs()[-1]
    assert same_repo.trust is Trust.TRUSTED


def test_gitlab_and_gitea_deliveries(hosted: Hosted, forge: Forge) -> None:
    key = secret(hosted)
    push = payload("gitlab_push", before="0" * 40, after=forge.base)
    response = deliver(hosted, "gitlab", "Push Hook", push, key, "gl-1")
    assert response.json()["outcome"] == "processed", response.text
    assert deliver(hosted, "gitlab", "Push Hook", push, "wrong", "gl-2").status_code == 401
    forge.git("update-ref", "refs/merge-requests/1/head", forge.head)
    mr = payload("gitlab_merge_request", head=forge.head)
    response = deliver(hosted, "gitlab", "Merge Request Hook", mr, key, "gl-3")
    assert response.json()["outcome"] == "waiting"  # a fork, and GitLab names no association
    gitea = payload("gitea_push", before="0" * 40, after=forge.base)
    assert deliver(hosted, "gitea", "push", gitea, key, "gt-1").json()["outcome"] == "processed"
    runs = hosted.runs()
    assert [(r.event, r.actor) for r in runs] == [
        ("push", "jsmith"),
        ("pull_request", "root"),
        ("push", "gitea"),
    ]
    ping = deliver(hosted, "github", "ping", payload("github_ping"), key, "ping-1")
    assert (ping.json()["outcome"], ping.json()["detail"]) == ("processed", "pong")


def test_a_push_replayed_after_a_force_push_rereads_the_ref_and_starts_nothing_new(
    hosted: Hosted, forge: Forge
) -> None:
    """SECURITY-CASES 40: the delivery was genuine and built once; after `main` is
    force-pushed, neither a captured copy under a new delivery id nor an admin's
    re-delivery builds the old commit again — the server re-reads the ref first."""
    key = secret(hosted)
    body = payload("github_push", before="0" * 40, after=forge.base)
    first = deliver(hosted, "github", "push", body, key, "push-1")
    assert first.json()["outcome"] == "processed", first.text
    (run,) = hosted.runs()
    assert run.sha == forge.base
    assert deliver(hosted, "github", "push", body, key, "push-1").json()["duplicate"] is True

    forge.git("commit", "-q", "--amend", "-m", "force-pushed")
    replay = deliver(hosted, "github", "push", body, key, "captured-copy")
    assert replay.json()["outcome"] == "ignored"
    assert "has moved on" in replay.json()["detail"]
    delivery = first.json()["delivery"]
    again = hosted.api("POST", f"/projects/app/deliveries/{delivery}/redeliver")
    assert again.status_code == 200 and again.json()["outcome"] == "ignored"
    assert [r.id for r in hosted.runs()] == [run.id]


def test_a_deploy_comment_from_an_outsider_starts_nothing_and_is_audited(
    hosted: Hosted, forge: Forge
) -> None:
    """SECURITY-CASES 8: comments are not triggers — `/deploy prod` by someone without
    write access is verified, stored, ignored and audited."""
    key = secret(hosted)
    comment = {
        "action": "created",
        "issue": {"number": 1, "pull_request": {"url": "https://example.com/pulls/1"}},
        "comment": {"body": "/deploy prod", "author_association": "NONE"},
        "sender": {"login": "stranger"},
    }
    response = deliver(
        hosted, "github", "issue_comment", json.dumps(comment).encode(), key, "comment-1"
    )
    assert response.status_code == 200
    assert (response.json()["outcome"], response.json()["runs"]) == ("ignored", [])
    assert hosted.runs() == []
    with hosted.context.store.transaction(write=False) as tx:
        audited = tx.audit.page(action="webhook.receive", limit=10).items
    assert audited[0].decision == "denied" and "issue_comment" in audited[0].reason


def test_the_forge_s_test_merge_is_fetched_into_the_mirror(hosted: Hosted, forge: Forge) -> None:
    """A pull request's `refs/pull/<n>/merge`, when the forge publishes one, is in the
    server's mirror next to the head (a job may check it out); none while it conflicts."""
    from shipline.scm.repository import GitRepository
    from shipline.wiring import mirror_dir

    key = secret(hosted)
    tree = forge.git("rev-parse", f"{forge.head}^{{tree}}")
    merge = forge.git("commit-tree", tree, "-p", forge.base, "-p", forge.head, "-m", "merge")
    forge.git("update-ref", "refs/pull/1/merge", merge)
    data = json.loads(payload("github_pull_request", head=forge.head, base=forge.base))
    data["pull_request"]["author_association"] = "CONTRIBUTOR"
    response = deliver(hosted, "github", "pull_request", json.dumps(data).encode(), key, "m-1")
    assert response.json()["outcome"] == "processed", response.text
    with hosted.context.store.transaction(write=False) as tx:
        project = tx.projects.get("app")
    assert project is not None
    mirror = GitRepository(str(forge.root), mirror_dir(hosted.tmp / "state", project.id))
    assert mirror.resolve("refs/pull/1/merge")[1] == merge
    assert mirror.resolve("refs/pull/1/head")[1] == forge.head

    forge.git("update-ref", "-d", "refs/pull/1/merge")  # the forge found a conflict
    data["action"] = "synchronize"
    response = deliver(hosted, "github", "pull_request", json.dumps(data).encode(), key, "m-2")
    assert response.json()["outcome"] == "processed", response.text
    with pytest.raises(Exception, match="no branch, tag or commit"):
        mirror.resolve("refs/pull/1/merge")
