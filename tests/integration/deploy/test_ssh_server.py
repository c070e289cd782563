"""The ssh target behind a real server: a workflow builds the example service, its deploy
job rolls the artifact out to an sshd on a loopback port with the server's deployment
controller. The SSH key and a canary are environment secrets set through the API; the
service reads the canary, which appears in no API answer, job log, audit record or file of
the server's state directory."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn

from shipline.domain.records import TokenKind
from shipline.security.tokens import new_token
from shipline.server.app import create_app
from shipline.settings import Settings
from shipline.wiring import build_deployment_worker, build_server, deployment_controller
from tests.integration.deploy.helpers import EXAMPLE, free_port
from tests.integration.deploy.test_ssh import (
    CANARY_APP,
    Host,
    client_key,  # noqa: F401 - a fixture
    files_containing,
    get,
    sshd,  # noqa: F401 - a fixture
)
from tests.integration.deployments.conftest import DeployServer, _serve, commit, git, write

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="sshd"),
]

WORKFLOW = """
on: [push, workflow_dispatch]
jobs:
  build:
    runs-on: x
    steps:
      - uses: actions/checkout@v4
      - uses: actions/upload-artifact@v4
        with: {name: app, path: app}
  prod:
    needs: build
    runs-on: x
    environment: {name: production}
    steps:
      - uses: shipline/deploy@v1
        with: {artifact: app}
"""


def environment_file(host: Host, service_port: int) -> str:
    return f"""
target:
  ssh:
    hosts:
      - {{host: 127.0.0.1, port: {host.port}, host_key: "{host.host_key}"}}
    user: root
    key_secret: DEPLOY_SSH_KEY
    path: {host.directory}
    restart: sh scripts/restart.sh
    service_port: {service_port}
    env: {{APP_COMMAND: python3 canary_app.py}}
health:
  http: {{path: /healthz}}
  interval: 100ms
  start_timeout: 20s
"""


@pytest.fixture
def deploy_server(
    tmp_path: Path,
    sshd: Callable[[str], Host],  # noqa: F811
) -> Iterator[tuple[DeployServer, Host, int]]:
    host = sshd("web")
    service_port = free_port()
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    shutil.copytree(
        EXAMPLE, repo / "app", ignore=shutil.ignore_patterns(".shipline", "__pycache__")
    )
    (repo / "app" / "VERSION").write_text("4.2.0\n")
    (repo / "app" / "canary_app.py").write_text(CANARY_APP)
    # The release's version is the commit here: validate against the VERSION file instead.
    validate = repo / "app" / "scripts" / "validate.sh"
    validate.write_text(
        "#!/bin/sh\n"
        "test \"$(python3 -c 'import json,sys,urllib.request as u; "
        'print(json.load(u.urlopen(sys.argv[1]))["version"])\' '
        '"http://127.0.0.1:$SHIPLINE_PORTS/version")" = "$(cat VERSION)"\n'
    )
    validate.chmod(0o755)
    write(repo, ".shipline/workflows/deploy.yml", WORKFLOW)
    write(repo, ".shipline/environments/production.yml", environment_file(host, service_port))
    commit(repo, "pipeline")

    state = tmp_path / "state"
    admin = new_token(TokenKind.USER)[0]
    settings = Settings(
        state_dir=state,
        database_url=f"sqlite:///{state}/shipline.db",
        runner_slots=2,
        admin_token=admin,
        port=0,
    )
    context, runner = build_server(
        settings, host_env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    )
    context.access.bootstrap_admin(admin)
    worker = build_deployment_worker(settings, context, deployment_controller(settings))
    worker.poll_interval = 0.05
    config = uvicorn.Config(create_app(context), host="127.0.0.1", port=0, log_level="warning")
    http = uvicorn.Server(config)
    http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    server = DeployServer("", context, runner, worker, None, admin, repo, state)  # type: ignore[arg-type]
    ready = threading.Event()
    thread = threading.Thread(target=_serve, args=(server, http, ready), daemon=True)
    thread.start()
    assert ready.wait(20), "the server did not start"
    server.url = f"http://127.0.0.1:{http.servers[0].sockets[0].getsockname()[1]}"
    answer = server.call(
        "POST", "/projects", json={"name": "app", "repository": str(repo), "default_branch": "main"}
    )
    assert answer.status_code == 201, answer.text
    try:
        yield server, host, service_port
    finally:
        http.should_exit = True
        thread.join(30)
        context.store.close()  # type: ignore[attr-defined]
        pidfile = host.directory / "shared" / "app.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)


def test_a_workflow_deploys_to_an_ssh_host_with_the_environments_secrets(
    deploy_server: tuple[DeployServer, Host, int],
    client_key: tuple[str, str],  # noqa: F811
) -> None:
    server, host, service_port = deploy_server
    canary = "canary-" + secrets.token_hex(16)
    for name, value in (("DEPLOY_SSH_KEY", client_key[0]), ("CANARY", canary)):
        answer = server.call(
            "PUT",
            f"/projects/app/secrets/{name}",
            json={"value": value, "environment": "production"},
        )
        assert answer.status_code in (200, 201), answer.text
    alice = server.user("alice", "maintainer")
    run_id = server.trigger(alice)

    def finished() -> dict[str, object] | None:
        jobs = {j["key"]: j for j in server.run(run_id)["jobs"]}
        job = jobs.get("prod")
        return job if job is not None and job["status"] == "completed" else None

    done = server.wait(finished, timeout=240)
    [deployment] = server.call(
        "GET", "/projects/app/deployments", params={"environment": "production"}
    ).json()["items"]
    progress = server.call("GET", f"/deployments/{deployment['id']}/progress").text
    assert done["conclusion"] == "success", progress
    assert deployment["state"] == "success", progress

    assert get(service_port, "/version")["version"] == "4.2.0"
    assert get(service_port, "/canary")["sha256"] == hashlib.sha256(canary.encode()).hexdigest()
    release = str(deployment["release"]["id"])
    assert (host.directory / "current").readlink() == Path("releases") / release

    answers = [
        progress,
        server.call("GET", "/projects/app/deployments").text,
        server.call("GET", f"/deployments/{deployment['id']}").text,
        server.call("GET", "/audit", params={"limit": 500}).text,
        json.dumps(server.run(run_id)),
        server.log(run_id, done["id"]),
    ]
    assert all(canary not in text for text in answers)
    assert files_containing(server.state, canary.encode(), set()) == []
    key_line = client_key[0].splitlines()[1].encode()
    assert files_containing(server.state, key_line, set()) == []
