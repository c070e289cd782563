"""What `shipline run` prints while it runs: live step output with job/step prefixes, then
a summary. Plain lines when the output is not a terminal; colours and a progress line on
one (Rich)."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING

from shipline.domain.status import Conclusion

if TYPE_CHECKING:
    from shipline.local.session import SessionResult
    from shipline.runner.model import JobResult, StepResult

SYMBOL = {
    Conclusion.SUCCESS: "✓",
    Conclusion.FAILURE: "✗",
    Conclusion.CANCELLED: "⊘",
    Conclusion.SKIPPED: "-",
    Conclusion.TIMED_OUT: "⏱",
}


class PlainReporter:
    """Prints `[job] line` for every output line, and one line per step and job."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.names: dict[str, str] = {}
        self.started: dict[str, float] = {}

    def _prefix(self, job_key: str) -> str:
        return f"[{self.names.get(job_key, job_key)}] "

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def job_started(self, job_key: str, name: str) -> None:
        self.names[job_key] = name
        self.started[job_key] = time.monotonic()
        self.write(f"{self._prefix(job_key)}job started\n")

    def step_started(self, job_key: str, step_key: str, name: str) -> None:
        self.write(f"{self._prefix(job_key)}▶ {name}\n")

    def output(self, job_key: str, step_key: str, lines: list[str]) -> None:
        if not job_key:
            self.write("".join(f"{line}\n" for line in lines))
            return
        prefix = self._prefix(job_key)
        self.stream.write(prefix + f"\n{prefix}".join(lines) + "\n")

    def step_finished(self, job_key: str, result: StepResult) -> None:
        if result.conclusion is Conclusion.SKIPPED:
            return
        took = max(0.0, result.finished - result.started)
        note = ""
        if result.outcome is Conclusion.FAILURE and result.conclusion is Conclusion.SUCCESS:
            note = " (failed, continue-on-error)"
        self.write(
            f"{self._prefix(job_key)}{SYMBOL[result.conclusion]} {result.name} "
            f"({took:.2f}s){note}\n"
        )

    def job_finished(self, result: JobResult) -> None:
        took = max(0.0, result.finished - result.started)
        self.write(f"{self._prefix(result.key)}job {result.conclusion} in {took:.2f}s\n")

    def job_skipped(self, result: JobResult, reason: str) -> None:
        self.names.setdefault(result.key, result.name)
        self.write(f"{self._prefix(result.key)}job {result.conclusion}: {reason}\n")

    def summary(self, session: SessionResult) -> None:
        self.write("\n" + summary_text(session))


class RichReporter(PlainReporter):
    """On a terminal: coloured job prefixes and a status line with the running jobs."""

    COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__(sys.stdout)
        self.console = Console(highlight=False)
        self.colour: dict[str, str] = {}
        self.running: set[str] = set()
        self.status = self.console.status("starting…")
        self.status.start()

    def _styled(self, job_key: str) -> str:
        from rich.markup import escape

        colour = self.colour.setdefault(job_key, self.COLOURS[len(self.colour) % 7])
        return f"[{colour}]{escape(self.names.get(job_key, job_key))}[/] "

    def _update(self) -> None:
        names = ", ".join(self.names.get(k, k) for k in sorted(self.running)) or "waiting"
        self.status.update(f"running: {names}")

    def job_started(self, job_key: str, name: str) -> None:
        self.names[job_key] = name
        self.started[job_key] = time.monotonic()
        self.running.add(job_key)
        self._update()

    def step_started(self, job_key: str, step_key: str, name: str) -> None:
        from rich.markup import escape

        self.console.print(f"{self._styled(job_key)}[bold]▶ {escape(name)}[/]")

    def output(self, job_key: str, step_key: str, lines: list[str]) -> None:
        from rich.text import Text

        for line in lines:
            text = Text.from_ansi(line)
            if job_key:
                prefix = Text.from_markup(self._styled(job_key))
                text = prefix + text
            self.console.print(text)

    def step_finished(self, job_key: str, result: StepResult) -> None:
        from rich.markup import escape

        if result.conclusion is Conclusion.SKIPPED:
            return
        colour = "green" if result.conclusion is Conclusion.SUCCESS else "red"
        took = max(0.0, result.finished - result.started)
        self.console.print(
            f"{self._styled(job_key)}[{colour}]{SYMBOL[result.conclusion]}[/] "
            f"{escape(result.name)} [dim]({took:.2f}s)[/]"
        )

    def job_finished(self, result: JobResult) -> None:
        self.running.discard(result.key)
        self._update()
        colour = "green" if result.conclusion is Conclusion.SUCCESS else "red"
        self.console.print(f"{self._styled(result.key)}[{colour}]job {result.conclusion}[/]")

    def job_skipped(self, result: JobResult, reason: str) -> None:
        from rich.markup import escape

        self.names.setdefault(result.key, result.name)
        self.console.print(
            f"{self._styled(result.key)}[dim]job {result.conclusion}: {escape(reason)}[/]"
        )

    def summary(self, session: SessionResult) -> None:
        from rich.table import Table

        self.status.stop()
        table = Table(title=f"run #{session.run_number}: {session.conclusion}")
        for column in ("workflow", "job", "matrix", "result", "duration"):
            table.add_column(column)
        for row in summary_rows(session):
            style = "green" if row[3].startswith("✓") else ("red" if "✗" in row[3] else "")
            table.add_row(*row, style=style)
        self.console.print(table)
        for line in notes(session):
            self.console.print(line, markup=False)

    def close(self) -> None:
        self.status.stop()


def summary_rows(session: SessionResult) -> list[tuple[str, str, str, str, str]]:
    from shipline.plan.matrix import cell_label

    rows = []
    for outcome in session.workflows:
        cells = {p.key: p.matrix_dict for p in outcome.selected.plan.jobs}
        for job in outcome.result.jobs:
            took = max(0.0, job.finished - job.started) if job.started else 0.0
            rows.append(
                (
                    outcome.selected.spec.display_name,
                    job.job_id,
                    cell_label(cells.get(job.key, {})),
                    f"{SYMBOL[job.conclusion]} {job.conclusion}",
                    f"{took:.2f}s" if job.started else "",
                )
            )
    return rows


def notes(session: SessionResult) -> list[str]:
    """Annotations the steps printed (`::error file=..,line=..::`) and where the step
    summaries went, for the end of the output."""
    lines = []
    for outcome in session.workflows:
        for job in outcome.result.jobs:
            for a in job.annotations:
                where = (
                    f"{a.file}:{a.line}: "
                    if a.file and a.line
                    else (f"{a.file}: " if a.file else "")
                )
                lines.append(f"{a.level}: {where}{a.message} ({job.name})")
            if job.error and job.conclusion is Conclusion.FAILURE and not job.steps:
                lines.append(f"error: {job.name}: {job.error}")
    if session.summaries is not None:
        lines.append(f"step summaries: {session.summaries}")
    return lines


def summary_text(session: SessionResult) -> str:
    rows = summary_rows(session)
    header = ("workflow", "job", "matrix", "result", "duration")
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = [f"run #{session.run_number}: {session.conclusion}"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines.extend(notes(session))
    return "\n".join(lines) + "\n"
