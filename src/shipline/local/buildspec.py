"""A CodeBuild `buildspec.yml` as a workflow of one job, `build`.

The job checks out the commit, runs the phases through the generated driver script (one
shell for all commands, CodeBuild's phase transitions, `finally`, `on-failure`), then
collects `artifacts` (files, base-directory, discard-paths, exclude-paths) into an artifact
named after `artifacts.name` (default `buildspec`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from shipline.local.session import read_spec
from shipline.plan.buildspec_script import driver_script
from shipline.spec.buildspec import BuildArtifacts, load_buildspec
from shipline.spec.models import (
    EventTrigger,
    JobSpec,
    Pos,
    StepSpec,
    Triggers,
    WorkflowSpec,
)


def staging_script(artifacts: BuildArtifacts, dest: str) -> str:
    """Bash that copies the artifact files into `dest` the way CodeBuild selects them."""
    base = artifacts.base_directory or "."
    lines = [
        "shopt -s globstar nullglob dotglob",
        f"dest={shlex.quote(dest)}",
        'rm -rf "$dest" && mkdir -p "$dest"',
        f"cd -- {shlex.quote(base)}",
        "excluded() {",
        '  local f="$1"',
    ]
    for pattern in artifacts.exclude_paths:
        lines.append(f"  [[ $f == {_glob(pattern)} ]] && return 0")
    lines += ["  return 1", "}", "count=0"]
    for pattern in artifacts.files:
        lines.append(f"for f in {_glob(pattern)}; do")
        lines.append('  [[ -f $f ]] || continue; excluded "$f" && continue')
        if artifacts.discard_paths:
            lines.append('  cp -p -- "$f" "$dest/$(basename -- "$f")"')
        else:
            lines.append('  mkdir -p -- "$dest/$(dirname -- "$f")" && cp -p -- "$f" "$dest/$f"')
        lines.append("  count=$((count + 1))")
        lines.append("done")
    lines.append('echo "collected $count artifact file(s)"')
    lines.append('[[ $count -gt 0 ]] || { echo "no artifact files matched" >&2; exit 1; }')
    return "\n".join(lines) + "\n"


def _glob(pattern: str) -> str:
    """A CodeBuild path pattern as a bash glob (`**/*` works with globstar)."""
    return "".join(
        ch if ch in "*?[]/" or ch.isalnum() or ch in "._-" else "\\" + ch for ch in pattern
    )


def buildspec_workflow(path: Path, root: Path) -> WorkflowSpec:
    """Read a buildspec file and build the workflow that runs it."""
    spec = read_spec(path, root, load_buildspec, "buildspec")
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    steps = [
        StepSpec(index=0, id="checkout", name="Check out the source", uses="actions/checkout@v4"),
        StepSpec(
            index=1,
            id="phases",
            name="Run buildspec phases",
            run=driver_script(spec),
            shell="bash {0}" if spec.shell == "bash" else f"{spec.shell} {{0}}",
            pos=Pos(1, 1),
        ),
    ]
    if spec.artifacts is not None and spec.artifacts.files:
        name = spec.artifacts.name or "buildspec"
        # Uploads take files from the workspace only: stage them there.
        dest = "${{ github.workspace }}/.codebuild-artifacts"
        steps.append(
            StepSpec(
                index=2,
                id="collect",
                name="Collect artifacts",
                run=staging_script(spec.artifacts, dest),
                shell="bash {0}",
            )
        )
        steps.append(
            StepSpec(
                index=3,
                id="upload",
                name=f"Upload artifact {name}",
                uses="actions/upload-artifact@v4",
                with_=(
                    ("name", name),
                    ("path", dest),
                    ("if-no-files-found", "error"),
                    ("include-hidden-files", "true"),
                ),
            )
        )
    env = (
        ("CODEBUILD_SRC_DIR", "${{ github.workspace }}"),
        ("CODEBUILD_RESOLVED_SOURCE_VERSION", "${{ github.sha }}"),
        ("CODEBUILD_SOURCE_VERSION", "${{ github.ref }}"),
        ("CODEBUILD_BUILD_ID", "shipline:${{ github.run_id }}"),
        ("CODEBUILD_BUILD_NUMBER", "${{ github.run_number }}"),
        ("CODEBUILD_INITIATOR", "shipline"),
        *spec.variables,
    )
    job = JobSpec(
        id="build",
        name="buildspec",
        runs_on="codebuild",
        env=env,
        steps=tuple(steps),
        pos=Pos(1, 1),
    )
    events = tuple(EventTrigger(n) for n in ("push", "pull_request", "workflow_dispatch"))
    return WorkflowSpec(file=rel, name=f"CodeBuild {rel}", triggers=Triggers(events), jobs=(job,))
