"""Secrets reaching jobs on the embedded runner: real store, git, bash and key file.

A canary (random, with characters every encoding changes) is set as a secret; jobs print it
raw and encoded, split across writes, and in errors and outputs. It must never appear in the
stored logs, job outputs, errors or the audit trail (SECURITY-CASES 1, 2, 11-14, 18).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets as pysecrets
import socket
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipline.domain.clock import SystemClock
from shipline.domain.records import RunRecord, Trust
from shipline.domain.status import Conclusion, Status
from shipline.engine.access import AccessService, Principal
from shipline.engine.embedded import EmbeddedRunner
from shipline.engine.environment_files import EnvironmentFiles
from shipline.engine.gates import GateService
from shipline.engine.projects import ProjectService
from shipline.engine.secrets import SecretService
from shipline.engine.service import RunService, TriggerRequest
from shipline.executors.base import Executor
from shipline.executors.sandbox import SandboxExecutor, probe
from shipline.executors.shell import ShellExecutor
from shipline.plan.events import Event
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.scm.git_checkout import GitSourceProvider
from shipline.scm.repository import GitRepository
from shipline.security.keyfiles import SecretsKeySource
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore
from shipline.store.sql.store import SqlStore

WORKFLOW = r"""
on: [push, pull_request]
jobs:
  leak:
    runs-on: x
    outputs:
      plain: ${{ steps.o.outputs.plain }}
      secret: ${{ steps.o.outputs.secret }}
    env:
      TOKEN: ${{ secrets.API_TOKEN }}
      MULTI: ${{ secrets.PEM }}
    steps:
      - id: o
        run: |
          echo "raw: $TOKEN"
          printf '%s' "$TOKEN" | base64 -w0; echo
          printf 'user:%s' "$TOKEN" | base64 -w0; echo
          python3 -c 'import os, urllib.parse as u; print(u.quote(os.environ["TOKEN"], safe=""))'
          python3 -c 'import os, json; print(json.dumps(os.environ["TOKEN"]))'
          printf '%q\n' "$TOKEN"
          printf '%s' "${TOKEN:0:12}"; sleep 0.3; printf '%s\n' "${TOKEN:12}"
          echo "$MULTI"
          echo "has token: $([ -n "$TOKEN" ] && echo yes || echo no)"
          echo "unreferenced: ${UNUSED:-absent}"
          echo "plain=visible" >> "$GITHUB_OUTPUT"
          echo "secret=pre-$TOKEN-post" >> "$GITHUB_OUTPUT"
          echo "## summary $TOKEN" >> "$GITHUB_STEP_SUMMARY"
          echo "::error title=t $TOKEN::bad $TOKEN"
      - run: |
          echo "exit with $TOKEN in the error"
          exit 3
  prod:
    runs-on: x
    environment: production
    steps:
      - run: |
          echo "prod sees: ${{ secrets.DEPLOY == '' && 'nothing' || 'a value' }}"
          echo "nope: ${{ secrets.NOPE != '' }}"
  staging:
    runs-on: x
    environment: staging
    env:
      D: ${{ secrets.DEPLOY }}
    steps:
      - run: |
          echo "staging deploy secret: ${D:-absent}"
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def canary() -> str:
    return f"Cn4ry/{pysecrets.token_hex(16)}+'q\"u & <t> {pysecrets.token_hex(8)}"


@dataclass
class World:
    store: SqlStore
    runs: RunService
    secrets: SecretService
    runner: EmbeddedRunner
    admin: Principal
    tmp: Path


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path, lambda: ShellExecutor(kill_grace=1.0))


