"""One demo from start to finish: server, users, project, push, run, approval, services.

`Demo.start()` sets the server up, `Demo.push()` pushes the repository (which starts the
run), `Demo.follow()` follows the run to its end (approving production when
`auto_approve`), `Demo.check_services()` asks each router for the deployed version, and
`Demo.stop()` stops everything the demo started. Progress goes to the `say` callback, one
line at a time.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shipline.demo import repository
from shipline.demo.api import Api, ApiError
from shipline.demo.environments import stop_environments
from shipline.demo.repository import GitError, Placement
from shipline.demo.server import ServerError, ServerProcess
from shipline.domain.records import TokenKind
from shipline.security.tokens import new_token

__all__ = ["Demo", "DemoError", "DemoOptions", "DemoReport", "Service"]

PROJECT = "webapp"
ADMIN = "admin"  # the server's first user; it pushes, so it cannot approve production
SIGN_IN_USER = "demo"  # the person watching: signs in to the dashboard, may approve
REVIEWER = "reviewer"  # approves production with --auto-approve
STRATEGIES = {"staging": "rolling", "production": "canary"}
SERVER_START_SECONDS = 120.0
RUN_APPEARS_SECONDS = 60.0
SERVICES_SECONDS = 30.0
POLL_SECONDS = 0.5

Say = Callable[[str], None]


class DemoError(Exception):
    """Something the demo could not do; the message says what, for the user."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """state_dir: a new (or empty) directory for everything. host, port: where the server
    listens (port 0: a free one). auto_approve: approve production as a second user."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    auto_approve: bool = False


@dataclass(slots=True)
class Service:
    """A deployed environment: its router's URL and the version it answered with."""

    environment: str
    url: str
    strategy: str
    version: str | None = None


@dataclass(slots=True)
class DemoReport:
    """What the demo prints, and its `--json` document (see docs/json-output.md)."""

    state_dir: Path
    server_url: str = ""
    password: str = ""
    token: str = ""
    commit: str = ""
    run_id: int | None = None
    run_number: int | None = None
    conclusion: str | None = None
    approved_by: str | None = None
    services: dict[str, Service] = field(default_factory=dict)
    error: str | None = None

    @property
    def version(self) -> str:
        return self.commit[:12]

    @property
    def dashboard_url(self) -> str:
        return f"{self.server_url}/ui/"

    @property
    def run_url(self) -> str | None:
        return f"{self.server_url}/ui/runs/{self.run_id}" if self.run_id is not None else None

    @property
    def approvals_url(self) -> str:
        return f"{self.server_url}/ui/approvals"

    @property
    def approve_command(self) -> str | None:
        if self.run_id is None:
            return None
        return f"shipline approve {self.run_id} --env production"

    @property
    def status(self) -> str:
        """`success` when the run succeeded and both services answered with its version."""
        served = all(s.version == self.version for s in self.services.values())
        if self.error is None and self.conclusion == "success" and served:
            return "success"
        return "failure" if self.conclusion is not None or self.error else "in_progress"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "state_dir": str(self.state_dir),
            "server_url": self.server_url,
            "dashboard": {
                "url": self.dashboard_url,
                "user": SIGN_IN_USER,
                "password": self.password,
                "token": self.token,
            },
            "project": PROJECT,
            "repository": f"{self.server_url}/git/{PROJECT}.git",
            "commit": self.commit,
            "version": self.version,
            "run": {
                "id": self.run_id,
                "number": self.run_number,
                "url": self.run_url,
                "conclusion": self.conclusion,
            },
            "approval": {
                "environment": "production",
                "approved_by": self.approved_by,
                "url": self.approvals_url,
                "command": self.approve_command,
            },
            "services": {
                name: {"url": s.url, "strategy": s.strategy, "version": s.version}
                for name, s in self.services.items()
            },
        }


