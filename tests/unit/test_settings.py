"""Settings: defaults, `SHIPLINE_*` variables, flags on top, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from shipline.settings import Settings, default_state_dir


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SHIPLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_defaults(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.state_dir == tmp_path / "data" / "shipline"
    assert settings.database_url == f"sqlite:///{tmp_path}/data/shipline/shipline.db"
    assert settings.runner_slots == (os.cpu_count() or 1)
    assert settings.shutdown_grace == 30.0
    assert settings.shared_dir == settings.state_dir
    assert (settings.heartbeat_seconds, settings.lease_seconds) == (10.0, 30.0)
    assert settings.admin_token is None
    assert settings.admin_token_value is None


def test_state_dir_without_xdg_is_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_state_dir() == Path.home() / ".local" / "share" / "shipline"
    # A relative XDG_DATA_HOME is invalid by the specification: ignored.
    assert default_state_dir({"XDG_DATA_HOME": "rel"}) == Path.home() / ".local/share/shipline"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPLINE_HOST", "0.0.0.0")
    monkeypatch.setenv("SHIPLINE_PORT", "9000")
    monkeypatch.setenv("SHIPLINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SHIPLINE_RUNNER_SLOTS", "3")
    monkeypatch.setenv("SHIPLINE_SHUTDOWN_GRACE", "2.5")
    monkeypatch.setenv("SHIPLINE_ADMIN_TOKEN", "shp_u_secret")
    # Variables of the CLI client share the prefix and must not be refused.
    monkeypatch.setenv("SHIPLINE_URL", "http://example")
    monkeypatch.setenv("SHIPLINE_TOKEN", "x")
    settings = Settings()
    assert (settings.host, settings.port, settings.runner_slots) == ("0.0.0.0", 9000, 3)
    assert settings.shutdown_grace == 2.5
    assert settings.state_dir == tmp_path / "state"
    assert settings.database_url == f"sqlite:///{tmp_path}/state/shipline.db"
    assert settings.admin_token_value == "shp_u_secret"
    assert "shp_u_secret" not in repr(settings)


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPLINE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/x")
    assert Settings().database_url == "postgresql+psycopg://postgres@127.0.0.1/x"


def test_flags_win_over_environment_and_unset_flags_do_not_hide_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIPLINE_PORT", "9000")
    monkeypatch.setenv("SHIPLINE_HOST", "0.0.0.0")
    settings = Settings.with_flags(port=9100, host=None, state_dir=tmp_path / "s")
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    # The database follows the state directory the flag named.
    assert settings.database_url == f"sqlite:///{tmp_path}/s/shipline.db"


def test_relative_state_dir_is_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.with_flags(state_dir=Path("rel"))
    assert settings.state_dir == tmp_path / "rel"
    assert settings.database_url == f"sqlite:///{tmp_path}/rel/shipline.db"


def test_empty_admin_token_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPLINE_ADMIN_TOKEN", "")
    assert Settings().admin_token_value is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("port", 70000),
        ("port", -1),
        ("runner_slots", -1),
        ("lease_seconds", 0),
        ("shutdown_grace", -1),
        ("host", ""),
    ],
)
def test_invalid_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Settings.with_flags(**{name: value})
    assert name in str(info.value)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings.with_flags(prot=1)
