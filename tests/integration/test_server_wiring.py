"""`wiring.build_server`: the state directory, the store, and what steps may inherit."""

from __future__ import annotations

import stat
from pathlib import Path

from shipline import wiring
from shipline.domain.records import RunRecord
from shipline.domain.status import Status
from shipline.settings import Settings


def settings(state_dir: Path) -> Settings:
    return Settings.with_flags(state_dir=state_dir, runner_slots=3, database_url=None)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_build_server_creates_a_private_state_dir_and_a_migrated_database(
    tmp_path: Path,
) -> None:
    state = tmp_path / "a" / "state"
    context, runner = wiring.build_server(settings(state))
    try:
        assert mode(state) == 0o700
        assert (state / "shipline.db").exists()
        assert context.runner_slots == 3
        assert runner.slots == 3
        # The database is usable: first start bootstraps the admin, later starts do not.
        assert context.access.bootstrap_admin(None) is not None
        assert context.access.bootstrap_admin(None) is None
    finally:
        context.store.close()  # type: ignore[attr-defined]


def test_existing_state_dir_with_loose_bits_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    wiring.prepare_state_dir(state)
    assert mode(state) == 0o700


def test_runner_owner_is_stable_per_state_dir_and_distinct_between_them(
    tmp_path: Path,
) -> None:
    first = wiring.server_owner(tmp_path)
    assert wiring.server_owner(tmp_path) == first
    other = tmp_path / "other"
    other.mkdir()
    assert wiring.server_owner(other) != first


def test_steps_inherit_only_harmless_variables(tmp_path: Path) -> None:
    make_runner = wiring.server_job_runners(
        tmp_path,
        {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "SHIPLINE_ADMIN_TOKEN": "shp_u_secret",
            "SHIPLINE_DATABASE_URL": "postgresql+psycopg://u:pw@db/x",
            "AWS_SECRET_ACCESS_KEY": "nope",
        },
    )
    run = RunRecord(
        id=7,
        project_id=2,
        number=1,
        attempt=1,
        workflow_file=".shipline/workflows/ci.yml",
        workflow_name="ci",
        event="push",
        ref="refs/heads/main",
        sha="0" * 40,
        actor="admin",
        status=Status.QUEUED,
    )
    runner = make_runner(object(), run)  # type: ignore[arg-type]
    assert runner.host_env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    assert runner.work_root == tmp_path / "runs" / "7" / "jobs"


def test_upgrade_database_is_idempotent(tmp_path: Path) -> None:
    config = settings(tmp_path / "state")
    before, after = wiring.upgrade_database(config)
    assert before is None
    assert after is not None
    assert wiring.upgrade_database(config) == (after, after)
    assert mode(tmp_path / "state") == 0o700
