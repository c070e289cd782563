"""Supervision of a local target: crashed instances restart with backoff, a stop that
SIGTERM does not end becomes SIGKILL, the instances and the router outlive the server
process, a restarted server re-adopts them, and hooks run in order within their timeouts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shipline.deploy.controller import RolloutController
from shipline.deploy.supervisor import group_alive
from shipline.deploy.types import Outcome
from tests.integration.deploy.helpers import (
    LoadGenerator,
    environment,
    make_release,
    versions_now,
    with_controller,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def test_crashed_instance_restarts_and_traffic_goes_on(tmp_path: Path) -> None:
    env = environment("crash", "all-at-once", instances=2)
    assert env.traffic is not None
    port = env.traffic.port
    v1 = make_release(tmp_path, "1.0.0")

    async def body(controller: RolloutController) -> None:
        assert (await controller.rollout(env, v1, print)).ok
        before = (await controller.state(env)).instances[0]
        assert before.pid is not None
        with LoadGenerator(port) as load:
            os.killpg(before.pid, signal.SIGKILL)
            for _ in range(100):
                await asyncio.sleep(0.1)
                now = {i.id: i for i in (await controller.state(env)).instances}[before.id]
                if now.restarts == 1 and now.state == "running":
                    break
            await asyncio.sleep(1.0)
        assert now.restarts == 1 and now.pid != before.pid
        assert load.failures == []  # the router sent the requests to the other instance
        assert await asyncio.to_thread(versions_now, port) == {"1.0.0": 40}

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_instances_outlive_the_server_and_are_readopted(tmp_path: Path) -> None:
    env = environment("adopt", "all-at-once", instances=2)
    assert env.traffic is not None
    port = env.traffic.port
    v1, v2 = make_release(tmp_path, "1.0.0"), make_release(tmp_path, "2.0.0")
    state_dir = tmp_path / "state"
    # A "server" process that deploys 1.0.0 and then dies without any cleanup.
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.integration.deploy import helpers
        from shipline.deploy.controller import RolloutController
        from shipline.deploy.types import Release
        from shipline.spec.environment import load_environment
        from pathlib import Path

        async def main():
            controller = RolloutController(Path({str(state_dir)!r}))
            result = await controller.rollout(ENV, Release("r-1.0.0", "1.0.0", Path({str(v1.directory)!r})), print)
            print("RESULT", result.outcome, flush=True)
            os.kill(os.getpid(), 9)

        ENV = {env!r}
        asyncio.run(main())
        """
    )
    namespace = (
        "from shipline.spec.environment_models import *\nfrom shipline.spec.models import Pos\n"
    )
    server = subprocess.run(
        [sys.executable, "-c", namespace + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "RESULT succeeded" in server.stdout, server.stdout + server.stderr
    assert server.returncode == -signal.SIGKILL
    # The server is gone: the router and the instances still answer.
    assert versions_now(port) == {"1.0.0": 40}

    async def body(controller: RolloutController) -> None:
        state = await controller.state(env)
        assert state.serving is not None and state.serving.id == v1.id
        assert len(state.instances) == 2 and all(i.routed for i in state.instances)
        with LoadGenerator(port) as load:
            result = await controller.rollout(env, v2, print)
        assert result.outcome == Outcome.SUCCEEDED, result.reason
        assert load.failures == []
        assert await asyncio.to_thread(versions_now, port) == {"2.0.0": 40}

    asyncio.run(with_controller(state_dir, env, body))


def test_stop_kills_an_instance_that_ignores_sigterm(tmp_path: Path) -> None:
    env = environment("stubborn", "all-at-once", instances=1)
    stubborn = make_release(tmp_path, "1.0.0")
    # The service ignores SIGTERM: only SIGKILL after the grace period (5 s) stops it.
    start = (
        'python3 -c "import os, signal, app; from http.server import ThreadingHTTPServer; '
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), app.Handler)"
        '.serve_forever()"'
    )
    env = _with_start(env, start)
    v2 = make_release(tmp_path, "2.0.0")

    async def body(controller: RolloutController) -> None:
        assert (await controller.rollout(env, stubborn, print)).ok
        old = (await controller.state(env)).instances[0]
        began = time.monotonic()
        assert (await controller.rollout(env, v2, print)).ok
        assert time.monotonic() - began >= 5.0  # waited the grace period
        assert old.pid is not None
        assert not group_alive(old.pid)  # the whole process group is gone

    asyncio.run(with_controller(tmp_path / "state", env, body))


