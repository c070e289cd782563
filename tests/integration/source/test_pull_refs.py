"""Hosted pull requests beyond open/close: `refs/pull/<n>/head` and `refs/pull/<n>/merge`
(a test merge recomputed when head or base moves, absent on conflict), `reopened`, and the
`pull_request_target` runs each event raises at the base branch — with the real git client
against a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from shipline.domain.records import Trust
from shipline.domain.status import Conclusion, Status
from tests.integration.source.conftest import Clone, Hosted
from tests.integration.source.test_pulls import cli

PR = """
    on:
      pull_request:
        types: [opened, synchronize, reopened, closed]
    jobs:
      check: {runs-on: ubuntu-latest, steps: [{run: echo check}]}
"""
TARGET = """
    on: pull_request_target
    jobs:
      label: {runs-on: ubuntu-latest, steps: [{run: echo "base workflow"}]}
"""
SNEAKY = """
    on: pull_request_target
    jobs:
      test:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
            with: {ref: '${{ github.event.pull_request.head.sha }}'}
          - run: make test
"""


def remote_refs(work: Clone) -> dict[str, str]:
    out = work.git("ls-remote", "origin").stdout
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def refs_when(work: Clone, ready: Callable[[dict[str, str]], bool]) -> dict[str, str]:
    """The remote's refs once `ready` holds (a push's events come after its response)."""
    deadline = time.monotonic() + 20
    while True:
        refs = remote_refs(work)
        if ready(refs) or time.monotonic() > deadline:
            return refs
        time.sleep(0.05)


def setup(hosted: Hosted) -> tuple[Clone, str]:
    hosted.project()
    dev = hosted.user("dev", "developer")
    work = hosted.clone("dev", dev)
    work.write(".shipline/workflows/pr.yml", PR)
    work.write(".shipline/workflows/target.yml", TARGET)
    work.write("shared.txt", "base\n")
    work.commit("pipeline")
    work.git("push", "-q", "origin", "main")
    work.git("checkout", "-q", "-b", "feature")
    work.write("src/app.py", "print(1)\n")
    work.commit("feature")
    work.git("push", "-q", "origin", "feature")
    return work, dev


def test_pull_refs_follow_head_and_base_and_vanish_on_conflict(hosted: Hosted) -> None:
    work, dev = setup(hosted)
    opened = cli(hosted, dev, "pr", "open", "--head", "feature", "--json")
    assert opened.returncode == 0, opened.stderr
    pull = json.loads(opened.stdout)
    refs = remote_refs(work)
    assert refs["refs/pull/1/head"] == pull["head_sha"]
    merge = refs["refs/pull/1/merge"]
    work.git("fetch", "-q", "origin", "refs/pull/1/merge")
    parents = work.git("rev-list", "--parents", "-n", "1", merge).stdout.split()
    assert parents[1:] == [refs["refs/heads/main"], pull["head_sha"]]
    assert work.git("show", f"{merge}:src/app.py").stdout == "print(1)\n"
    (run,) = [r for r in hosted.runs() if r.id in pull["runs"] and r.event == "pull_request"]
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(run.id)
    assert isinstance(event, dict)
    details = event["pull_request"]
    assert isinstance(details, dict)
    assert (details["merge_commit_sha"], details["mergeable"]) == (merge, True)

    # the base moves on: a new test merge, no new run
    before = len(hosted.runs())
    work.git("checkout", "-q", "main")
    work.write("other.txt", "x\n")
    base2 = work.commit("base moves")
    work.git("push", "-q", "origin", "main")
    refs = refs_when(work, lambda r: r.get("refs/pull/1/merge") != merge)
    assert refs["refs/pull/1/merge"] != merge
    merge2 = refs["refs/pull/1/merge"]
    work.git("fetch", "-q", "origin", "refs/pull/1/merge")
    assert work.git("rev-parse", f"{merge2}^1").stdout.strip() == base2

    # head and base change the same line: no merge ref, and the event says so
    work.write("shared.txt", "main's line\n")
    work.commit("main edits shared")
    work.git("push", "-q", "origin", "main")
    work.git("checkout", "-q", "feature")
    work.write("shared.txt", "feature's line\n")
    head3 = work.commit("feature edits shared")
    work.git("push", "-q", "origin", "feature")
    sync = [r for r in hosted.wait_runs(before + 2) if r.sha == head3]
    refs = refs_when(work, lambda r: "refs/pull/1/merge" not in r)
    assert "refs/pull/1/merge" not in refs and refs["refs/pull/1/head"] == head3
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(sync[0].id)
    assert isinstance(event, dict) and event["action"] == "synchronize"
    details = event["pull_request"]
    assert isinstance(details, dict)
    assert (details["merge_commit_sha"], details["mergeable"]) == (None, False)

    # nobody pushes the pull refs themselves
    pushed = work.git("push", "--force", "origin", "HEAD~1:refs/pull/1/head", check=False)
    assert pushed.returncode != 0 and "only branches" in pushed.stderr


def test_reopen_raises_reopened_at_the_current_head(hosted: Hosted) -> None:
    work, dev = setup(hosted)
    assert cli(hosted, dev, "pr", "open", "--head", "feature").returncode == 0
    assert cli(hosted, dev, "pr", "close", "1").returncode == 0
    work.write("src/app.py", "print(3)\n")
    head = work.commit("while closed")
    work.git("push", "-q", "origin", "feature")
    count = len(hosted.runs())
    reopened = cli(hosted, dev, "pr", "reopen", "1", "--json")
    assert reopened.returncode == 0, reopened.stderr
    pull = json.loads(reopened.stdout)
    assert (pull["state"], pull["head_sha"]) == ("open", head)
    new = hosted.runs()[count:]
    assert sorted(r.event for r in new) == ["pull_request", "pull_request_target"]
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(new[0].id)
    assert isinstance(event, dict) and event["action"] == "reopened"
    # reopening an open one changes nothing; a viewer may not
    assert cli(hosted, dev, "pr", "reopen", "1", "--json").returncode == 0
    assert len(hosted.runs()) == count + 2
    viewer = hosted.user("viewer", "viewer")
    denied = hosted.api("POST", "/projects/app/pulls/1/reopen", token=viewer)
    assert denied.status_code == 403
    with hosted.context.store.transaction(write=False) as tx:
        actions = [e.action for e in tx.audit.page(limit=200).items]
    assert "pull.reopen" in actions


def test_pull_request_target_runs_the_base_workflow_trusted(hosted: Hosted) -> None:
    work, dev = setup(hosted)
    # the pull request rewrites the privileged workflow: the base's is what runs
    work.write(".shipline/workflows/target.yml", TARGET.replace("base workflow", "EVIL"))
    work.write(".shipline/workflows/sneaky.yml", SNEAKY)
    work.commit("try to change the privileged workflow")
    work.git("push", "-q", "origin", "feature")
    base = remote_refs(work)["refs/heads/main"]
    opened = cli(hosted, dev, "pr", "open", "--head", "feature", "--json")
    pull = json.loads(opened.stdout)
    runs = {r.event: r for r in hosted.runs() if r.id in pull["runs"]}
    target = runs["pull_request_target"]
    assert (target.ref, target.sha, target.trust) == ("refs/heads/main", base, Trust.TRUSTED)
    assert target.workflow_file == ".shipline/workflows/target.yml"
    with hosted.context.store.transaction(write=False) as tx:
        text, event = tx.runs.definition(target.id)
    assert "base workflow" in text and "EVIL" not in text
    assert isinstance(event, dict) and event["number"] == 1
    assert runs["pull_request"].sha == pull["head_sha"]


def test_a_privileged_checkout_of_the_head_fails_the_run_and_is_audited(hosted: Hosted) -> None:
    hosted.project()
    dev = hosted.user("dev", "developer")
    work = hosted.clone("dev", dev)
    work.write(".shipline/workflows/sneaky.yml", SNEAKY)
    work.commit("pipeline")
    work.git("push", "-q", "origin", "main")
    work.git("checkout", "-q", "-b", "feature")
    work.write("Makefile", "test:\n\tenv\n")
    work.commit("feature")
    work.git("push", "-q", "origin", "feature")
    opened = cli(hosted, dev, "pr", "open", "--head", "feature", "--json")
    pull = json.loads(opened.stdout)
    (run,) = [r for r in hosted.runs() if r.id in pull["runs"]]
    assert (run.event, run.status, run.conclusion) == (
        "pull_request_target",
        Status.COMPLETED,
        Conclusion.FAILURE,
    )
    assert run.error is not None and "unsafe_execute_untrusted_code: true" in run.error
    with hosted.context.store.transaction(write=False) as tx:
        denied = [e for e in tx.audit.page(limit=200).items if e.action == "run.untrusted_checkout"]
    assert [(e.decision, e.target) for e in denied] == [("denied", f"run:{run.id}")]
    # with the opt-in the run is planned, and the opt-in is audited
    work.git("checkout", "-q", "main")
    work.write(
        ".shipline/workflows/sneaky.yml",
        SNEAKY.replace("runs-on:", "unsafe_execute_untrusted_code: true\n        runs-on:"),
    )
    work.commit("opt in")
    work.git("push", "-q", "origin", "main")
    assert cli(hosted, dev, "pr", "close", "1").returncode == 0
    count = len(hosted.runs())
    assert cli(hosted, dev, "pr", "reopen", "1").returncode == 0
    (allowed,) = hosted.runs()[count:]
    assert allowed.event == "pull_request_target" and allowed.status is Status.QUEUED
    with hosted.context.store.transaction(write=False) as tx:
        audited = [
            (e.decision, e.target)
            for e in tx.audit.page(limit=200).items
            if e.action == "run.untrusted_checkout"
        ]
    assert ("allowed", f"run:{allowed.id}") in audited


OPT_IN = """
    on: pull_request_target
    jobs:
      untrusted:
        unsafe_execute_untrusted_code: true
        environment: production
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
            with: {ref: '${{ github.event.pull_request.head.sha }}'}
          - run: make test
            env: {KEY: '${{ secrets.DEPLOY_KEY }}', TOKEN: '${{ secrets.PROJECT_TOKEN }}'}
