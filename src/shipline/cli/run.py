"""`shipline run`: run the workflows of the repository here, as the server would."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipline.cli.common import fail_usage, key_values, print_workflow_error, started

if TYPE_CHECKING:
    from shipline.local.repo import RepoInfo
    from shipline.plan.events import Event
    from shipline.spec.models import DispatchInput, WorkflowSpec

EVENTS = ("push", "pull_request", "workflow_dispatch", "schedule")


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    workflow: str | None = typer.Argument(
        None, help="A workflow file or name (default: all the event triggers)."
    ),
    job: list[str] = typer.Option(
        [], "-j", "--job", help="Run only this job (and the jobs it needs). Repeatable."
    ),
    event: str = typer.Option(
        "push", "--event", "-e", help="push, pull_request, workflow_dispatch or schedule."
    ),
    base: str | None = typer.Option(
        None,
        "--base",
        help="pull_request: the branch it targets (default: origin's default branch, else main).",
    ),
    input_: list[str] = typer.Option([], "--input", help="A workflow_dispatch input K=V."),
    var: list[str] = typer.Option([], "--var", help="A configuration variable K=V (vars)."),
    secret: list[str] = typer.Option(
        [], "--secret", help="A secret NAME, read from the environment variable NAME."
    ),
    secrets_file: Path | None = typer.Option(
        None, "--secrets-file", help="A dotenv file of secrets."
    ),
    parallel: int = typer.Option(0, "--parallel", "-p", help="Jobs at once (default: cores)."),
    matrix: list[str] = typer.Option(
        [], "--matrix", help="Run only matrix cells with KEY=VALUE. Repeatable."
    ),
    executor: str = typer.Option("shell", "--executor", help="How steps run: shell or sandbox."),
    buildspec: Path | None = typer.Option(
        None, "--buildspec", help="Run this CodeBuild buildspec file as a job."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON document on stdout; logs go to stderr."
    ),
    directory: Path = typer.Option(Path(), "-C", help="Run in this directory."),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        help="Where local state goes (default: .shipline/local in the repository).",
    ),
    keep_workspaces: bool = typer.Option(
        False, "--keep-workspaces", help="Keep the job directories after the run."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show ::debug:: lines."),
) -> None:
    """Run the workflows an event triggers, with live logs and a summary."""
    from shipline.domain.errors import UsageError, WorkflowError

    if event not in EVENTS:
        fail_usage(f"--event must be one of {', '.join(EVENTS)}, not {event!r}")
    if executor != "shell":
        from shipline.wiring import executor_unavailable

        why = executor_unavailable(executor)
        if why is not None:
            fail_usage(f"--executor {executor}: {why}")
    if parallel < 0:
        fail_usage("--parallel must be at least 1")
    try:
        code = _run(
            workflow,
            job,
            event,
            input_,
            var,
            secret,
            secrets_file,
            parallel or (os.cpu_count() or 1),
            matrix,
            buildspec,
            json_out,
            directory,
            state_dir,
            keep_workspaces,
            debug,
            base=base,
            executor=executor,
        )
    except WorkflowError as exc:
        print_workflow_error(exc)
        raise typer.Exit(2) from exc
    except UsageError as exc:
        fail_usage(str(exc))
    raise typer.Exit(code)


def _run(
    workflow: str | None,
    jobs: list[str],
    event_name: str,
    inputs: list[str],
    vars_: list[str],
    secret_names: list[str],
    secrets_file: Path | None,
    parallel: int,
    matrix: list[str],
    buildspec: Path | None,
    json_out: bool,
    directory: Path,
    state_dir: Path | None,
    keep: bool,
    debug: bool,
    *,
    base: str | None = None,
    executor: str = "shell",
) -> int:
    from shipline.cli.reporter import PlainReporter, RichReporter
    from shipline.domain.errors import UsageError
    from shipline.domain.status import Conclusion
    from shipline.local.repo import discover_workflows, inspect_repo
    from shipline.local.session import LocalRun, Selected, select_workflows
    from shipline.plan.compile import compile_plan

    started()
    repo = inspect_repo(directory.resolve())
    secrets = _secrets(secret_names, secrets_file)
    variables = dict(key_values(vars_, "--var"))
    selectors = key_values(matrix, "--matrix")
    raw_inputs = dict(key_values(inputs, "--input"))

    # `--buildspec FILE` runs that buildspec alone; otherwise the workflows and, when there
    # is one, the buildspec.yml at the root.
    paths = [] if buildspec is not None else discover_workflows(repo.root)
    explicit = False
    if workflow and buildspec is not None:
        raise UsageError("give either a WORKFLOW or --buildspec, not both")
    if workflow:
        paths = [_find_workflow(workflow, paths, repo.root, directory)]
        explicit = True
    workflows, event = read_for_event(repo, paths, event_name, base)
    selected, skipped = select_workflows(
        workflows, event, jobs=jobs or None, matrix=selectors, explicit=explicit
    )
    bs_path = buildspec or (repo.root / "buildspec.yml")
    if (buildspec is not None or (not workflow and bs_path.is_file())) and (
        not jobs or "build" in jobs
    ):
        if buildspec is not None and not bs_path.is_absolute():
            bs_path = (directory / buildspec).resolve()
            if not bs_path.is_file():
                bs_path = (repo.root / buildspec).resolve()
        if not bs_path.is_file():
            raise UsageError(f"{buildspec}: no such buildspec file")
        from shipline.local.buildspec import buildspec_workflow

        spec = buildspec_workflow(bs_path, repo.root)
        selected.append(Selected(bs_path, spec, compile_plan(spec, event, matrix=selectors)))
    if not selected:
        reasons = (
            "\n".join(f"  {f}: {why}" for f, why in skipped)
            or "  (no workflow files in .shipline/workflows or .github/workflows)"
        )
        raise UsageError(f"no workflow is triggered by this {event_name} event:\n{reasons}")
    dispatch_inputs: dict[str, object] = {}
    if event_name == "workflow_dispatch":
        for item in selected:
            dispatch_inputs.update(
                _inputs(item.spec.triggers.dispatch_inputs, raw_inputs, item.spec.file)
            )
    elif raw_inputs:
        raise UsageError("--input is for --event workflow_dispatch")
    if event_name == "workflow_dispatch":
        event = _with_inputs(event, dispatch_inputs)
        selected = [
            Selected(
                s.path,
                s.spec,
                compile_plan(
                    s.spec, event, jobs=[j for j in jobs if s.spec.job(j)] or None, matrix=selectors
                ),
            )
            if s.spec.triggers.get("workflow_dispatch")
            else s
            for s in selected
        ]
    stream = sys.stderr if json_out else sys.stdout
    reporter = RichReporter() if (stream.isatty() and not json_out) else PlainReporter(stream)
    for file, why in skipped:
        reporter.output("", "", [f"skipping {file}: {why}"])
    for item in selected:
        for key, why in item.plan.not_selected:
            reporter.output("", "", [f"not running {key} ({item.spec.file}): {why}"])
    local = LocalRun(
        repo=repo,
        event=event,
        selected=selected,
        observer=reporter,
        parallel=parallel,
        vars=variables,
        secrets=secrets,
        inputs=dispatch_inputs,
        matrix=tuple(selectors),
        state_override=state_dir,
        keep_workspaces=keep,
        debug=debug,
        executor=executor,
    )
    try:
        session = local.run()
    finally:
        close = getattr(reporter, "close", None)
        if close:
            close()
    reporter.summary(session)
    if json_out:
        from shipline.local.session import session_json

        sys.stdout.write(json.dumps(session_json(session), indent=2) + "\n")
    return 0 if session.conclusion is Conclusion.SUCCESS else 1


def _find_workflow(name: str, paths: list[Path], root: Path, cwd: Path) -> Path:
    from shipline.domain.errors import UsageError
    from shipline.local.session import read_workflow

    for candidate in (Path(name), cwd / name, root / name):
        if candidate.is_file():
            return candidate.resolve()
    for path in paths:
        if name in (path.name, path.stem):
            return path
    for path in paths:
        try:
            if read_workflow(path, root).name == name:
                return path
        except Exception:
            continue
    known = ", ".join(p.relative_to(root).as_posix() for p in paths) or "none"
    raise UsageError(f"no workflow {name!r} (workflows: {known})")


def _default_branch(repo: RepoInfo) -> str:
    import subprocess

    out = subprocess.run(
        ["git", "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out.split("/", 1)[1] if "/" in out else "main"


def read_for_event(
    repo: RepoInfo, paths: list[Path], event_name: str, base: str | None = None
) -> tuple[list[tuple[Path, WorkflowSpec]], Event]:
    """Read the workflow files, then build the event they are matched against.

    Read first: git is asked for the changed paths only when a workflow filters this
    event by paths.
    """
    from shipline.local.repo import changed_paths
    from shipline.local.session import read_workflow, uses_path_filters

    workflows = [(path, read_workflow(path, repo.root)) for path in paths]
    changed = None
    if uses_path_filters([spec for _, spec in workflows], event_name):
        changed = changed_paths(repo)
    return workflows, _event(repo, event_name, changed, base)


def _event(
    repo: RepoInfo, name: str, changed: tuple[str, ...] | None, base: str | None = None
) -> Event:
    from shipline.plan.events import Event

    branch = repo.branch or "HEAD"
    ref = f"refs/heads/{branch}" if repo.branch else repo.sha
    payload: dict[str, object] = {
        "ref": ref,
        "after": repo.sha,
        "repository": {
            "full_name": repo.repository,
            "name": repo.repository.split("/")[-1],
            "default_branch": branch,
        },
        "sender": {"login": os.environ.get("USER", "shipline")},
    }
    base_ref = head_ref = None
    action = None
    if name == "pull_request":
        # The branch the simulated pull request targets: --base, else origin's default.
        base_ref = base or _default_branch(repo)
        head_ref = branch
        action = "synchronize"
        payload = {
            "action": action,
            "number": 1,
            "pull_request": {
                "number": 1,
                "head": {"ref": head_ref, "sha": repo.sha},
                "base": {"ref": base_ref},
                "title": "local run",
            },
            **payload,
        }
        ref = "refs/pull/1/merge"
    return Event(
        name=name,
        ref=ref,
        sha=repo.sha,
        repository=repo.repository,
        actor=os.environ.get("USER", "shipline"),
        base_ref=base_ref,
        head_ref=head_ref,
        action=action,
        changed_paths=changed,
        payload=payload,
    )


def _with_inputs(event: Event, inputs: dict[str, object]) -> Event:
    import dataclasses

    payload = dict(event.payload) if isinstance(event.payload, dict) else {}
    payload["inputs"] = inputs
    return dataclasses.replace(event, inputs=tuple(inputs.items()), payload=payload)


def _inputs(
    specs: tuple[DispatchInput, ...], given: dict[str, str], file: str
) -> dict[str, object]:
    """Dispatch inputs checked against their declared types, defaults filled in."""
    from shipline.domain.errors import UsageError

    known = {s.name for s in specs}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UsageError(
            f"{file}: unknown input(s) {', '.join(unknown)} "
            f"(inputs: {', '.join(sorted(known)) or 'none'})"
        )
    out: dict[str, object] = {}
    for spec in specs:
        if spec.name in given:
            raw = given[spec.name]
        elif spec.default is not None:
            raw = spec.default if isinstance(spec.default, str) else json.dumps(spec.default)
        elif spec.required:
            raise UsageError(f"{file}: input {spec.name!r} is required (--input {spec.name}=VALUE)")
        else:
            raw = ""
        value: object = raw
        if spec.type == "boolean":
            if raw.lower() not in ("true", "false", ""):
                raise UsageError(
                    f"input {spec.name!r} is a boolean: use true or false, not {raw!r}"
                )
            value = raw.lower() == "true"
        elif spec.type == "number" and raw != "":
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"input {spec.name!r} is a number, not {raw!r}") from None
        elif spec.type == "choice" and raw and raw not in spec.options:
            raise UsageError(
                f"input {spec.name!r} must be one of {', '.join(spec.options)}, not {raw!r}"
            )
        out[spec.name] = value
    return out


def _secrets(names: list[str], file: Path | None) -> dict[str, str]:
    from shipline.domain.errors import UsageError

    secrets: dict[str, str] = {}
    if file is not None:
        from dotenv import dotenv_values

        if not file.is_file():
            raise UsageError(f"--secrets-file {file}: no such file")
        for key, value in dotenv_values(file).items():
            if value is not None:
                secrets[key] = value
    for name in names:
        if "=" in name:
            raise UsageError(
                f"--secret takes a NAME whose value is read from the environment "
                f"variable of that name, never the value itself (got {name.split('=')[0]}=…)"
            )
        if name not in os.environ:
            raise UsageError(f"--secret {name}: the environment variable {name} is not set")
        secrets[name] = os.environ[name]
    return secrets
