"""`shipline lint`: every diagnostic of the workflows at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)


def lint(
    paths: list[Path] = typer.Argument(
        None, help="Workflow files or directories (default: the repository's workflows)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the diagnostics as JSON."),
    directory: Path = typer.Option(Path(), "-C", help="Work in this directory."),
) -> None:
    """Check workflow files: YAML, keys, types, needs, expressions, cron, globs, actions.

    Environment files (.shipline/environments/*.yml) and buildspec.yml are checked too.
    """
    from shipline.cli.common import fail_usage
    from shipline.spec.diagnostics import Severity, sort_key
    from shipline.spec.lint import lint_workflow

    files = _files(paths or [], directory)
    base = directory if paths else _project_root(directory.resolve())
    if not files:
        fail_usage(
            "no workflow files found (looked in .shipline/workflows and "
            ".github/workflows; pass paths to lint other files)"
        )
    diagnostics = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail_usage(f"{file}: cannot read: {exc}")
        name = _display(file, base)
        if file.parent.name == "environments" and file.parent.parent.name == ".shipline":
            from shipline.spec.lint.environments import lint_environment

            diagnostics.extend(lint_environment(text, name))
        elif file.name in ("buildspec.yml", "buildspec.yaml"):
            from shipline.spec.buildspec import load_buildspec

            diagnostics.extend(load_buildspec(text, name)[1])
        else:
            diagnostics.extend(lint_workflow(text, name))
    diagnostics.sort(key=sort_key)
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    if json_out:
        sys.stdout.write(json.dumps([d.to_json() for d in diagnostics], indent=2) + "\n")
    else:
        for d in diagnostics:
            sys.stdout.write(d.format() + "\n")
        warnings = len(diagnostics) - errors
        sys.stdout.flush()  # the list first, then the count, also on a shared terminal
        sys.stderr.write(
            f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)\n"
        )
    raise typer.Exit(1 if errors else 0)


def _display(file: Path, directory: Path) -> str:
    try:
        return file.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:
        return str(file)


def _project_root(start: Path) -> Path:
    """The nearest directory at or above `start` with workflows or a `.git`: lint finds the
    repository's workflows from any of its subdirectories, as `run` and `plan` do."""
    from shipline.local.repo import WORKFLOW_DIRS

    for folder in (start, *start.parents):
        if any((folder / d).is_dir() for d in WORKFLOW_DIRS) or (folder / ".git").exists():
            return folder
    return start


def _files(paths: list[Path], directory: Path) -> list[Path]:
    from shipline.local.repo import WORKFLOW_DIRS

    if not paths:
        root = _project_root(directory.resolve())
        found = []
        for folder in WORKFLOW_DIRS:
            d = root / folder
            if d.is_dir():
                found += sorted(p for p in d.iterdir() if p.suffix in (".yml", ".yaml"))
        environments = root / ".shipline" / "environments"
        if environments.is_dir():
            found += sorted(p for p in environments.iterdir() if p.suffix in (".yml", ".yaml"))
        if (root / "buildspec.yml").is_file():
            found.append(root / "buildspec.yml")
        return found
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
        elif path.exists():
            out.append(path)
        else:
            from shipline.cli.common import fail_usage

            fail_usage(f"{path}: no such file or directory")
    return out
