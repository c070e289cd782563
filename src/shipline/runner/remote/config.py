"""The runner's configuration file: the servers' URLs and the runner credential.

Written by `shipline runner register` with mode 0600 (it holds a credential), created
that way rather than narrowed afterwards; read by `shipline runner`, which refuses a file
others can read.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MODE = 0o600


class ConfigError(ValueError):
    """The configuration file is missing, unreadable, too open or malformed."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    urls: tuple[str, ...]
    token: str
    runner_id: int
    name: str
    labels: tuple[str, ...] = ()


def default_path(env: dict[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/shipline/runner.json`, by default under `~/.config`."""
    environ = os.environ if env is None else env
    home = environ.get("XDG_CONFIG_HOME", "")
    base = Path(home) if home and Path(home).is_absolute() else Path.home() / ".config"
    return base / "shipline" / "runner.json"


def write(path: Path, config: RunnerConfig) -> None:
    """Write the file with mode 0600 (replacing an older one atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(
            {
                "urls": list(config.urls),
                "token": config.token,
                "runner_id": config.runner_id,
                "name": config.name,
                "labels": list(config.labels),
            },
            out,
            indent=1,
        )
    tmp.replace(path)


def read(path: Path) -> RunnerConfig:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the runner configuration {path}: {exc.strerror or exc}; "
            "register first with `shipline runner register --url URL`"
        ) from exc
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds a credential but others may read it (mode {mode:o}); chmod 600 {path}"
        )
    try:
        raw = json.loads(text)
        return RunnerConfig(
            urls=tuple(str(u) for u in raw["urls"]),
            token=str(raw["token"]),
            runner_id=int(raw["runner_id"]),
            name=str(raw["name"]),
            labels=tuple(str(x) for x in raw.get("labels", [])),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a runner configuration ({exc})") from exc