def build_world(tmp_path: Path, executor: Callable[[], Executor]) -> World:
    source = tmp_path / "source"
    (source / ".shipline" / "workflows").mkdir(parents=True)
    git(source, "init", "-q", "-b", "main")
    git(source, "config", "user.email", "dev@example.com")
    git(source, "config", "user.name", "Dev")
    (source / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(WORKFLOW))
    # Open environments (no reviewers; untrusted runs allowed, to see that they still get
    # no secret): their gates pass at once.
    (source / ".shipline" / "environments").mkdir(parents=True)
    for name in ("production", "staging"):
        (source / ".shipline" / "environments" / f"{name}.yml").write_text(
            "target: {local: {start: ./run}}\ntraffic: {port: 8080}\n"
            "protection: {allow_untrusted: true}\n"
        )
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "pipeline")
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = SystemClock()
    access = AccessService(store, clock)
    token = access.bootstrap_admin(None)
    assert token is not None
    admin = access.authenticate(token)
    mirrors = tmp_path / "mirrors"
    runs = RunService(store, clock, lambda p: GitRepository(p.repository, mirrors / str(p.id)))
    projects = ProjectService(store, clock, access, runs)
    projects.create(admin, "app", str(source))
    runs.gatekeeper = GateService(
        store,
        clock,
        EnvironmentFiles(lambda p: GitRepository(p.repository, mirrors / str(p.id))),
        runs,
        projects,
    )
    keys = SecretsKeySource(tmp_path / "state")
    (tmp_path / "state").mkdir()
    service = SecretService(store, clock, keys.keyring, projects)
    blobs = BlobStore(tmp_path / "blobs")

    def make_runner(observer: JobObserver, run: RunRecord) -> JobRunner:
        return JobRunner(
            executor(),
            observer,
            work_root=tmp_path / "work" / str(run.id),
            artifacts=LocalArtifactStore(blobs, tmp_path / "runs" / str(run.id)),
            caches=LocalCacheStore(blobs, tmp_path / "caches.json"),
            source=GitSourceProvider(mirrors / str(run.project_id)),
            host_env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )

    runner = EmbeddedRunner(
        store,
        runs,
        clock,
        slots=2,
        make_runner=make_runner,
        owner="embedded:test",
        poll_interval=0.05,
        secrets=service,
    )
    return World(store, runs, service, runner, admin, tmp_path)


def run_to_end(world: World, event: str, workflow: str = "ci.yml") -> RunRecord:
    with world.store.transaction() as tx:
        project = tx.projects.get("app")
    assert project is not None
    if event == "pull_request":  # untrusted, as the server classifies a fork's pull request
        repo = world.runs.repositories(project)
        repo.fetch()
        ref, sha = repo.resolve("main")
        pull = Event(name=event, ref=ref, sha=sha, repository=project.name, actor="dev")
        started = world.runs.trigger_event(project, pull, trust=Trust.UNTRUSTED, fetch=False)
    else:
        asked = TriggerRequest(ref="main", event=event, workflow=workflow)
        started = world.runs.trigger(project, asked, actor="dev")
    [run] = [r for r in started if r.workflow_file.endswith(workflow)]

    async def scenario() -> RunRecord:
        task = asyncio.ensure_future(world.runner.run())
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                with world.store.transaction() as tx:
                    found = tx.runs.get(run.id)
                assert found is not None
                if found.status is Status.COMPLETED:
                    return found
                await asyncio.sleep(0.05)
            raise AssertionError("the run did not complete")
        finally:
            await world.runner.stop(grace=5)
            await task

    return asyncio.run(scenario())


def everything_stored(world: World, run_id: int) -> tuple[dict[str, str], str]:
    """Each job's log, and every other stored text of the run (jobs, audit) as one string."""
    with world.store.transaction() as tx:
        jobs = tx.jobs.for_run(run_id)
        logs = {j.key: b"".join(c.data for c in tx.logs.read(j.id)).decode() for j in jobs}
        audit = list(tx.audit.iterate())
    rest = json.dumps(
        [[j.key, j.outputs, j.error] for j in jobs]
        + [[a.action, a.target, a.reason, a.data] for a in audit],
        default=str,
    )
    return logs, rest


