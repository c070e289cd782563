"""Builds `ActionCall`s for the built-in actions on real local stores and temp dirs.

A plain module, not a conftest: tests construct `Run(tmp_path)` explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipline.runner.ports import ActionCall
from shipline.scm.git_checkout import GitSourceProvider
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore


@dataclass
class Job:
    """One job's directories and the stores its calls share."""

    root: Path
    artifacts: LocalArtifactStore
    caches: LocalCacheStore
    logs: list[str] = field(default_factory=list)

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def call(
        self,
        uses: str,
        inputs: dict[str, str] | None = None,
        *,
        scope: str = "acme/app@refs/heads/main",
        repo: Path | None = None,
        github: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
    ) -> ActionCall:
        for folder in (self.workspace, self.home, self.root / "temp", self.root / "tools"):
            folder.mkdir(parents=True, exist_ok=True)
        return ActionCall(
            uses=uses,
            inputs=inputs or {},
            workspace=self.workspace,
            temp=self.root / "temp",
            tool_cache=self.root / "tools",
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", **(env or {})},
            github=github or {"job": "build"},
            log=self.logs.append,
            artifacts=self.artifacts,
            caches=self.caches,
            source=GitSourceProvider(repo or self.root / "no-repo"),
            cache_scope=scope,
        )


class Run:
    """One run's stores; `job(name)` gives a job with its own workspace and home."""

    def __init__(self, root: Path) -> None:
        self.root = root
        blobs = BlobStore(root / "state" / "blobs")
        self.artifacts = LocalArtifactStore(blobs, root / "state" / "run")
        self.caches = LocalCacheStore(blobs, root / "state" / "caches.json")

    def job(self, name: str = "job") -> Job:
        return Job(self.root / name, self.artifacts, self.caches)