class Demo:
    """Runs one demo; `stop()` is safe to call at any point, and more than once."""

    def __init__(self, options: DemoOptions, say: Say) -> None:
        self.options = options
        self.say = say
        self.report = DemoReport(state_dir=options.state_dir)
        self._server: ServerProcess | None = None
        self._admin: Api | None = None
        self._reviewer: Api | None = None
        self._stopped = False
        self._admin_token = ""

    # -- setting up -----------------------------------------------------------------------

    def start(self) -> None:
        """State directory, server, users and project; `push()` then starts the run."""
        state = self.options.state_dir
        if state.exists() and (not state.is_dir() or any(state.iterdir())):
            raise DemoError(f"--state-dir {state}: not an empty directory; give a new one")
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"cannot create the state directory {state}: {exc}") from exc
        admin_token = new_token(TokenKind.USER)[0]
        self.say(f"Starting the server (state directory {state})")
        self._server = ServerProcess(
            state / "server", self.options.host, self.options.port, admin_token
        )
        try:
            url = self._server.wait_listening(SERVER_START_SECONDS)
        except ServerError as exc:
            raise DemoError(str(exc)) from exc
        self.report.server_url = url
        self.say(f"Server listening on {url}")
        try:
            self._set_up(url, admin_token)
        except ApiError as exc:
            raise DemoError(f"setting up the server failed: {exc}") from exc
        self._admin_token = admin_token

    def _set_up(self, url: str, admin_token: str) -> None:
        admin = self._admin = Api(url, admin_token)
        self.report.password = secrets.token_urlsafe(12)
        admin.create_user(SIGN_IN_USER, self.report.password, is_admin=True)
        session = admin.as_user(admin.login(SIGN_IN_USER, self.report.password))
        try:  # an API token for `shipline approve`, shown to the user once
            self.report.token = session.create_token("shipline demo")
        finally:
            session.close()
        admin.create_project(PROJECT)
        self.say(f"Created the project {PROJECT} and the user {SIGN_IN_USER}")
        if self.options.auto_approve:
            password = secrets.token_urlsafe(16)
            admin.create_user(REVIEWER, password)
            admin.add_member(PROJECT, REVIEWER, "maintainer")
            self._reviewer = admin.as_user(admin.login(REVIEWER, password))
            self.say(f"Created the user {REVIEWER} (maintainer) to approve production")

    def push(self) -> None:
        """Push the demo repository as the first admin; the push starts the run."""
        url, admin_token = self.report.server_url, self._admin_token
        if not admin_token:
            raise DemoError("the demo has not started")
        work = self.options.state_dir / "repo"
        placements = {name: Placement(self.options.host, _free_port()) for name in STRATEGIES}
        for name, placement in placements.items():
            self.report.services[name] = Service(
                name, f"http://{_url_host(placement.host)}:{placement.port}/", STRATEGIES[name]
            )
        try:
            repository.prepare(work, placements)
        except OSError as exc:
            raise DemoError(f"cannot write the demo repository into {work}: {exc}") from exc
        try:
            self.report.commit = repository.commit(work, "The demo service and its pipeline")
            repository.push(work, f"{url}/git/{PROJECT}.git", ADMIN, admin_token)
        except GitError as exc:
            raise DemoError(str(exc)) from exc
        self.say(f"Pushed {self.report.version} to {url}/git/{PROJECT}.git with git")
        for service in self.report.services.values():
            self.say(
                f"  {service.environment:<11} will answer at {service.url} ({service.strategy})"
            )

    # -- following the run ----------------------------------------------------------------

    def follow(self, timeout: float | None = None) -> dict[str, Any]:
        """Follow the run the push started until it completes, saying each job's changes;
        the completed run. With `auto_approve` the reviewer approves production when it
        waits; otherwise the user is told how, once."""
        admin = self._api()
        run_id = self._find_run(admin)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: dict[int, str] = {}
        told = False
        rollouts: dict[str, tuple[int, int]] = {}  # environment -> (deployment, seq)
        flushed: set[str] = set()
        while True:
            try:
                run = admin.run(run_id)
            except ApiError as exc:
                raise DemoError(f"cannot follow run {run_id}: {exc}") from exc
            for job in run.get("jobs") or []:
                word = _job_word(job)
                if seen.get(job["id"]) != word:
                    seen[job["id"]] = word
                    detail = f": {job['error']}" if job.get("error") else ""
                    self.say(f"  {job['name']:<24} {word}{detail}")
                if job["status"] == "waiting" and job["job"] == "production" and not told:
                    told = True
                    self._production_waits(run_id)
                if job["job"] in STRATEGIES and job["job"] not in flushed:
                    if job["status"] in ("in_progress", "completed"):
                        self._rollout_progress(run_id, job["job"], rollouts)
                    if job["status"] == "completed":
                        flushed.add(job["job"])  # its last lines are out
            if run["status"] == "completed":
                self.report.conclusion = run["conclusion"]
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise DemoError(f"run {run_id} did not complete within {timeout:.0f} s")
            time.sleep(POLL_SECONDS)

    def _find_run(self, admin: Api) -> int:
        deadline = time.monotonic() + RUN_APPEARS_SECONDS
        while time.monotonic() < deadline:
            try:
                runs = admin.runs(PROJECT)
            except ApiError as exc:
                raise DemoError(f"cannot list the runs: {exc}") from exc
            if runs:
                run = runs[-1]  # newest first: the oldest is the push's
                self.report.run_id = int(run["id"])
                self.report.run_number = int(run["number"])
                self.say(f"Run #{run['number']} started: {self.report.run_url}")
                return self.report.run_id
            time.sleep(POLL_SECONDS)
        raise DemoError(f"the push started no run within {RUN_APPEARS_SECONDS:.0f} s")

    def _rollout_progress(
        self, run_id: int, environment: str, rollouts: dict[str, tuple[int, int]]
    ) -> None:
        """Say the new lines of the run's deployment to `environment` (its batches, health
        checks, canary steps), indented under the job."""
        admin = self._api()
        try:
            if environment not in rollouts:
                mine = [d for d in admin.deployments(PROJECT, environment) if d["run_id"] == run_id]
                if not mine:
                    return
                rollouts[environment] = (int(mine[0]["id"]), 0)
            deployment, seq = rollouts[environment]
            lines, seq = admin.progress(deployment, seq)
            rollouts[environment] = (deployment, seq)
        except ApiError:
            return  # progress is a nicety; the job's own status tells the outcome
        for line in lines:
            self.say(f"      {environment}: {line}")

    def _production_waits(self, run_id: int) -> None:
        if self._reviewer is not None:
            try:
                self._reviewer.approve(run_id, "production", "approved by shipline demo")
            except ApiError as exc:
                raise DemoError(f"the reviewer could not approve: {exc}") from exc
            self.report.approved_by = REVIEWER
            self.say(f"  production approved by {REVIEWER} (--auto-approve)")
            return
        self.say(
            "Production waits for a reviewer's approval (whoever pushed may not approve).\n"
            f"  In the dashboard: {self.report.approvals_url} (the run: {self.report.run_url})\n"
            f"    (sign in as {SIGN_IN_USER}, password {self.report.password})\n"
            f"  Or on the command line:\n"
            f"    SHIPLINE_URL={self.report.server_url} SHIPLINE_TOKEN={self.report.token} "
            f"{self.report.approve_command}"
        )

    def failed_jobs(self, run: dict[str, Any]) -> list[str]:
        """Why each job that did not succeed failed (skipped ones aside): its error, or
        its first failed step with the exit code."""
        return [
            f"{job['name']}: {_why(job)}"
            for job in run.get("jobs") or []
            if job["conclusion"] not in ("success", "skipped")
        ]

    # -- the services ---------------------------------------------------------------------

    def check_services(self, timeout: float = SERVICES_SECONDS) -> bool:
        """Ask each environment's router for `/version` until it answers with the pushed
        commit's version; whether all did within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            for service in self.report.services.values():
                while True:
                    service.version = _version(client, service.url)
                    if service.version == self.report.version or time.monotonic() > deadline:
                        break
                    time.sleep(POLL_SECONDS)
                self.say(
                    f"  {service.environment:<11} {service.url}  answers version "
                    f"{service.version or '(no answer)'}"
                )
        return all(s.version == self.report.version for s in self.report.services.values())

    def server_running(self) -> bool:
        return self._server is not None and self._server.running()

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server, then the environments' instances, routers and supervisors."""
        if self._stopped:
            return
        self._stopped = True
        for api in (self._reviewer, self._admin):
            if api is not None:
                api.close()
        if self._server is not None:
            self.say("Stopping the server")
            self._server.stop()
        stopped = stop_environments(self.options.state_dir / "server")
        if stopped:
            self.say(f"Stopped the services of {', '.join(stopped)}")

    def _api(self) -> Api:
        if self._admin is None:
            raise DemoError("the demo has not started")
        return self._admin


def _job_word(job: dict[str, Any]) -> str:
    if job["status"] == "completed":
        return str(job["conclusion"])
    if job["status"] == "waiting":
        return "waiting for approval"
    return str(job["status"]).replace("_", " ")


def _why(job: dict[str, Any]) -> str:
    if job.get("error"):
        return str(job["error"])
    for step in job.get("steps") or []:
        if step["conclusion"] in ("failure", "timed_out", "cancelled"):
            code = f" (exit code {step['exit_code']})" if step.get("exit_code") else ""
            return f"step '{step['name']}' {step['conclusion']}{code}"
    return str(job["conclusion"])


def _version(client: httpx.Client, url: str) -> str | None:
    try:
        response = client.get(f"{url}version")
        version = response.json().get("version") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return str(version) if version is not None else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
