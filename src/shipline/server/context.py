"""What the HTTP layer is given: the services, built once by `wiring.build_server`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shipline.domain.artifacts import CacheInfo
from shipline.domain.clock import Clock
from shipline.engine.access import AccessService
from shipline.engine.deployments import DeploymentService
from shipline.engine.gates import GateService
from shipline.engine.remote import RemoteJobs
from shipline.engine.remote_files import JobFiles
from shipline.engine.rollouts import InstanceProbe
from shipline.engine.runners import RunnerService
from shipline.engine.service import RunService
from shipline.runner.ports import ArtifactStore
from shipline.scm.hosted import HostedRepositories
from shipline.security.sealing import Keyring
from shipline.store.ports import Store


@dataclass
class ServerContext:
    """The object graph the routers use; `runner_slots`/`busy_slots` feed `/metrics`."""

    store: Store
    clock: Clock
    access: AccessService
    runs: RunService
    runner_slots: int = 0
    busy_slots: list[int] = field(default_factory=lambda: [0])
    ready: bool = True
    # How often a live log stream (SSE) asks the store for new chunks, in seconds.
    log_poll_interval: float = 0.1
    # A live log stream ends after this long even if its job has not completed (the client
    # reconnects with Last-Event-ID), so that no request lives forever.
    log_stream_timeout: float = 3600.0
    # The artifacts of a run's attempt, `(run id, attempt)` (the blob store's index for
    # it); None: the server keeps none.
    artifacts: Callable[[int, int], ArtifactStore] | None = None
    # The cache entries whose scope starts with a prefix (`<project>@`), newest first.
    caches: Callable[[str], list[CacheInfo]] | None = None
    # Called with (conclusion, seconds) as each job of the embedded runner ends: the same
    # list object is handed to the runner; `/metrics` adds its histogram here.
    job_listeners: list[Callable[[str, float], None]] = field(default_factory=list)
    # The master keys of secrets (read on each use: a rotated key is picked up); None: this
    # server keeps no secrets (setting one is refused).
    keyring: Callable[[], Keyring] | None = None
    # The signed provenance of an artifact by (run id, artifact name); None: none kept.
    provenance: Callable[[int, int, str], bytes | None] | None = None
    # The PEM of the server's provenance public key (`shipline keys public`).
    signing_public_key: str | None = None
    # Appends a signed checkpoint of the audit chain's head (the server calls it
    # periodically and when it stops); None: no checkpoints.
    audit_checkpoint: Callable[[], object] | None = None
    # Remote runners (`shipline runner`): registration and administration, jobs handed
    # out over HTTP, and the files (source, artifacts, caches) of their jobs.
    runners: RunnerService | None = None
    remote: RemoteJobs | None = None
    job_files: JobFiles | None = None
    # The repositories the server hosts (`/git/<project>.git`); None: it hosts none.
    hosted: HostedRepositories | None = None
    # The server's webhook key (project secrets are derived from it); None: a random key
    # for this process only (tests).
    webhook_key: bytes | None = None
    # A webhook delivery's body is refused (413) beyond this many bytes.
    webhook_max_bytes: int = 5 * 1024 * 1024
    # Environment gates (approvals) and deployments; None: this server deploys nothing.
    gates: GateService | None = None
    deployments: DeploymentService | None = None
    # Asks environments' targets which instances run (the dashboard); None: not asked.
    instances: InstanceProbe | None = None
