"""The server's settings: defaults, then `SHIPLINE_*` environment variables, then flags.

`Settings` is built once, by the command that starts the program (`shipline server`,
`shipline db upgrade`), and passed down to `wiring`; nothing imports a settings object
from a module. Flags are given as keyword arguments and win over the environment:

    Settings.with_flags(port=9000, host=None)   # SHIPLINE_PORT ignored, SHIPLINE_HOST read

`admin_token` is read from `SHIPLINE_ADMIN_TOKEN` only: a command-line flag's value shows
in `ps` to every user of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipline.domain.sizes import parse_size

__all__ = ["Settings", "default_state_dir", "sqlite_url"]

DATABASE_FILE = "shipline.db"


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    """Where the server keeps its state when not told: `$XDG_DATA_HOME/shipline`, by
    default `~/.local/share/shipline` (the XDG base directory specification)."""
    environ = os.environ if env is None else env
    data_home = environ.get("XDG_DATA_HOME", "")
    # The specification says a relative value is invalid and must be ignored.
    if data_home and Path(data_home).is_absolute():
        return Path(data_home) / "shipline"
    return Path.home() / ".local" / "share" / "shipline"


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file (absolute: `sqlite:////abs/path`)."""
    return f"sqlite:///{path.expanduser().absolute()}"


def _cpu_count() -> int:
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """What `shipline server` is configured with.

    host, port: where the API listens. state_dir: the database (SQLite), blobs, mirrors
    and run directories. database_url: SQLAlchemy URL (default SQLite under state_dir;
    `postgresql+psycopg://user@host/db` for many servers). runner_slots: jobs the embedded
    runner runs at once (default: the number of CPUs; 0: none, jobs go to remote runners
    only). shared_dir: artifacts and caches (their blobs and indexes), a directory all
    servers share (default: state_dir). heartbeat_seconds, lease_seconds: how often
    remote runners renew their job leases, and when a lease not renewed is lost (10 s,
    30 s). queue_poll_seconds: how often a remote runner's waiting long poll reads the queue
    again although no signal woke it (default 5 s; signals wake it at once).
    shutdown_grace: seconds running steps get to finish on SIGTERM before they are
    cancelled. admin_token: the first admin's API token (`SHIPLINE_ADMIN_TOKEN`);
    generated and printed once when unset. secrets_key / secrets_key_file: the operator's
    master key for secrets (`SHIPLINE_SECRETS_KEY`, `SHIPLINE_SECRETS_KEY_FILE`);
    default: generated in state_dir.
    """

    model_config = SettingsConfigDict(
        env_prefix="SHIPLINE_",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=0, le=65535)
    state_dir: Path = Field(default_factory=default_state_dir)
    database_url: str = ""
    shared_dir: Path = Path()
    runner_slots: int = Field(default_factory=_cpu_count, ge=0, le=1024)
    heartbeat_seconds: float = Field(default=10.0, gt=0, le=3600)
    lease_seconds: float = Field(default=30.0, gt=0, le=86400)
    queue_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    shutdown_grace: float = Field(default=30.0, ge=0)
    admin_token: SecretStr | None = None
    executor: Literal["auto", "sandbox", "shell"] = "auto"
    sandbox_limits: Literal["auto", "cgroup", "rlimit"] = "auto"
    sandbox_memory: str = ""
    sandbox_processes: int = Field(default=4096, ge=16)
    sandbox_network_trusted: bool = True
    sandbox_network_untrusted: bool = False
    # The master key of secrets, given by the operator (base64 of 32 bytes) directly or in
    # a file; by default generated into `state_dir/secrets.key` (0600) on first start.
    secrets_key: SecretStr | None = None
    secrets_key_file: Path | None = None

    @classmethod
    def with_flags(cls, **flags: Any) -> Settings:
        """Settings from the environment, with the flags the user gave on top (a flag
        left out arrives as None and must not hide the environment's value)."""
        return cls(**{k: v for k, v in flags.items() if v is not None})

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        state_dir = self.state_dir.expanduser().absolute()
        # frozen: set through object.__setattr__ while the instance is being built
        object.__setattr__(self, "state_dir", state_dir)
        if self.shared_dir == Path():
            object.__setattr__(self, "shared_dir", state_dir)
        else:
            object.__setattr__(self, "shared_dir", self.shared_dir.expanduser().absolute())
        if not self.database_url:
            object.__setattr__(self, "database_url", sqlite_url(state_dir / DATABASE_FILE))
        if self.sandbox_memory and parse_size(self.sandbox_memory) is None:
            raise ValueError(f"sandbox_memory: not a size like 4G or 512M: {self.sandbox_memory!r}")
        return self

    @property
    def sandbox_memory_bytes(self) -> int:
        """Each job's memory limit: `sandbox_memory`, by default half this machine's."""
        if self.sandbox_memory:
            return parse_size(self.sandbox_memory) or 0
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2

    @property
    def secrets_key_value(self) -> str | None:
        """The operator's master key (base64), or None when `SHIPLINE_SECRETS_KEY` is unset."""
        if self.secrets_key is None:
            return None
        return self.secrets_key.get_secret_value() or None

    @property
    def admin_token_value(self) -> str | None:
        """The admin token's plaintext, or None when `SHIPLINE_ADMIN_TOKEN` is unset/empty."""
        if self.admin_token is None:
            return None
        return self.admin_token.get_secret_value() or None
