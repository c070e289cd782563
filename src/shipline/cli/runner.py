"""`shipline runner`: a remote runner. `register` exchanges a registration token for a
credential saved to a 0600 file; without a subcommand the runner pulls jobs from its
servers and runs them until stopped (SIGTERM drains, a second SIGTERM cancels).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import typer

runner_app = typer.Typer(
    name="runner",
    help="Run jobs for Shipline servers on this machine (a remote runner).",
    invoke_without_command=True,
    rich_markup_mode=None,
)

CONFIG_OPTION = typer.Option(
    None,
    "--config",
    metavar="FILE",
    show_default=False,
    help="The runner's configuration [$XDG_CONFIG_HOME/shipline/runner.json].",
)


def register(app: typer.Typer) -> None:
    app.add_typer(runner_app)


def _labels(text: str | None) -> list[str] | None:
    if text is None:
        return None
    labels = [x.strip() for x in text.split(",") if x.strip()]
    for label in labels:
        if any(c.isspace() for c in label) or len(label) > 100:
            _usage(f"--labels: {label!r} is not a label (no spaces, at most 100 characters)")
    return labels


def _usage(message: str) -> None:
    from shipline.cli.common import fail_usage

    fail_usage(message)


def _config_path(config: Path | None) -> Path:
    from shipline.runner.remote.config import default_path

    return config if config is not None else default_path()


@runner_app.command("register")
def register_runner(
    url: list[str] = typer.Option(
        ..., "--url", metavar="URL", help="A server's URL (repeat for several servers)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="SHIPLINE_REGISTRATION_TOKEN",
        metavar="TOKEN",
        show_default=False,
        help="The registration token. Prefer the env var SHIPLINE_REGISTRATION_TOKEN: a "
        "flag's value shows in `ps`.",
    ),
    name: str | None = typer.Option(None, "--name", help="The runner's name [host name]."),
    labels: str | None = typer.Option(
        None, "--labels", metavar="A,B", help="Its labels [self-hosted,linux,x64]."
    ),
    slots: int = typer.Option(1, "--slots", min=1, max=1024, help="Jobs it runs at once."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Register this machine as a runner; the credential goes to the config file (0600)."""
    import httpx

    from shipline import __version__
    from shipline.cli.client import fail
    from shipline.runner.remote.config import RunnerConfig, write

    if not token:
        _usage("a registration token is needed: set SHIPLINE_REGISTRATION_TOKEN or --token")
    body: dict[str, object] = {
        "name": name or socket.gethostname(),
        "version": __version__,
        "slots": slots,
    }
    chosen = _labels(labels)
    if chosen is not None:
        body["labels"] = chosen
    answer: httpx.Response | None = None
    for server in url:
        try:
            answer = httpx.post(
                f"{server.rstrip('/')}/api/v1/runner/register",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            break
        except httpx.HTTPError as exc:
            sys.stderr.write(f"shipline: {server}: {exc}\n")
    if answer is None:
        fail("no server answered")
    if answer.status_code != 201:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.reason_phrase
        fail(f"registration refused: {answer.status_code} {message}")
    created = answer.json()
    path = _config_path(config)
    write(
        path,
        RunnerConfig(
            urls=tuple(url),
            token=created["token"],
            runner_id=int(created["id"]),
            name=created["name"],
            labels=tuple(chosen or ()),
        ),
    )
    sys.stdout.write(f"registered runner {created['id']} ({created['name']}); config: {path}\n")


@runner_app.callback()
def runner(
    ctx: typer.Context,
    config: Path | None = CONFIG_OPTION,
    labels: str | None = typer.Option(
        None, "--labels", metavar="A,B", help="Labels jobs' runs-on must be within [registered]."
    ),
    slots: int = typer.Option(1, "--slots", min=1, max=1024, help="Jobs run at once."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", metavar="DIR", help="Where jobs run [a temporary directory]."
    ),
    executor: str = typer.Option(
        "auto",
        "--executor",
        metavar="auto|sandbox|shell",
        help="How steps run: auto (the sandbox when it works here, else shell with a "
        "warning), sandbox (refuse to run without it) or shell.",
    ),
    once: bool = typer.Option(False, "--once", help="Run exactly one job, then exit."),
    poll_wait: float = typer.Option(
        20.0,
        "--poll-wait",
        min=1.0,
        max=60.0,
        metavar="SECONDS",
        help="How long one request for work waits on the server for a job.",
    ),
) -> None:
    """Pull jobs from the servers and run them until stopped."""
    if ctx.invoked_subcommand is not None:
        return
    from shipline.cli.client import fail
    from shipline.runner.remote.config import ConfigError, read
    from shipline.wiring import SandboxUnavailable, choose_executor

    try:
        cfg = read(_config_path(config))
    except ConfigError as exc:
        fail(str(exc))
    if executor not in ("auto", "sandbox", "shell"):
        _usage(f"--executor {executor}: expected auto, sandbox or shell")
    try:
        chosen_executor = choose_executor(executor)
    except SandboxUnavailable as exc:
        fail(f"--executor sandbox: the sandbox cannot run here: {exc}")
    chosen = _labels(labels)
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints where every thread is
    code = asyncio.run(_serve(cfg, chosen, slots, work_dir, chosen_executor, once, poll_wait))
    raise typer.Exit(code)


async def _serve(
    cfg: object,
    labels: list[str] | None,
    slots: int,
    work_dir: Path | None,
    executor: tuple[str, str | None],
    once: bool,
    poll_wait: float = 20.0,
) -> int:
    import tempfile

    from shipline import __version__
    from shipline.runner.remote.agent import RemoteRunner
    from shipline.runner.remote.config import RunnerConfig
    from shipline.runner.remote.connection import Connection
    from shipline.wiring import SERVER_HOST_ENV, remote_job_runners

    assert isinstance(cfg, RunnerConfig)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    # One line per request (several per job) is noise, and costs CPU on a busy runner.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if executor[1] is not None:
        logging.getLogger("shipline.runner").warning("WARNING: %s", executor[1])
    root = work_dir or Path(tempfile.mkdtemp(prefix="shipline-runner-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in SERVER_HOST_ENV}
    conn = Connection(list(cfg.urls), cfg.token)
    agent = RemoteRunner(
        conn,
        remote_job_runners(list(cfg.urls), executor, env),
        work_dir=root,
        slots=slots,
        labels=labels if labels is not None else (list(cfg.labels) or None),
        version=__version__,
        once=once,
        poll_wait=poll_wait,
    )
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.getLogger("shipline.runner").info("draining: finishing running jobs")
            agent.drain()
        else:
            logging.getLogger("shipline.runner").warning("cancelling running jobs")
            agent.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    sys.stdout.write(f"runner {cfg.name} ({cfg.runner_id}) polling {', '.join(cfg.urls)}\n")
    sys.stdout.flush()
    try:
        code = await agent.run()
        logging.getLogger("shipline.runner").info("stopped (exit status %s)", code)
        return code
    finally:
        await conn.close()
