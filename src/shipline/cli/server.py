"""`shipline server`: the API, the embedded runner and the scheduler in one process.

Start-up: settings (defaults < `SHIPLINE_*` < flags) → state directory and database
(`wiring.build_server`) → the first admin (token printed once) → jobs a killed process
left are recovered → uvicorn listens → the runner and the scheduler start.

Shutdown on SIGTERM or SIGINT: `/readyz` turns 503, the scheduler and the runner stop
taking jobs, running steps get `shutdown_grace` seconds to finish (then they are cancelled
with that reason), then the HTTP server closes; exit status 0. A second signal cancels
running steps at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from shipline.engine.deploy_worker import DeploymentWorker
    from shipline.engine.embedded import EmbeddedRunner
    from shipline.engine.leases import LeaseReaper
    from shipline.engine.schedules import Scheduler
    from shipline.server.context import ServerContext
    from shipline.settings import Settings

log = logging.getLogger("shipline.server")

# How long open connections (a followed log stream) may hold up the HTTP server's exit
# once the runner has stopped.
HTTP_SHUTDOWN_SECONDS = 3


def register(app: typer.Typer) -> None:
    app.command("server")(server)


def server(
    host: str | None = typer.Option(
        None,
        "--host",
        show_default=False,
        help="Address to listen on [env SHIPLINE_HOST; 127.0.0.1].",
    ),
    port: int | None = typer.Option(
        None, "--port", show_default=False, help="Port to listen on [env SHIPLINE_PORT; 8080]."
    ),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        show_default=False,
        help="Database, blobs, mirrors and runs [env SHIPLINE_STATE_DIR; "
        "$XDG_DATA_HOME/shipline or ~/.local/share/shipline].",
    ),
    database: str | None = typer.Option(
        None,
        "--database",
        metavar="URL",
        show_default=False,
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db [env "
        "SHIPLINE_DATABASE_URL; SQLite in the state directory]. Put a password in the "
        "environment variable, not here: a flag's value shows in `ps`.",
    ),
    runner_slots: int | None = typer.Option(
        None,
        "--runner-slots",
        metavar="N",
        show_default=False,
        help="Jobs the embedded runner runs at once; 0 leaves every job to remote runners "
        "[env SHIPLINE_RUNNER_SLOTS; CPUs].",
    ),
    executor: str | None = typer.Option(
        None,
        "--executor",
        metavar="auto|sandbox|shell",
        show_default=False,
        help="How the embedded runner runs steps [env SHIPLINE_EXECUTOR; auto: the sandbox "
        "when it works here, else shell with a warning; sandbox: refuse to start without it].",
    ),
) -> None:
    """Run the Shipline server: REST API, embedded runner and schedules.

    The first start creates the admin user and prints its API token once; set
    SHIPLINE_ADMIN_TOKEN (a token of the form shp_u_...) to choose it instead.
    """
    from shipline.cli.settings_flags import load_settings

    settings = load_settings(
        host=host,
        port=port,
        state_dir=state_dir,
        database_url=database,
        runner_slots=runner_slots,
        executor=executor,
    )
    _configure_logging()
    context, runner, scheduler, deployer = _build(settings)
    from shipline.server.app import create_app

    app = create_app(context)
    code = asyncio.run(_serve(app, context, runner, scheduler, settings, deployer))
    raise typer.Exit(code)


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic lists its plugins at INFO on every start; the migrations it runs stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _build(
    settings: Settings,
) -> tuple[ServerContext, EmbeddedRunner, Scheduler, DeploymentWorker]:
    """The object graph, the first admin, and recovery; one line and exit 1 or 2 when
    the state directory or the database cannot be used."""
    from shipline.cli.common import fail_usage
    from shipline.cli.settings_flags import fail, shown_url
    from shipline.engine.errors import Invalid
    from shipline.security.sealing import SealError
    from shipline.wiring import (
        SandboxUnavailable,
        build_deployment_worker,
        build_scheduler,
        build_server,
        deployment_controller,
    )

    where = shown_url(settings.database_url)
    try:
        context, runner = build_server(settings)
    except SandboxUnavailable as exc:
        fail(f"--executor sandbox: the sandbox cannot run here: {exc}")
    except SealError as exc:  # the operator's master key is malformed or unreadable
        fail(f"cannot use the secrets master key: {exc}")
    except OSError as exc:
        fail(f"cannot use the state directory {settings.state_dir}: {exc.strerror or exc}")
    except Exception as exc:  # a database that cannot be opened or migrated
        fail(f"cannot open the database {where}: {_first_line(exc)}")
    try:
        token = context.access.bootstrap_admin(settings.admin_token_value)
    except Invalid as exc:
        fail_usage(exc.message)
    if token is not None and settings.admin_token_value is None:
        sys.stdout.write(
            "Created the admin user. Its API token is shown this once; keep it safe:\n\n"
            f"    {token}\n\n"
            "Use it with: export SHIPLINE_TOKEN=<token>\n"
        )
    elif token is not None:
        sys.stdout.write("Created the admin user with the token from SHIPLINE_ADMIN_TOKEN.\n")
    recovered = runner.recover()
    if recovered:
        log.warning("recovered %d job(s) a previous server process left running", len(recovered))
    sys.stdout.write(
        f"State directory: {settings.state_dir}\nDatabase: {where}\n"
        f"Runner slots: {settings.runner_slots}\n"
    )
    sys.stdout.flush()
    deployer = build_deployment_worker(settings, context, deployment_controller(settings))
    ended = deployer.recover()
    if ended:
        log.warning("%d deployment(s) a previous server process left running failed", len(ended))
    return context, runner, build_scheduler(context), deployer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def _serve(
    app: FastAPI,
    context: ServerContext,
    runner: EmbeddedRunner,
    scheduler: Scheduler,
    settings: Settings,
    deployer: DeploymentWorker,
) -> int:
    """Serve until a signal; the exit status (0 after a signal, 1 when the HTTP server
    could not start or stopped by itself)."""
    import uvicorn

    class _Server(uvicorn.Server):
        # The signals are ours (below): the runner stops before the HTTP server does.
        def install_signal_handlers(self) -> None:  # uvicorn < 0.29
            return

        def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
            return contextlib.nullcontext()

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
    )
    http = _Server(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0
    urgent: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        context.ready = False
        if signals == 1:
            log.info("shutting down: running steps get %ss to finish", settings.shutdown_grace)
            stop.set()
        else:
            log.warning("second signal: cancelling running steps now")
            urgent.add(loop.create_task(runner.stop(0)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    serving = asyncio.create_task(_http(http))
    while not http.started and not serving.done():
        await asyncio.sleep(0.02)
    if serving.done():  # could not listen; uvicorn has said why
        return 1
    sys.stdout.write(f"Shipline listening on http://{_host(settings.host)}:{_port(http)}\n")
    sys.stdout.flush()
    # What is loaded by now (modules, the app, the store's metadata) lives as long as the
    # server: out of the cyclic collector's sight, a full collection during a request walks
    # only what requests make (a gen-2 pass over everything cost tens of ms at the p99).
    gc.freeze()
    busy = asyncio.create_task(_sync_busy(runner, context))
    checkpoints = asyncio.create_task(_audit_checkpoints(context))
    reaper = _reaper(context)
    from shipline.wiring import build_poller

    poller = build_poller(context)  # projects without webhooks: their remotes are polled
    tasks = [
        asyncio.create_task(scheduler.run()),
        asyncio.create_task(poller.run()),
        asyncio.create_task(reaper.run()),
        asyncio.create_task(deployer.run()),
    ]
    if settings.runner_slots > 0:  # 0: jobs go to remote runners only
        tasks.append(asyncio.create_task(runner.run()))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, serving, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = False
    for task in tasks:
        if task.done() and task.exception() is not None:
            crashed = True
            log.error("stopping: %s", task.exception(), exc_info=task.exception())
    context.ready = False
    scheduler.stop()
    poller.stop()
    reaper.stop()
    await runner.stop(settings.shutdown_grace)
    await deployer.stop(settings.shutdown_grace)
    await asyncio.wait(tasks, timeout=5)
    for task in tasks:
        task.cancel()
    busy.cancel()
    checkpoints.cancel()
    if context.audit_checkpoint is not None:
        try:  # the head as this server leaves it
            await asyncio.to_thread(context.audit_checkpoint)
        except Exception:
            log.exception("cannot sign the audit chain's head")
    stopped.cancel()
    http.should_exit = True
    code = await serving
    log.info("stopped")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if crashed:
        return 1
    return 0 if stop.is_set() else code or 1


def _reaper(context: ServerContext) -> LeaseReaper:
    from shipline.wiring import build_reaper

    return build_reaper(context)


async def _http(http: uvicorn.Server) -> int:
    """uvicorn's `serve()`; it exits the process when it cannot bind: 1 instead."""
    try:
        await http.serve()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


async def _sync_busy(runner: EmbeddedRunner, context: ServerContext) -> None:
    """`/metrics`' busy slots follow the runner's."""
    while True:
        context.busy_slots[0] = runner.busy
        await asyncio.sleep(0.5)


# How often the server signs the audit chain's head (when something was appended).
AUDIT_CHECKPOINT_SECONDS = 600.0


async def _audit_checkpoints(context: ServerContext) -> None:
    """Sign the audit chain's head now and every `AUDIT_CHECKPOINT_SECONDS`."""
    if context.audit_checkpoint is None:
        return
    while True:
        try:
            await asyncio.to_thread(context.audit_checkpoint)
        except Exception:  # a database hiccup: try again next time
            log.exception("cannot sign the audit chain's head")
        await asyncio.sleep(AUDIT_CHECKPOINT_SECONDS)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port(http: uvicorn.Server) -> int:
    """The port actually bound (differs from the setting when it is 0)."""
    for server in http.servers:
        for sock in server.sockets:
            return int(sock.getsockname()[1])
    return http.config.port