def test_a_trusted_job_gets_what_it_references_masked_in_every_form(world: World) -> None:
    token, pem_body = canary(), pysecrets.token_hex(24)
    pem = f"-----BEGIN KEY-----\n{pem_body[:24]}\n{pem_body[24:]}\n-----END KEY-----"
    deploy_prod = canary()
    world.secrets.set(world.admin, "app", "API_TOKEN", token)
    world.secrets.set(world.admin, "app", "PEM", pem)
    world.secrets.set(world.admin, "app", "DEPLOY", deploy_prod, environment="production")
    world.secrets.set(world.admin, "app", "UNUSED", canary())
    run = run_to_end(world, "push")
    assert run.trust is Trust.TRUSTED
    assert run.error is None, run.error
    logs, rest = everything_stored(world, run.id)
    everything = "\n".join(logs.values()) + rest
    for value in (token, pem_body[:24], pem_body[24:], deploy_prod):
        assert value not in everything
    leak = logs["leak"]
    assert "raw: ***" in leak
    assert "has token: yes" in leak
    assert "unreferenced: absent" in leak  # not referenced, not delivered
    # Each printed form lost the part that would reveal the value.
    for piece in (token[6:20], 'q\\"u', "%2B%27q"):
        assert piece not in leak, piece
    assert leak.count("***") >= 10
    assert "prod sees: a value" in logs["prod"]
    assert "nope: false" in logs["prod"]  # referenced but not set
    assert "staging deploy secret: absent" in logs["staging"]  # scoped to production only
    with world.store.transaction() as tx:
        jobs = {j.key: j for j in tx.jobs.for_run(run.id)}
        delivered = [a for a in tx.audit.iterate() if a.action == "secret.deliver"]
    assert jobs["leak"].outputs == {"plain": "visible"}  # the output with the secret dropped
    assert "Warning: skip output 'secret'" in leak
    assert jobs["leak"].conclusion is Conclusion.FAILURE
    by_job = {a.data["job"]: a.data for a in delivered}  # type: ignore[index]
    assert by_job["leak"]["names"] == ["API_TOKEN", "PEM"]
    assert by_job["prod"]["names"] == ["DEPLOY"]
    assert by_job["prod"]["missing"] == ["NOPE"]
    assert by_job["staging"]["names"] == []


def test_an_untrusted_run_receives_no_secret_and_the_refusal_is_audited(world: World) -> None:
    token = canary()
    world.secrets.set(world.admin, "app", "API_TOKEN", token)
    world.secrets.set(world.admin, "app", "DEPLOY", canary(), environment="production")
    run = run_to_end(world, "pull_request")
    assert run.trust is Trust.UNTRUSTED
    logs, rest = everything_stored(world, run.id)
    assert "has token: no" in logs["leak"]
    assert "prod sees: nothing" in logs["prod"]
    assert token not in "\n".join(logs.values()) + rest
    with world.store.transaction() as tx:
        refused = [a for a in tx.audit.iterate() if a.action == "secret.deliver"]
    assert refused and all(a.decision == "denied" for a in refused)
    assert all("untrusted" in a.reason for a in refused)


# SECURITY-CASES 15: transformations masking does not cover, in a trusted run.
TRANSFORMED = r"""
on: [push, pull_request]
jobs:
  transform:
    runs-on: x
    env:
      S: ${{ secrets.API_TOKEN }}
    steps:
      - run: |
          echo "double: $(printf '%s' "$S" | base64 -w0 | base64 -w0)"
          echo "hex: $(printf '%s' "$S" | od -An -tx1 -v | tr -d ' \n')"
          echo "reversed: $(printf '%s' "$S" | rev)"
          echo "pieces: ${S:0:4}|${S:4}"
          K=$(printf '%s' "$S" | sha256sum | cut -c1-16 | tr 'a-f0-9' 'ABCDEFQRSTUVWXYZ')
          echo "aws: AK""IA$K"
          echo "-----BEGIN OPENSSH PRIV""ATE KEY-----"
  bystander:
    runs-on: x
    steps:
      - run: |
          echo "bystander env: $(env | base64 -w0)"
          echo "bystander files: $(grep -rl -- "${MARK:-Cn4ry/}" "$HOME" /tmp 2>/dev/null | wc -l)"
"""


def add_workflow(world: World, name: str, text: str) -> None:
    source = world.tmp / "source"
    (source / ".shipline" / "workflows" / name).write_text(textwrap.dedent(text))
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", name)


