"""Lifecycle hooks run as CodeDeploy runs them: in order, from the release directory, with
its variables, and every way a script can fail is a clear `hooks` failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shipline.deploy.appspec import parse_appspec
from shipline.deploy.hooks import install_files, load_hooks, run_event
from shipline.deploy.types import DeployFailure, Release
from shipline.spec.environment import load_environment


def _release(tmp_path: Path, scripts: dict[str, str], appspec: str) -> Release:
    root = tmp_path / "release"
    root.mkdir()
    for name, body in scripts.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        path.chmod(0o755)
    (root / "appspec.yml").write_text(appspec)
    return Release("r-1", "1.0", root)


def _run(release: Release, event: str) -> list[str]:
    env, diagnostics = load_environment(
        "target: {local: {start: x}}\ntraffic: {port: 8080}\n", "prod.yml"
    )
    assert env is not None, diagnostics
    lines: list[str] = []
    asyncio.run(
        run_event(
            load_hooks(env, release),
            event,
            release,
            deployment_id="d-1",
            environment="prod",
            ports=[9001, 9002],
            instances=["a", "b"],
            progress=lines.append,
        )
    )
    return lines


def test_scripts_run_in_order_with_codedeploy_variables(tmp_path: Path) -> None:
    release = _release(
        tmp_path,
        {
            "one.sh": '#!/bin/sh\necho "1 $LIFECYCLE_EVENT $DEPLOYMENT_ID $APPLICATION_NAME"\n',
            "two.sh": '#!/bin/sh\necho "2 $SHIPLINE_PORTS $SHIPLINE_INSTANCES $(pwd)"\n',
        },
        "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n"
        "    - location: one.sh\n    - location: two.sh\n",
    )
    lines = _run(release, "AfterInstall")
    assert "AfterInstall: 1 AfterInstall d-1 prod" in lines
    assert f"AfterInstall: 2 9001 9002 a b {release.directory}" in lines
    assert lines.index("AfterInstall: 1 AfterInstall d-1 prod") < lines.index(
        f"AfterInstall: 2 9001 9002 a b {release.directory}"
    )
    assert _run(release, "BeforeInstall") == []  # no scripts for that event


@pytest.mark.parametrize(
    ("scripts", "hook", "reason"),
    [
        ({"fail.sh": "#!/bin/sh\nexit 3\n"}, "fail.sh", "script fail.sh exited with 3"),
        ({}, "missing.sh", "script does not exist at specified location: missing.sh"),
        ({}, "../outside.sh", "is outside the release directory"),
        ({"slow.sh": "#!/bin/sh\nsleep 30\n"}, "slow.sh\n      timeout: 1", "timed out after 1s"),
        (
            {},
            "one.sh\n      runas: no-such-user-here",
            "runas user 'no-such-user-here' does not exist",
        ),
    ],
)
def test_failures_say_why(tmp_path: Path, scripts: dict[str, str], hook: str, reason: str) -> None:
    release = _release(
        tmp_path,
        {"one.sh": "#!/bin/sh\ntrue\n", **scripts},
        f"version: 0.0\nos: linux\nhooks:\n  ValidateService:\n    - location: {hook}\n",
    )
    with pytest.raises(DeployFailure) as caught:
        _run(release, "ValidateService")
    assert caught.value.cause == "hooks"
    assert reason in caught.value.message


def test_not_executable_and_bad_appspec(tmp_path: Path) -> None:
    release = _release(
        tmp_path, {}, "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: x.sh\n"
    )
    (release.directory / "x.sh").write_text("#!/bin/sh\n")
    with pytest.raises(DeployFailure, match="is not executable"):
        _run(release, "ApplicationStart")
    (release.directory / "appspec.yml").write_text("version: 1.0\nos: linux\n")
    with pytest.raises(DeployFailure, match=r"appspec.yml: .*invalid version value \(1.0\)"):
        _run(release, "ApplicationStart")


def test_install_copies_files_and_applies_modes(tmp_path: Path) -> None:
    dest = tmp_path / "installed"
    release = _release(
        tmp_path,
        {"config/app.conf": "x=1\n"},
        f"version: 0.0\nos: linux\nfiles:\n  - source: config\n    destination: {dest}\n"
        f"permissions:\n  - object: {dest}\n    mode: 640\n    type: [file]\n",
    )
    spec = parse_appspec((release.directory / "appspec.yml").read_text())
    install_files(spec, release, print)
    assert (dest / "app.conf").read_text() == "x=1\n"
    assert (dest / "app.conf").stat().st_mode & 0o777 == 0o640
    with pytest.raises(DeployFailure, match="already exists"):
        install_files(spec, release, print)  # file_exists_behavior: DISALLOW (the default)