def _with_start(env, start: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(env, target=replace(env.target, start=start))


def test_hooks_run_in_order_and_a_timeout_fails_the_batch(tmp_path: Path) -> None:
    trace = tmp_path / "trace.log"
    extra = """
hooks:
  BeforeInstall:
    - location: hooks/record.sh
  AfterInstall:
    - location: hooks/record.sh
  ApplicationStart:
    - location: hooks/record.sh
  ValidateService:
    - location: hooks/record.sh
    - location: hooks/slow.sh
      timeout: 1
"""
    env = environment("hooks", "all-at-once", instances=1, extra=extra)
    v1 = make_release(tmp_path, "1.0.0")
    hooks = v1.directory / "hooks"
    hooks.mkdir()
    (hooks / "record.sh").write_text(
        f'#!/bin/sh\necho "$LIFECYCLE_EVENT $SHIPLINE_PORTS" >> {trace}\n'
    )
    (hooks / "slow.sh").write_text("#!/bin/sh\n[ -f FAST ] || sleep 30\n")
    (v1.directory / "FAST").write_text("")
    for f in hooks.iterdir():
        f.chmod(0o755)
    v2 = make_release(tmp_path, "2.0.0")
    (v2.directory / "hooks").mkdir()
    for f in hooks.iterdir():
        (v2.directory / "hooks" / f.name).write_bytes(f.read_bytes())
        (v2.directory / "hooks" / f.name).chmod(0o755)

    async def body(controller: RolloutController) -> None:
        first = await controller.rollout(env, v1, print)
        assert first.ok, first.reason
        events = [line.split()[0] for line in trace.read_text().splitlines()]
        assert events == ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]
        began = time.monotonic()
        second = await controller.rollout(env, v2, print)
        assert time.monotonic() - began < 20
        assert second.outcome == Outcome.ROLLED_BACK
        assert second.cause == "hooks"
        assert second.reason == "ValidateService: script hooks/slow.sh timed out after 1s"
        assert env.traffic is not None
        assert await asyncio.to_thread(versions_now, env.traffic.port) == {"1.0.0": 40}

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_secrets_reach_instances_only_in_memory(tmp_path: Path) -> None:
    env = environment("secret", "all-at-once", instances=1)
    # The instance refuses to start without the secret.
    env = _with_start(env, 'test "$API_TOKEN" = "s3cret-value-42" && exec python3 app.py')
    v1 = make_release(tmp_path, "1.0.0")
    hook_log = v1.directory / "hook.log"
    (v1.directory / "scripts" / "before_install.sh").write_text(
        f'#!/bin/sh\necho "$DEPLOYMENT_ID" > {hook_log}\n'
    )
    state_dir = tmp_path / "state"

    async def body(controller: RolloutController) -> None:
        result = await controller.rollout(
            env, v1, print, deployment_id="dep-77", secrets={"API_TOKEN": "s3cret-value-42"}
        )
        assert result.ok, result.reason
        assert hook_log.read_text().strip() == "dep-77"
        for file in state_dir.rglob("*"):
            if file.is_file():
                assert b"s3cret-value-42" not in file.read_bytes(), file
        assert all("s3cret-value-42" not in e for e in result.events)

    asyncio.run(with_controller(state_dir, env, body))
