"""A remote runner masks before anything leaves it (issue 7; SECURITY-CASES 11-13, 16).

A real server, a real `shipline runner` process, and between them a recording proxy on
127.0.0.1: every request the runner sends to the server is kept. The step prints a
canary secret raw, as base64 of `user:secret`, split across two writes, and a value it
derives and registers with `::add-mask::` (which the server cannot know): none of them is
in anything the runner sent, nor in the runner's or server's own diagnostic log, and the
stored log shows `***`."""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.conftest import Repo
from tests.e2e.test_remote_runners import Cluster, logs, trigger
from tests.e2e.test_server import wait_completed
from tests.integration.source.conftest import free_port

WORKFLOW = """
    on: [workflow_dispatch]
    jobs:
      leak:
        runs-on: [self-hosted]
        env: {S: "${{ secrets.CANARY }}"}
        steps:
          - run: |
              echo "raw $S"
              printf '%s' "user:$S" | base64 -w0; echo
              printf 'split %s' "${S:0:10}"; sleep 0.3; printf '%s\\n' "${S:10}"
              D=$(printf '%s' "$S" | sha256sum | cut -c1-40)
              echo "::add-mask::$D"
              echo "derived $D"
              echo "::debug::debug $D"
              echo "summary $S $D" >> "$GITHUB_STEP_SUMMARY"
"""
HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


class Recorder:
    """A proxy to `target` that keeps every request body it forwards."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.bodies: list[tuple[str, bytes]] = []
        self.port = free_port()
        app = Starlette(
            routes=[Route("/{path:path}", self.forward, methods=["GET", "POST", "PUT"])]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        self.bodies.append((f"{request.method} {request.url.path}", body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with httpx.AsyncClient(base_url=self.target, timeout=120) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=body,
                headers=headers,
            )
        back = {k: v for k, v in answer.headers.items() if k.lower() not in HOP}
        return Response(answer.content, status_code=answer.status_code, headers=back)

    def __enter__(self) -> Recorder:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path, "")
    yield made
    made.close()


def test_a_remote_runner_sends_nothing_unmasked(cluster: Cluster) -> None:
    server = cluster.server()
    canary = pysecrets.token_urlsafe(32)
    derived = hashlib.sha256(canary.encode()).hexdigest()[:40]
    repo = Repo(cluster.tmp / "repo")
    repo.workflow(WORKFLOW)
    repo.commit("pipeline")
    assert cluster.cli("projects", "create", "app", "--repo", "repo").returncode == 0
    put = httpx.put(
        f"{server.url}/api/v1/projects/app/secrets/CANARY",
        json={"value": canary},
        headers={"Authorization": f"Bearer {cluster.token}"},
    )
    assert put.status_code == 201, put.text
    with Recorder(server.url) as proxy:
        cluster.servers[0].url, real = proxy.url, server.url  # the runner registers via it
        config = cluster.register("r1")
        cluster.servers[0].url = real
        runner = cluster.runner(config)
        run_id = trigger(cluster)
        run = wait_completed(cluster.cli, run_id)
        text = logs(cluster, run_id)
        assert run["conclusion"] == "success", text + runner.stderr

    sent = b"\n".join(body for _, body in proxy.bodies)
    # The log went through it (in a report, or with the job's end).
    assert any(
        path.endswith(("/report", "/finish")) and b'"text"' in body for path, body in proxy.bodies
    )
    encoded = base64.b64encode(f"user:{canary}".encode()).decode()
    for value in (canary, encoded[8:-4], derived):
        assert value.encode() not in sent
    for line in ("raw ***", "derived ***", "split ***"):
        assert line in text, text
    for value in (canary, derived):
        assert value not in text
        # Nor in the runner's or the server's own diagnostic log (SECURITY-CASES 16).
        assert value not in runner.stderr and value not in server.stderr