def test_transformed_values_are_not_masked_but_the_real_controls_hold(world: World) -> None:
    """Masking is not a boundary: double base64, hex, reversed and pieces of the secret
    are printed as they are (this test documents it). What holds instead: only the job
    that references the secret receives it (the bystander's whole environment, decoded,
    does not hold it), and the post-run scanner flags credential shapes in the log."""
    token = canary()
    world.secrets.set(world.admin, "app", "API_TOKEN", token)
    add_workflow(world, "transformed.yml", TRANSFORMED)
    run = run_to_end(world, "push", "transformed.yml")
    assert run.trust is Trust.TRUSTED
    logs, rest = everything_stored(world, run.id)
    log = logs["transform"]
    double = base64.b64encode(base64.b64encode(token.encode())).decode()
    for shown in (
        f"double: {double}",
        f"hex: {token.encode().hex()}",
        f"reversed: {token[::-1]}",
        f"pieces: {token[:4]}|{token[4:]}",
    ):
        assert shown in log.splitlines(), shown  # not masked: masking is no boundary
    assert token not in log  # the value itself still is
    # The real control: the job that does not reference the secret never had it.
    [env_line] = [x for x in logs["bystander"].splitlines() if x.startswith("bystander env: ")]
    environment = base64.b64decode(env_line.removeprefix("bystander env: ")).decode()
    assert "PATH=" in environment and token not in environment
    assert token not in logs["bystander"]
    with world.store.transaction() as tx:
        audit = list(tx.audit.iterate())
    delivered = {a.data["job"]: a.data["names"] for a in audit if a.action == "secret.deliver"}  # type: ignore[index]
    assert delivered == {"transform": ["API_TOKEN"]}  # the bystander asked for nothing
    # The scanner: a warning per finding (rule and line, never the value) and an audit event.
    key = "AKIA" + hashlib.sha256(token.encode()).hexdigest()[:16].translate(
        str.maketrans("abcdef0123456789", "ABCDEFQRSTUVWXYZ")
    )
    lines = log.splitlines()
    aws_line = lines.index(f"aws: {key}") + 1
    pem_line = lines.index("-----BEGIN OPENSSH PRIVATE KEY-----") + 1
    warnings = [x for x in lines if x.startswith("Warning: the log scanner found")]
    assert len(warnings) == 2, warnings
    assert f"(aws-access-token) at line {aws_line} " in warnings[0]
    assert f"(private-key) at line {pem_line} " in warnings[1]
    assert key not in "\n".join(warnings)
    [found] = [a for a in audit if a.action == "log.credential_found"]
    assert found.target.startswith("job:") and found.data["job"] == "transform"  # type: ignore[index]
    assert found.data["findings"] == [  # type: ignore[index]
        {"rule": "aws-access-token", "line": aws_line},
        {"rule": "private-key", "line": pem_line},
    ]
    assert key not in rest and token not in rest
    assert "log.credential_found" not in {a.action for a in audit if a.target == "job:bystander"}


EGRESS = r"""
on: [push, pull_request]
jobs:
  egress:
    runs-on: x
    steps:
      - run: |
          python3 -c 'import socket; socket.create_connection(("127.0.0.1", PORT), timeout=3)' \
            && echo "egress: open" || echo "egress: blocked"
"""


@pytest.fixture
def sandbox_worlds(tmp_path: Path) -> Callable[[str], World]:
    """Worlds whose runner runs steps in the sandbox (one per run: a world's embedded
    runner runs once)."""
    reason = probe()
    if reason is not None:
        pytest.skip(f"the sandbox cannot run here: {reason}")
    if os.geteuid() != 0:
        pytest.skip("the sandboxed runner runs as root here")

    def make(name: str) -> World:
        (tmp_path / name).mkdir()
        return build_world(tmp_path / name, lambda: SandboxExecutor(kill_grace=0.5))

    return make


