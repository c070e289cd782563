"""The server masks again what a remote runner sends (issue 7: "applied by the runner
before anything leaves it and again by the server").

A real server and the runner protocol over HTTP, played by a runner that does NOT mask
(an old or tampered runner): the canary it sends raw or encoded in log lines, a step
name, an output and the job's error never reaches the store or the API."""

from __future__ import annotations

import base64
import secrets as pysecrets
from typing import Any

import httpx
import pytest

from tests.integration.source.conftest import Hosted

WORKFLOW = """
    on: [push]
    jobs:
      build:
        runs-on: self-hosted
        env: {TOKEN: "${{ secrets.CANARY }}"}
        steps: [{run: echo build}]
"""


def _post(hosted: Hosted, path: str, token: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{hosted.url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.mark.parametrize("combined", [False, True], ids=["one-by-one", "report-and-finish"])
def test_what_an_unmasking_runner_sends_is_masked_by_the_server(
    hosted: Hosted, combined: bool
) -> None:
    """Each message on its own (older runners), or the step's start in a report and the
    log with the step's end in the finish message (this version's runners)."""
    canary = pysecrets.token_urlsafe(32)
    hosted.project()
    put = hosted.api("PUT", "/projects/app/secrets/CANARY", json={"value": canary})
    assert put.status_code == 201, put.text
    clone = hosted.clone("admin", hosted.admin_token)
    clone.write(".shipline/workflows/ci.yml", WORKFLOW)
    clone.commit("ci")
    clone.git("push", "-q", "origin", "main")
    [run] = hosted.wait_runs(1)

    reg = hosted.api("POST", "/runners/registration-tokens", json={"name": "t"})
    runner = _post(hosted, "/runner/register", reg.json()["token"], {"name": "r"}).json()["token"]
    job = _post(hosted, "/runner/jobs/request", runner, {"wait": 0}).json()
    assert job["run_id"] == run.id
    assert job["secrets"] == {"CANARY": canary}  # delivered to the job that references it
    token, job_id = job["token"], job["job_id"]

    encoded = base64.b64encode(f"user:{canary}".encode()).decode()
    step = {"index": 0, "key": "s1", "name": f"echo {canary}", "status": "in_progress"}
    text = f"raw {canary}\nbasic {encoded}\nclean line\n"
    chunks = {"chunks": [{"seq": job["next_seq"], "step": 0, "text": text}]}
    done = {"index": 0, "key": "s1", "name": f"echo {canary}", "status": "completed"}
    done |= {"conclusion": "failure", "exit_code": 1}
    finish: dict[str, Any] = {
        "conclusion": "failure",
        "outputs": {"leak": f"x{canary}x", "version": "1.2.3"},
        "error": f"the step failed with {canary}",
    }
    if combined:
        started = _post(hosted, f"/runner/jobs/{job_id}/report", token, {"steps": [step]})
        assert started.json() == {"stored": 0}
        finish |= chunks | {"steps": [done]}
    else:
        assert _post(hosted, f"/runner/jobs/{job_id}/steps", token, step).status_code == 204
        assert _post(hosted, f"/runner/jobs/{job_id}/logs", token, chunks).status_code == 200
        assert _post(hosted, f"/runner/jobs/{job_id}/steps", token, done).status_code == 204
    assert _post(hosted, f"/runner/jobs/{job_id}/finish", token, finish).status_code == 204

    log = hosted.api("GET", f"/runs/{run.id}/jobs/{job_id}/logs")
    assert log.status_code == 200
    raw, basic, clean = log.text.splitlines()
    assert (raw, clean) == ("raw ***", "clean line")
    # base64("user:" + secret): the bytes of "user:" stay readable, the secret's are masked.
    assert basic.startswith("basic dXNlcj") and basic.endswith("***")
    detail = hosted.api("GET", f"/runs/{run.id}").text
    for seen in (log.text, detail):
        assert canary not in seen and encoded not in seen
    body = hosted.api("GET", f"/runs/{run.id}").json()
    [stored] = [j for j in body["jobs"] if j["id"] == job_id]
    assert stored["error"] == "the step failed with ***"
    assert stored["outputs"] == {"version": "1.2.3"}  # the output holding the secret dropped
    assert [s["name"] for s in stored["steps"]] == ["echo ***"]
    audit = hosted.api("GET", "/audit", params={"limit": 200}).text
    assert canary not in audit
