"""Lifecycle hooks with CodeDeploy's semantics, and the `files`/`permissions` install step.

Each script of an event runs in order from the release directory (its `location` is
relative to the release root and must stay inside it), with CodeDeploy's environment
(`LIFECYCLE_EVENT`, `DEPLOYMENT_ID`, `APPLICATION_NAME`, `DEPLOYMENT_GROUP_NAME`) plus
`SHIPLINE_PORTS`/`SHIPLINE_INSTANCES` of the batch; a script that exits non-zero or
outlives its `timeout` (killed with its process group) fails the event and the batch.
`runas` switches user (only possible when Shipline runs as root, or as that user).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from shipline.deploy.appspec import AppSpec, AppSpecError, parse_appspec
from shipline.deploy.types import DeployFailure, Release
from shipline.spec.environment_models import EnvironmentSpec, HookScript

_TAIL = 20


def load_hooks(environment: EnvironmentSpec, release: Release) -> AppSpec | None:
    """The hooks of a release: the environment's `hooks` (appspec path or inline), else an
    `appspec.yml` at the release root, else none. Raises `DeployFailure("hooks")`."""
    spec = environment.hooks
    if spec.inline:
        return AppSpec(version="0.0", os="linux", hooks=dict(spec.inline))
    name = spec.appspec
    candidates = [name] if name else ["appspec.yml", "appspec.yaml"]
    for candidate in candidates:
        path = _inside(release.directory, candidate)
        if path is None or not path.is_file():
            if name:
                raise DeployFailure(
                    "hooks", f"the release has no {name} (hooks.appspec of the environment)"
                )
            continue
        try:
            appspec = parse_appspec(path.read_text(encoding="utf-8"), candidate)
        except (AppSpecError, UnicodeDecodeError) as exc:
            raise DeployFailure("hooks", f"{candidate}: {exc}") from exc
        if appspec.platform != "server" or appspec.os != "linux":
            kind = appspec.platform if appspec.platform != "server" else appspec.os
            raise DeployFailure(
                "hooks",
                f"{candidate} is for {kind}: Shipline runs the hooks of EC2/on-premises "
                "AppSpecs with os: linux",
            )
        return appspec
    return None


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return None
    return path


async def run_event(
    appspec: AppSpec | None,
    event: str,
    release: Release,
    *,
    deployment_id: str,
    environment: str,
    ports: list[int],
    instances: list[str],
    progress: Callable[[str], None],
) -> None:
    """Run one lifecycle event's scripts in order; raise `DeployFailure("hooks")`."""
    if appspec is None:
        return
    scripts = appspec.hooks.get(event, ())
    for script in scripts:
        await _run_script(
            script,
            event,
            release,
            {
                "LIFECYCLE_EVENT": event,
                "DEPLOYMENT_ID": deployment_id,
                "APPLICATION_NAME": environment,
                "DEPLOYMENT_GROUP_NAME": environment,
                "DEPLOYMENT_GROUP_ID": environment,
                "SHIPLINE_RELEASE": release.id,
                "SHIPLINE_RELEASE_VERSION": release.version,
                "SHIPLINE_PORTS": " ".join(str(p) for p in ports),
                "SHIPLINE_INSTANCES": " ".join(instances),
            },
            progress,
        )


async def _run_script(
    script: HookScript,
    event: str,
    release: Release,
    extra_env: dict[str, str],
    progress: Callable[[str], None],
) -> None:
    path = _inside(release.directory, script.location)
    if path is None:
        raise DeployFailure(
            "hooks", f"{event}: script {script.location} is outside the release directory"
        )
    if not path.is_file():
        raise DeployFailure(
            "hooks", f"{event}: script does not exist at specified location: {script.location}"
        )
    if not os.access(path, os.X_OK):
        raise DeployFailure("hooks", f"{event}: script at {script.location} is not executable")
    user = _switch_user(script.runas, event)
    env = dict(os.environ, **extra_env)
    progress(f"{event}: running {script.location} (timeout {script.timeout:g}s)")
    proc = await asyncio.create_subprocess_exec(
        str(path),
        cwd=release.directory,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        user=user,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), script.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise DeployFailure(
            "hooks",
            f"{event}: script {script.location} timed out after {script.timeout:g}s",
        ) from None
    lines = out.decode(errors="replace").splitlines()
    for line in lines[-_TAIL:]:
        progress(f"{event}: {line}")
    if proc.returncode != 0:
        raise DeployFailure(
            "hooks", f"{event}: script {script.location} exited with {proc.returncode}"
        )


def _switch_user(runas: str | None, event: str) -> int | None:
    if runas is None:
        return None
    try:
        entry = pwd.getpwnam(runas)
    except KeyError:
        raise DeployFailure("hooks", f"{event}: runas user {runas!r} does not exist") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise DeployFailure(
            "hooks", f"{event}: cannot run as {runas!r}: Shipline does not run as root"
        )
    return entry.pw_uid


def install_files(
    appspec: AppSpec | None, release: Release, progress: Callable[[str], None]
) -> None:
    """CodeDeploy's Install event: copy `files` and apply `permissions` (mode, owner)."""
    if appspec is None or not appspec.files:
        return
    for mapping in appspec.files:
        source = _inside(release.directory, mapping.source.lstrip("/") or ".")
        if source is None or not source.exists():
            raise DeployFailure("hooks", f"Install: source {mapping.source} is not in the release")
        destination = Path(mapping.destination)
        targets = [source] if source.is_file() else sorted(p for p in source.rglob("*"))
        for item in targets:
            rel = item.name if source.is_file() else item.relative_to(source).as_posix()
            dest = destination / rel
            if item.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            if dest.exists():
                if appspec.file_exists_behavior == "DISALLOW":
                    raise DeployFailure(
                        "hooks",
                        f"Install: {dest} already exists (file_exists_behavior: DISALLOW)",
                    )
                if appspec.file_exists_behavior == "RETAIN":
                    continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, dest)
        progress(f"Install: copied {mapping.source} to {mapping.destination}")
    for perm in appspec.permissions:
        root = Path(perm.object)
        pattern = "*" if perm.pattern == "**" else perm.pattern
        paths = [root] if root.is_file() else [root, *root.rglob(pattern)]
        for path in paths:
            if any(path.match(e) for e in perm.except_):
                continue
            kind = "directory" if path.is_dir() else "file"
            if kind not in perm.type:
                continue
            if perm.mode is not None:
                path.chmod(perm.mode.octal)
            if perm.owner and os.geteuid() == 0:
                shutil.chown(path, user=perm.owner)
            if perm.group and os.geteuid() == 0:
                shutil.chown(path, group=perm.group)
