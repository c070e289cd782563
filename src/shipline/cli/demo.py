"""`shipline demo`: the whole path — push, build, test, signed artifact, staging,
approval, production — on this machine, with one command. The work is done by
`shipline.demo`; this module reads the flags, shows progress and the result, and makes
sure that everything started is stopped on exit, Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipline.demo.session import Demo, DemoReport

    Say = Callable[[str], None]

# With --exit-when-done: how long the run may take, approval included.
RUN_TIMEOUT_SECONDS = 900.0


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        show_default=False,
        help="A new or empty directory for the demo's server, repository and services "
        "[a new $XDG_DATA_HOME/shipline/demo-<time>, or under ~/.local/share].",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the server and services use."),
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="The server's port [0: a free one]."
    ),
    auto_approve: bool = typer.Option(
        False,
        "--auto-approve",
        help="Approve production as a second user (a reviewer) instead of waiting for you.",
    ),
    headless: bool = typer.Option(
        False, "--headless", help="Open no browser; plain output for logs and scripts."
    ),
    exit_when_done: bool = typer.Option(
        False,
        "--exit-when-done",
        help="Exit (0) once the run succeeded and both services answer with the new "
        "version, or (1) when it failed; then stop everything.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the result as one JSON document on stdout (progress on stderr).",
    ),
) -> None:
    """Start a server, push a demo service and follow its pipeline to production.

    The server, its repository and the deployed services live in the state directory;
    Ctrl-C stops all of them.
    """
    from shipline.cli.common import fail_usage
    from shipline.demo.session import Demo, DemoError, DemoOptions
    from shipline.settings import default_state_dir

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    chosen = state_dir or default_state_dir() / f"demo-{stamp}"
    out = sys.stderr if as_json else sys.stdout
    colour = not headless and out.isatty() and "NO_COLOR" not in os.environ

    def say(line: str) -> None:
        out.write((_paint(line) if colour else line) + "\n")
        out.flush()

    chosen = chosen.expanduser().absolute()
    if chosen.exists() and (not chosen.is_dir() or any(chosen.iterdir())):
        fail_usage(f"--state-dir {chosen}: not an empty directory; give a new one")
    options = DemoOptions(chosen, host, port, auto_approve)
    session = Demo(options, say)
    _interrupt_on_signals()
    code = 0
    try:
        code = _demo(session, headless, exit_when_done, as_json, say)
    except DemoError as exc:
        session.report.error = str(exc)
        if as_json:
            _print_json(session.report)
        code = _error(str(exc), session.report, say)
    except KeyboardInterrupt:
        say("Interrupted")
        code = 0 if session.report.status == "success" else 130
    finally:
        _quiet_signals()
        session.stop()
    raise typer.Exit(code)


def _demo(session: Demo, headless: bool, exit_when_done: bool, as_json: bool, say: Say) -> int:
    report = session.report
    session.start()
    say(f"Dashboard: {report.dashboard_url}  (sign in as demo, password {report.password})")
    if not headless and sys.stdout.isatty():
        _open_browser(report.dashboard_url)
    session.push()
    run = session.follow(RUN_TIMEOUT_SECONDS if exit_when_done else None)
    failed = session.failed_jobs(run)
    if report.conclusion == "success":
        say(f"Run #{report.run_number} succeeded; the services:")
        if not session.check_services():
            report.error = "a service did not answer with the new version " + report.version
    else:
        report.error = f"run #{report.run_number} ended with {report.conclusion}: " + (
            "; ".join(failed) or "see the run's page"
        )
    if as_json:
        _print_json(report)
    else:
        _summary(report, say)
    if report.error is not None:
        if exit_when_done:
            return _error(report.error, report, say)
        say(f"shipline: {report.error}")
    if exit_when_done:
        return 0
    say("Serving until Ctrl-C.")
    while session.server_running():
        time.sleep(0.5)
    return _error("the server stopped (see server.log in the state directory)", report, say)


# A job's status word at the end of its progress line, and its colour on a terminal.
_COLOURS = {
    "success": "green",
    "failure": "red",
    "cancelled": "red",
    "timed_out": "red",
    "waiting for approval": "yellow",
}


def _paint(line: str) -> str:
    for word, colour in _COLOURS.items():
        if line.endswith(f" {word}"):
            return line[: -len(word)] + typer.style(word, fg=colour, bold=True)
    return line


def _summary(report: DemoReport, say: Say) -> None:
    lines = [
        "",
        f"Dashboard     {report.dashboard_url}",
        f"  sign in     user demo, password {report.password}",
        f"  API token   {report.token}  (SHIPLINE_URL={report.server_url})",
        f"Run           {report.run_url}  ({report.conclusion})",
    ]
    lines += [
        f"{s.environment:<13} {s.url}  ({s.strategy}, version {s.version or 'unknown'})"
        for s in report.services.values()
    ]
    lines.append(f"State         {report.state_dir}")
    say("\n".join(lines))


def _error(message: str, report: DemoReport, say: Say) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"shipline: error: {message}\n")
    if report.server_url:
        say(f"Look at it again later: shipline server --state-dir {report.state_dir / 'server'}")
    return 1


def _print_json(report: DemoReport) -> None:
    sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    sys.stdout.flush()


def _open_browser(url: str) -> None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return
    import webbrowser

    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(url)


def _raise_interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP end the demo as Ctrl-C does: through the `finally` that stops
    everything. SIGINT too, explicitly: a shell starts background commands with it
    ignored, and Python then leaves it so."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


def _quiet_signals() -> None:
    """While stopping, further Ctrl-Cs must not leave half of it running."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
