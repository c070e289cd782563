"""Job logs over HTTP: plain text by range, and followed live as Server-Sent Events."""

from __future__ import annotations

import json
import threading
import time

from shipline.domain.status import Conclusion, Status
from shipline.testing import FrozenClock
from tests.integration.api.conftest import Api

RED = "\x1b[31mred\x1b[0m\n"


def started_job(api: Api) -> tuple[int, int]:
    api.project()
    response = api.client.post(
        "/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=api.auth()
    )
    run = response.json()["items"][0]
    with api.store.transaction() as tx:
        job = tx.jobs.claim("runner", None, lease_seconds=60, now=FrozenClock().now())
    assert job is not None and job.run_id == run["id"]
    return run["id"], job.id


def append(api: Api, job_id: int, seq: int, text: str, step: int = 0) -> None:
    with api.store.transaction() as tx:
        tx.logs.append(job_id, seq, text.encode(), step)


def complete(api: Api, job_id: int) -> None:
    with api.store.transaction() as tx:
        tx.jobs.set_status(job_id, Status.COMPLETED, Conclusion.SUCCESS, now=FrozenClock().now())


def events(lines: list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current:
                out.append(current)
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value
    return out


def test_plain_logs_by_range_keep_ansi_and_say_where_to_read_on(api: Api) -> None:
    run_id, job_id = started_job(api)
    for seq, text in enumerate(["one\n", RED, "three\n"]):
        append(api, job_id, seq, text)
    url = f"/api/v1/runs/{run_id}/jobs/{job_id}/logs"
    whole = api.client.get(url, headers=api.auth())
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/plain")
    assert whole.text == "one\n" + RED + "three\n"
    assert whole.headers["X-Next-Seq"] == "2"
    part = api.client.get(url, params={"after": 0, "limit": 1}, headers=api.auth())
    assert part.text == RED and part.headers["X-Next-Seq"] == "1"
    nothing = api.client.get(url, params={"after": 2}, headers=api.auth())
    assert nothing.text == "" and nothing.headers["X-Next-Seq"] == "2"
    assert (
        api.client.get(f"/api/v1/runs/{run_id}/jobs/999/logs", headers=api.auth()).status_code
        == 404
    )


def test_follow_streams_chunks_as_they_come_then_the_status_and_ends(api: Api) -> None:
    run_id, job_id = started_job(api)
    append(api, job_id, 0, "early\n")

    def later() -> None:
        time.sleep(0.3)
        append(api, job_id, 1, RED, step=1)
        time.sleep(0.2)
        complete(api, job_id)

    writer = threading.Thread(target=later)
    writer.start()
    url = f"/api/v1/runs/{run_id}/jobs/{job_id}/logs?follow=1"
    with api.client.stream("GET", url, headers=api.auth()) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    writer.join()
    got = events(lines)
    assert [e["event"] for e in got] == ["log", "log", "status"]
    assert [e["id"] for e in got[:2]] == ["0", "1"]
    assert json.loads(got[1]["data"]) == {"seq": 1, "step": 1, "text": RED}
    assert json.loads(got[2]["data"]) == {"status": "completed", "conclusion": "success"}


def test_a_follower_resumes_after_last_event_id(api: Api) -> None:
    run_id, job_id = started_job(api)
    for seq in range(4):
        append(api, job_id, seq, f"line {seq}\n")
    complete(api, job_id)
    url = f"/api/v1/runs/{run_id}/jobs/{job_id}/logs"
    headers = {**api.auth(), "Accept": "text/event-stream", "Last-Event-ID": "1"}
    with api.client.stream("GET", url, headers=headers) as response:
        got = events(list(response.iter_lines()))
    assert [e.get("id") for e in got] == ["2", "3", None]
    assert got[-1]["event"] == "status"