"""


def test_an_opted_in_job_gets_no_environment_secret_and_no_protected_cache(
    hosted: Hosted,
) -> None:
    """SECURITY-CASES 3, with the flag: the job of a trusted `pull_request_target` run
    that runs the pull request's code is handed no environment secret, and its cache
    scope is the untrusted one that trusted runs never restore."""
    from secrets import token_hex

    from shipline.engine.assignments import finish_assignment, read_assignment
    from shipline.engine.projects import ProjectService
    from shipline.engine.secrets import SecretService

    hosted.project()
    dev = hosted.user("dev", "developer")
    canary, token = token_hex(32), token_hex(32)
    for name, value, environment in (
        ("DEPLOY_KEY", canary, "production"),
        ("PROJECT_TOKEN", token, ""),
    ):
        body = {"value": value, "environment": environment}
        response = hosted.api("PUT", f"/projects/app/secrets/{name}", json=body)
        assert response.status_code == 201, response.text
    work = hosted.clone("dev", dev)
    work.write(".shipline/workflows/optin.yml", OPT_IN)
    work.commit("pipeline")
    work.git("push", "-q", "origin", "main")
    work.git("checkout", "-q", "-b", "feature")
    work.write("Makefile", "test:\n\tenv\n")
    work.commit("feature")
    work.git("push", "-q", "origin", "feature")
    pull = json.loads(cli(hosted, dev, "pr", "open", "--head", "feature", "--json").stdout)
    (run,) = [r for r in hosted.runs() if r.id in pull["runs"]]
    assert (run.event, run.trust) == ("pull_request_target", Trust.TRUSTED)
    context = hosted.context
    with context.store.transaction(write=False) as tx:
        (job,) = tx.jobs.for_run(run.id, run.attempt)
        read = read_assignment(tx, context.runs, job)
    projects = ProjectService(context.store, context.clock, context.access, context.runs)
    secrets = SecretService(context.store, context.clock, context.keyring, projects)
    prepared = finish_assignment(read, secrets=secrets)
    assignment = prepared.assignment
    assert assignment.secrets == {"PROJECT_TOKEN": token}  # as on GitHub: not the environment's
    assert canary not in json.dumps(dict(assignment.secrets))
    assert assignment.cache_scope == "app@refs/heads/main#untrusted"
    with context.store.transaction(write=False) as tx:
        refused = [
            e
            for e in tx.audit.page(action="secret.deliver", limit=20).items
            if e.decision == "denied"
        ]
    assert refused and "unsafe_execute_untrusted_code" in refused[0].reason
