"""Environment secrets on the `local` target: the instances read them from their
environment; the supervisor holds them in memory only, so an instance it restarts after a
crash, and the instances a restarted server re-adopts, still have them, while the value is
in no file of the state directory (state file, logs), no progress line and no process's
command line."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import urllib.request
from pathlib import Path

import pytest

from shipline.deploy.controller import RolloutController
from shipline.deploy.supervisor import group_alive
from shipline.deploy.types import Outcome
from shipline.spec.environment import load_environment
from tests.integration.deploy.helpers import make_release, port_block
from tests.integration.deploy.test_ssh import CANARY_APP, commands_containing, files_containing

pytestmark = pytest.mark.slow


def digest(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/canary", timeout=5) as response:
        value: str = json.load(response)["sha256"]
    return value


def test_local_instances_get_the_secrets_and_keep_them_across_restarts(tmp_path: Path) -> None:
    first = port_block()
    text = f"""
target:
  local:
    instances: 2
    start: python3 canary_app.py
    ports: {first}-{first + 20}
    grace: 5s
health:
  http: {{path: /healthz}}
  interval: 100ms
traffic:
  port: {first + 30}
  drain: 1s
"""
    env, diagnostics = load_environment(text, ".shipline/environments/canary.yml")
    assert env is not None and env.traffic is not None, [d.format() for d in diagnostics]
    router = env.traffic.port
    canary = "canary-" + secrets.token_hex(16)
    expected = hashlib.sha256(canary.encode()).hexdigest()
    made = make_release(tmp_path, "1.0.0")
    (made.directory / "canary_app.py").write_text(CANARY_APP)
    state = tmp_path / "state"
    log: list[str] = []

    async def scenario() -> None:
        controller = RolloutController(state)
        try:
            result = await controller.rollout(env, made, log.append, secrets={"CANARY": canary})
            assert result.outcome == Outcome.SUCCEEDED, (result.reason, log)
            assert await asyncio.to_thread(digest, router) == expected
            await controller.close()  # the server stops; supervisor and instances go on

            controller = RolloutController(state)  # a new server re-adopts them
            instances = (await controller.state(env)).instances
            assert len(instances) == 2
            victim = instances[0]
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)  # a crash: the supervisor restarts it
            for _ in range(100):
                now = {i.id: i for i in (await controller.state(env)).instances}
                if now[victim.id].restarts >= 1 and now[victim.id].state == "running":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the instance was not restarted")
            for _ in range(50):
                try:
                    if await asyncio.to_thread(digest, now[victim.id].port) == expected:
                        break
                except OSError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the restarted instance does not have the secret")
            # The killed instance's shell had started the service: nothing of its process
            # group runs on beside the restarted instance.
            assert not group_alive(victim.pid)
            needle = canary.encode()
            assert commands_containing(needle) == []
            assert files_containing(state, needle, set()) == []
            assert not any(canary in line for line in log)
        finally:
            await controller.shutdown(env)

    asyncio.run(scenario())