def test_an_untrusted_job_has_no_network_a_trusted_one_has(
    sandbox_worlds: Callable[[str], World],
) -> None:
    """SECURITY-CASES 15 (and 1, 31): what stops a transformed secret from leaving is not
    masking but the sandbox's default-deny egress for untrusted runs. A listener on the
    host's loopback: the untrusted job cannot reach it; the trusted run of the same
    workflow can (the control that shows the probe works)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    try:
        world = sandbox_worlds("untrusted")
        add_workflow(world, "egress.yml", EGRESS.replace("PORT", str(port)))
        untrusted = run_to_end(world, "pull_request", "egress.yml")
        logs, _ = everything_stored(world, untrusted.id)
        assert untrusted.trust is Trust.UNTRUSTED
        assert "egress: blocked" in logs["egress"], logs["egress"]
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing came through
        world = sandbox_worlds("trusted")
        add_workflow(world, "egress.yml", EGRESS.replace("PORT", str(port)))
        trusted = run_to_end(world, "push", "egress.yml")
        logs, _ = everything_stored(world, trusted.id)
        assert "egress: open" in logs["egress"], logs["egress"]
    finally:
        listener.close()


JOB_TOKEN = r"""
on: push
jobs:
  uses:
    runs-on: x
    outputs:
      token: ${{ steps.t.outputs.token }}
    steps:
      - id: t
        env:
          T: ${{ secrets.GITHUB_TOKEN }}
        run: |
          echo "raw: ${{ github.token }}"
          printf '%s' "$T" | base64 -w0; echo
          printf 'x-access-token:%s' "$T" | base64 -w0; echo
          echo "reversed: $(printf '%s' "$T" | rev)"
          echo "token=$T" >> "$GITHUB_OUTPUT"
          echo "## summary $T" >> "$GITHUB_STEP_SUMMARY"
          echo "in env: ${GITHUB_TOKEN:-unset}"
  ignores:
    runs-on: x
    steps:
      - run: |
          echo "job tokens in the environment: $(env | grep -c "shp_[j]_" || true)"
"""


def test_each_job_gets_its_own_token_masked_and_stored_only_as_a_hash(world: World) -> None:
    """The embedded runner's jobs get a job token (SECURITY-CASES 20-22): a step sees it
    only where the workflow references it, every printed form is masked, an output holding
    it is dropped, it is stored nowhere in plain text (only its hash), and it is revoked
    once the job ends. A job none of whose steps can reach it is issued none."""
    add_workflow(world, "token.yml", JOB_TOKEN)
    run = run_to_end(world, "push", "token.yml")
    assert run.conclusion is Conclusion.SUCCESS, run.error
    logs, rest = everything_stored(world, run.id)
    log = logs["uses"]
    assert "raw: ***" in log and "in env: unset" in log
    assert "shp_j_" not in "\n".join(logs.values()) + rest
    assert "job tokens in the environment: 0" in logs["ignores"]
    # Masking is no boundary (case 15): reversed, it shows; so the test learns the value.
    [reversed_line] = [line for line in log.splitlines() if "reversed: " in line]
    token = reversed_line.split("reversed: ", 1)[1].strip()[::-1]
    assert token.startswith("shp_j_")
    for form in (
        token,
        base64.b64encode(token.encode()),
        base64.b64encode(b"x-access-token:" + token.encode()),
    ):
        text = form if isinstance(form, str) else form.decode()
        assert text not in "\n".join(logs.values()) + rest
    assert log.count("***") >= 3  # raw, base64, base64 of x-access-token:<token>
    assert "Warning: skip output 'token'" in log
    # The job's own scratch directory aside (its steps' files), nothing holds it: not the
    # database, logs, artifacts or caches.
    files = [p for p in world.tmp.rglob("*") if p.is_file() and "work" not in p.parts]
    assert [p for p in files if token.encode() in p.read_bytes()] == []
    assert any(p.name == "db.sqlite" for p in files)
    with world.store.transaction() as tx:
        jobs = {j.key: j for j in tx.jobs.for_run(run.id)}
        found = tx.tokens.find(hashlib.sha256(token.encode()).hexdigest())
        record = None if found is None else found.token
        issued = [a for a in tx.audit.iterate() if a.action == "token.issue_job"]
    assert jobs["uses"].outputs == {}
    assert record is not None and record.job_id == jobs["uses"].id
    assert record.secret_hash != token and record.revoked_at is not None
    assert [a.target for a in issued] == [f"job:{jobs['uses'].id}"]
    with world.store.transaction() as tx:
        revoked = [a.target for a in tx.audit.iterate() if a.action == "token.revoke_job"]
    assert revoked == [f"job:{jobs['uses'].id}"]
