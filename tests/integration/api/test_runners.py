"""Remote runners over the API with real services, on SQLite and PostgreSQL: registration,
claims, job tokens scoped to their job (SECURITY-CASES 20, 21, 23, 25), lease expiry on a
frozen clock (no sleeping), late messages from a lost lease refused, removal."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipline.domain.records import TokenKind
from shipline.engine.access import AccessService
from shipline.engine.leases import LeasePolicy, LeaseReaper
from shipline.engine.remote import RemoteJobs
from shipline.engine.remote_files import JobFiles
from shipline.engine.runners import RunnerService
from shipline.engine.service import RunService
from shipline.scm.repository import GitRepository
from shipline.server.app import create_app
from shipline.server.context import ServerContext
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore
from shipline.store.sql.store import SqlStore
from shipline.testing import FrozenClock
from tests.contract.store_backends import pg_database, url

__all__ = ["pg_database", "url"]

POLICY = LeasePolicy(heartbeat_seconds=1, lease_seconds=3, max_tries=2)


@dataclass
class Env:
    client: TestClient
    store: SqlStore
    clock: FrozenClock
    reaper: LeaseReaper
    admin: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def post(self, path: str, token: str, body: Any = None) -> Any:
        return self.client.post(f"/api/v1{path}", json=body, headers=self.auth(token))

    def runner(self, name: str, labels: list[str] | None = None) -> str:
        reg = self.post("/runners/registration-tokens", self.admin, {"name": "t"})
        assert reg.status_code == 201, reg.text
        body: dict[str, Any] = {"name": name}
        if labels is not None:
            body["labels"] = labels
        done = self.post("/runner/register", reg.json()["token"], body)
        assert done.status_code == 201, done.text
        token: str = done.json()["token"]
        return token

    def claim(self, runner: str) -> dict[str, Any] | None:
        answer = self.post("/runner/jobs/request", runner, {"wait": 0})
        if answer.status_code == 204:
            return None
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        return job

    def trigger(self) -> int:
        answer = self.post("/projects/app/runs", self.admin, {"workflow": "ci.yml"})
        assert answer.status_code == 201, answer.text
        run_id: int = answer.json()["items"][0]["id"]
        return run_id


@pytest.fixture
def env(url: str, tmp_path: Path, source: Path) -> Iterator[Env]:
    store = SqlStore(url, create=False)
    clock = FrozenClock()
    access = AccessService(store, clock)
    runs = RunService(
        store, clock, lambda p: GitRepository(p.repository, tmp_path / "mirrors" / str(p.id))
    )
    admin = access.bootstrap_admin(None)
    assert admin is not None
    blobs = BlobStore(tmp_path / "blobs")
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")

    def artifacts(run_id: int, attempt: int = 1) -> LocalArtifactStore:
        return LocalArtifactStore(blobs, tmp_path / "runs" / str(run_id) / str(attempt))

    def bundle(project: Any, sha: str, dest: Path) -> None:
        GitRepository(project.repository, tmp_path / "mirrors" / str(project.id)).bundle(sha, dest)

    context = ServerContext(
        store=store,
        clock=clock,
        access=access,
        runs=runs,
        artifacts=artifacts,
        caches=caches.listed,
        runners=RunnerService(store, clock, access),
        remote=RemoteJobs(store, clock, runs, access, policy=POLICY, poll_interval=0.01),
        job_files=JobFiles(store, blobs, artifacts, caches, caches.listed, bundle),
    )
    with TestClient(create_app(context)) as client:
        made = Env(client, store, clock, LeaseReaper(store, clock, runs, POLICY), admin)
        created = made.post(
            "/projects", admin, {"name": "app", "repository": str(source), "default_branch": "main"}
        )
        assert created.status_code == 201, created.text
        yield made
    store.close()


def test_a_job_goes_to_one_runner_whose_labels_fit_and_its_token_acts_on_it_only(
    env: Env,
) -> None:
    gpu = env.runner("gpu", ["gpu"])  # ci.yml's jobs run on ubuntu-latest
    plain = env.runner("plain", ["ubuntu-latest"])
    other = env.runner("other", ["ubuntu-latest"])
    env.trigger()
    assert env.claim(gpu) is None
    # case 25: a runner cannot widen the labels it was registered with
    widened = env.post("/runner/jobs/request", gpu, {"wait": 0, "labels": ["ubuntu-latest"]})
    assert widened.status_code == 403
    job = env.claim(plain)
    assert job is not None and job["key"] == "build"
    assert env.claim(other) is None  # build is held; test waits for it
    token = job["token"]
    base = f"/runner/jobs/{job['job_id']}"

    logs = {"chunks": [{"seq": 0, "step": 0, "text": "one\n"}, {"seq": 1, "text": "two\n"}]}
    assert env.post(f"{base}/logs", token, logs).json() == {"stored": 2}
    assert env.post(f"{base}/logs", token, logs).json() == {"stored": 0}  # a resend: once

    # case 23: token kinds are not interchangeable
    assert env.post(f"{base}/logs", plain, logs).status_code == 401  # runner credential
    assert env.post(f"{base}/logs", env.admin, logs).status_code == 401  # user token
    assert env.post("/runner/jobs/request", token, {"wait": 0}).status_code == 401
    assert env.client.get("/api/v1/runners", headers=env.auth(token)).status_code == 401

    # a second run's job: the first job's token may not act on it (cases 21, 25)
    env.trigger()
    second = env.claim(other)
    assert second is not None
    forged = env.post(f"/runner/jobs/{second['job_id']}/logs", token, logs)
    assert forged.status_code == 403

    done = env.post(f"{base}/finish", token, {"conclusion": "success", "outputs": {"v": "1"}})
    assert done.status_code == 204, done.text
    # case 20: the token died with its job
    assert env.post(f"{base}/logs", token, logs).status_code == 401
    follow = env.claim(plain)
    assert follow is not None and follow["key"] == "test"
    assert follow["needs"]["build"] == {"result": "success", "outputs": {"v": "1"}}


def test_a_lost_lease_is_retried_once_and_the_old_holder_is_refused(env: Env) -> None:
    first = env.runner("first", ["ubuntu-latest"])
    second = env.runner("second", ["ubuntu-latest"])
    run_id = env.trigger()
    job = env.claim(first)
    assert job is not None
    base = f"/runner/jobs/{job['job_id']}"
    beat = env.post("/runner/heartbeat", first, {"jobs": [job["job_id"]], "wait": 0})
    assert beat.json() == {"cancel": [], "lost": []}

    env.clock.advance(timedelta(seconds=2))
    assert env.reaper.reap() == []  # renewed a second ago: still held
    env.clock.advance(timedelta(seconds=4))
    assert env.reaper.reap() == [job["job_id"]]
    assert env.reaper.reap() == []  # handled once

    late = env.post(f"{base}/logs", job["token"], {"chunks": [{"seq": 5, "text": "late\n"}]})
    assert late.status_code == 409
    lost = env.post("/runner/heartbeat", first, {"jobs": [job["job_id"]], "wait": 0})
    assert lost.json() == {"cancel": [], "lost": [job["job_id"]]}

    again = env.claim(second)
    assert again is not None
    assert (again["job_id"], again["try_number"]) == (job["job_id"], 2)
    assert again["next_seq"] == 1  # after the runner_lost marker
    text = env.client.get(
        f"/api/v1/runs/{run_id}/jobs/{job['job_id']}/logs", headers=env.auth(env.admin)
    ).text
    assert "runner_lost" in text
    late_finish = env.post(f"{base}/finish", job["token"], {"conclusion": "success"})
    assert late_finish.status_code == 409

    # the second try is lost too: no tries are left, the job fails with the reason
    env.clock.advance(timedelta(seconds=10))
    assert env.reaper.reap() == [job["job_id"]]
    shown = env.client.get(f"/api/v1/runs/{run_id}", headers=env.auth(env.admin)).json()
    build = next(j for j in shown["jobs"] if j["name"] == "build")
    assert build["conclusion"] == "failure"
    assert env.claim(second) is None


def test_a_report_and_a_finish_carry_logs_and_steps_in_one_message_each(env: Env) -> None:
    runner = env.runner("r", ["ubuntu-latest"])
    run_id = env.trigger()
    job = env.claim(runner)
    assert job is not None
    token, base = job["token"], f"/runner/jobs/{job['job_id']}"
    step = {"index": 0, "key": "s1", "name": "build", "status": "in_progress"}
    report = {"chunks": [{"seq": 0, "step": 0, "text": "one\n"}], "steps": [step]}
    assert env.post(f"{base}/report", token, report).json() == {"stored": 1}
    assert env.post(f"{base}/report", token, report).json() == {"stored": 0}  # a resend
    forged = env.post(f"{base}/report", runner, report)
    assert forged.status_code == 401  # a runner credential is not the job's token

    # The end carries the last chunks (one a resend) and the step's end; a credential
    # shape in them is found by the scanner, which reads the log back (a chunk was stored
    # before this message).
    key = "AKIA" + "QRSTUVWXYZABCDEF"
    done = {**step, "status": "completed", "conclusion": "success", "exit_code": 0}
    finish = {
        "conclusion": "success",
        "chunks": [
            {"seq": 0, "step": 0, "text": "one\n"},
            {"seq": 1, "step": 0, "text": f"aws: {key}\n"},
        ],
        "steps": [done],
    }
    assert env.post(f"{base}/finish", token, finish).status_code == 204
    shown = env.client.get(f"/api/v1/runs/{run_id}", headers=env.auth(env.admin)).json()
    build = next(j for j in shown["jobs"] if j["id"] == job["job_id"])
    assert build["conclusion"] == "success"
    assert [(s["name"], s["conclusion"]) for s in build["steps"]] == [("build", "success")]
    text = env.client.get(
        f"/api/v1/runs/{run_id}/jobs/{job['job_id']}/logs", headers=env.auth(env.admin)
    ).text
    lines = text.splitlines()
    assert lines[:2] == ["one", f"aws: {key}"]
    assert "(aws-access-token) at line 2 " in lines[2]

    # A short job: its whole log and steps come with its end (scanned from the message).
    follow = env.claim(runner)
    assert follow is not None
    first = {"seq": follow["next_seq"], "step": 0, "text": f"aws: {key}\n"}
    only = {"conclusion": "success", "chunks": [first], "steps": [done]}
    assert (
        env.post(f"/runner/jobs/{follow['job_id']}/finish", follow["token"], only).status_code
        == 204
    )
    text = env.client.get(
        f"/api/v1/runs/{run_id}/jobs/{follow['job_id']}/logs", headers=env.auth(env.admin)
    ).text
    assert text.splitlines()[0] == f"aws: {key}"
    assert "(aws-access-token) at line 1 " in text


def test_a_finish_claims_the_runners_next_job_with_its_credential_only(env: Env) -> None:
    runner = env.runner("r", ["ubuntu-latest"])
    env.trigger()
    env.trigger()
    build = env.claim(runner)
    assert build is not None
    ask = {"conclusion": "success", "next": {"wait": 0}}
    assert (
        env.post(f"/runner/jobs/{build['job_id']}/finish", build["token"], ask).status_code == 422
    )
    ask["next"] = {}
    base = f"/runner/jobs/{build['job_id']}"
    # Without the runner's credential the job token alone claims nothing (a step might
    # hold it): the job ends, and no job is handed out.
    ended = env.client.post(
        f"/api/v1{base}/finish",
        json=ask,
        headers={**env.auth(build["token"]), "X-Shipline-Runner": build["token"]},
    )
    assert ended.status_code == 204, ended.text
    with env.store.transaction() as tx:
        denied = [a for a in tx.audit.iterate() if a.action == "authenticate"]
    assert denied and build["token"] not in str([a.data for a in denied])

    # With it, the answer is the runner's next job, held as a claim would hold it.
    second = env.claim(runner)
    assert second is not None
    nxt = env.client.post(
        f"/api/v1/runner/jobs/{second['job_id']}/finish",
        json=ask,
        headers={**env.auth(second["token"]), "X-Shipline-Runner": runner},
    )
    assert nxt.status_code == 200, nxt.text
    third = nxt.json()
    assert third["job_id"] not in (build["job_id"], second["job_id"]) and third["token"]
    beat = env.post("/runner/heartbeat", runner, {"jobs": [third["job_id"]], "wait": 0})
    assert beat.json() == {"cancel": [], "lost": []}
    report = {"chunks": [{"seq": third["next_seq"], "text": "hi\n"}]}
    assert env.post(f"/runner/jobs/{third['job_id']}/report", third["token"], report).json() == {
        "stored": 1
    }


def test_a_finish_from_a_lost_lease_stores_none_of_what_it_carries(env: Env) -> None:
    first = env.runner("first", ["ubuntu-latest"])
    second = env.runner("second", ["ubuntu-latest"])
    run_id = env.trigger()
    job = env.claim(first)
    assert job is not None
    env.clock.advance(timedelta(seconds=10))
    assert env.reaper.reap() == [job["job_id"]]
    again = env.claim(second)
    assert again is not None and again["try_number"] == 2
    base = f"/runner/jobs/{job['job_id']}"
    late = {"chunks": [{"seq": 7, "text": "late line\n"}]}
    assert env.post(f"{base}/report", job["token"], late).status_code == 409
    step = {"index": 0, "key": "s1", "name": "late step", "status": "completed"}
    step |= {"conclusion": "success"}
    late_finish = {"conclusion": "success", "steps": [step], **late}
    assert env.post(f"{base}/finish", job["token"], late_finish).status_code == 409
    text = env.client.get(
        f"/api/v1/runs/{run_id}/jobs/{job['job_id']}/logs", headers=env.auth(env.admin)
    ).text
    assert "late line" not in text
    shown = env.client.get(f"/api/v1/runs/{run_id}", headers=env.auth(env.admin)).json()
    build = next(j for j in shown["jobs"] if j["id"] == job["job_id"])
    assert build["status"] == "in_progress" and build["steps"] == []


def test_cancelling_the_run_answers_the_heartbeat_at_once(env: Env) -> None:
    runner = env.runner("r", ["ubuntu-latest"])
    run_id = env.trigger()
    job = env.claim(runner)
    assert job is not None
    assert env.post(f"/runs/{run_id}/cancel", env.admin).status_code == 200
    beat = env.post("/runner/heartbeat", runner, {"jobs": [job["job_id"]], "wait": 30})
    assert beat.json()["cancel"] == [job["job_id"]]


def test_runners_are_listed_paused_and_removed_by_admins(env: Env) -> None:
    runner = env.runner("r", ["ubuntu-latest"])
    env.trigger()
    job = env.claim(runner)
    assert job is not None
    listed = env.client.get("/api/v1/runners", headers=env.auth(env.admin)).json()["items"]
    assert [(r["name"], r["labels"], r["online"]) for r in listed] == [
        ("r", ["ubuntu-latest"], True)
    ]
    assert [j["job_id"] for j in listed[0]["jobs"]] == [job["job_id"]]
    rid = listed[0]["id"]

    paused = env.post(f"/runners/{rid}/pause", env.admin)
    assert paused.json()["paused"] is True
    env.post(f"/runner/jobs/{job['job_id']}/finish", job["token"], {"conclusion": "success"})
    assert env.claim(runner) is None  # paused: the next job waits
    env.post(f"/runners/{rid}/resume", env.admin)
    assert env.claim(runner) is not None

    removed = env.client.delete(f"/api/v1/runners/{rid}", headers=env.auth(env.admin))
    assert removed.status_code == 204
    assert env.post("/runner/jobs/request", runner, {"wait": 0}).status_code == 401
    with env.store.transaction() as tx:
        denied = [a for a in tx.audit.iterate() if a.action == "authenticate"]
    assert denied and all(runner not in str(a.data) for a in denied)


def test_only_admins_manage_runners(env: Env) -> None:
    from shipline.engine.principal import Principal

    with env.store.transaction() as tx:
        user = tx.users.create("bob", now=env.clock.now())
    access = AccessService(env.store, env.clock)
    bob, _ = access.create_token(Principal(user.id, "bob", False, 0, TokenKind.USER), "t", None)
    assert env.post("/runners/registration-tokens", bob, {}).status_code == 403
    assert env.client.get("/api/v1/runners", headers=env.auth(bob)).status_code == 403
    assert env.post("/runner/register", bob, {"name": "x"}).status_code == 401


BLOB = b"built\n"
SHA = hashlib.sha256(BLOB).hexdigest()
# Every endpoint a job token acts on, with a valid body: (method, path under the job, body).
JOB_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "logs", {"chunks": [{"seq": 50, "text": "forged\n"}]}),
    ("POST", "steps", {"index": 9, "key": "x", "name": "x", "status": "in_progress"}),
    ("GET", "source", None),
    ("PUT", f"blobs/{SHA}", BLOB),
    ("GET", f"blobs/{SHA}", None),
    ("POST", "artifacts", {"name": "dist", "files": [{"path": "a", "sha256": SHA, "size": 6}]}),
    ("GET", "artifacts", None),
    ("GET", "artifacts/dist", None),
    ("POST", "caches/lookup", {"keys": ["k"], "version": "v"}),
    ("POST", "caches", {"key": "k", "version": "v", "sha256": SHA}),
    ("POST", "finish", {"conclusion": "success"}),
]


def call(env: Env, method: str, path: str, token: str, body: Any) -> int:
    headers = env.auth(token)
    if isinstance(body, bytes):
        return env.client.request(method, path, content=body, headers=headers).status_code
    return env.client.request(method, path, json=body, headers=headers).status_code


def test_every_job_endpoint_is_for_its_own_jobs_token_while_the_job_runs(
    env: Env, source: Path
) -> None:
    """SECURITY-CASES 20, 21, 23, 25 over every endpoint of a remote job: another
    project's job token gets 403, a runner credential, a registration token and a user's
    token get 401, a runner cannot renew another runner's lease, and once the job ended
    its token gets 401 everywhere, also a minute later."""
    other = {"name": "other", "repository": str(source), "default_branch": "main"}
    assert env.post("/projects", env.admin, other).status_code == 201
    runner_a = env.runner("a", ["ubuntu-latest"])
    runner_b = env.runner("b", ["ubuntu-latest"])
    env.trigger()
    job_a = env.claim(runner_a)
    assert job_a is not None
    run_b = env.post("/projects/other/runs", env.admin, {"workflow": "ci.yml"}).json()
    job_b = env.claim(runner_b)
    assert job_b is not None and job_b["run_id"] == run_b["items"][0]["id"]
    token_a, token_b = job_a["token"], job_b["token"]
    registration = env.post("/runners/registration-tokens", env.admin, {"name": "r"}).json()

    for method, rest, body in JOB_ENDPOINTS:
        path = f"/api/v1/runner/jobs/{job_b['job_id']}/{rest}"
        # case 21/25: project A's job token on project B's job (and so a rogue runner
        # holding A's job acting on B's)
        assert call(env, method, path, token_a, body) == 403, path
        # case 23: no other kind of token is a job token
        for wrong in (runner_a, runner_b, env.admin, registration["token"]):
            assert call(env, method, path, wrong, body) == 401, (path, wrong[:6])
    # case 21/23: a job token is no user token on the API, for its own project or another
    for path in (
        f"/api/v1/runs/{run_b['items'][0]['id']}/artifacts",
        "/api/v1/projects/other/caches",
        "/api/v1/projects/other/secrets",
        "/api/v1/projects/app/secrets",
        f"/api/v1/runs/{job_a['run_id']}/jobs/{job_a['job_id']}/logs",
    ):
        assert env.client.get(path, headers=env.auth(token_a)).status_code == 401, path
    # case 25: runner A cannot keep runner B's job alive (nor learn about it)
    with env.store.transaction() as tx:
        before = tx.jobs.get(job_b["job_id"])
    env.clock.advance(timedelta(seconds=2))
    beat = env.post("/runner/heartbeat", runner_a, {"jobs": [job_b["job_id"]], "wait": 0})
    assert beat.json() == {"cancel": [], "lost": [job_b["job_id"]]}
    with env.store.transaction() as tx:
        after = tx.jobs.get(job_b["job_id"])
    assert before is not None and after is not None
    assert after.lease_expires_at == before.lease_expires_at

    # B's own token works on its job (the refusals above were about the token)
    own = f"/api/v1/runner/jobs/{job_b['job_id']}"
    assert call(env, "PUT", f"{own}/blobs/{SHA}", token_b, BLOB) == 200
    assert call(env, "POST", f"{own}/finish", token_b, {"conclusion": "success"}) == 204
    # case 20: the ended job's token, at once and a minute later, on every endpoint
    for wait in (0, 60):
        env.clock.advance(timedelta(seconds=wait))
        for method, rest, body in JOB_ENDPOINTS:
            status = call(env, method, f"{own}/{rest}", token_b, body)
            assert status == 401, (rest, wait, status)


def test_a_job_whose_assignment_cannot_be_read_fails_with_the_reason_once_claimed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim's transaction reads what the runner is handed; when that read fails (a
    job missing from its run's plan, say), the claim still commits and the job fails with
    the reason, rather than going back to the queue to fail again for every runner."""
    from shipline.engine import remote

    def unreadable(*_args: object, **_kwargs: object) -> None:
        raise LookupError("job 'build' is not in the plan of the run")

    monkeypatch.setattr(remote, "read_assignment", unreadable)
    runner = env.runner("r", ["ubuntu-latest"])
    run_id = env.trigger()
    assert env.claim(runner) is None
    monkeypatch.undo()
    shown = env.client.get(f"/api/v1/runs/{run_id}", headers=env.auth(env.admin)).json()
    build = next(j for j in shown["jobs"] if j["name"] == "build")
    assert (build["status"], build["conclusion"]) == ("completed", "failure")
    assert "cannot prepare the job" in build["error"]
    assert "not in the plan" in build["error"]
    assert env.claim(runner) is None  # not queued again
