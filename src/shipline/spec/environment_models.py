"""What an environment file (`.shipline/environments/<name>.yml`) says, as frozen models.

`spec.environment.load_environment` builds these; the deployment controller (data plane:
targets, strategies, router, health, hooks, rollback) and the control plane (protection
rules, concurrency, approvals) read them. Durations are seconds (floats); every model keeps
the position it was written at so a run-time error can point at the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipline.spec.models import Pos


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports `first..last` (inclusive) that instances of a local target listen on."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """Run `instances` copies of the service on this machine, supervised.

    `start` is a shell command run in the unpacked release directory with `PORT` (and
    `SHIPLINE_INSTANCE`, `SHIPLINE_RELEASE`) in its environment; `grace` is how long a stop
    waits after SIGTERM before SIGKILL.
    """

    instances: int
    start: str
    env: tuple[tuple[str, str], ...] = ()
    ports: PortRange = field(default_factory=lambda: PortRange(20000, 20999))
    grace: float = 10.0
    pos: Pos = field(default_factory=Pos)

    kind = "local"


@dataclass(frozen=True, slots=True)
class SshHost:
    """One host of an `ssh` target: `host:port` (SSH), and how its host key is verified:
    `host_key` (an OpenSSH public key line) or `fingerprint` (`SHA256:...`), else the
    target's `known_hosts`. `service_port` and `path` override the target's for this host."""

    host: str
    port: int = 22
    host_key: str | None = None
    fingerprint: str | None = None
    service_port: int | None = None
    path: str | None = None
    pos: Pos = field(default_factory=Pos)

    @property
    def name(self) -> str:
        return self.host if self.port == 22 else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Hosts reached over SSH as `user`, with the private key held by the environment
    secret `key_secret`. On each host the release is unpacked to `<path>/releases/<id>`,
    the `<path>/current` link switched atomically and `restart` (a shell command, run in
    `<path>/current`) restarts the service, which listens on `service_port` on the host's
    loopback (health checks reach it through the SSH connection). `known_hosts` holds
    OpenSSH known_hosts lines for hosts without their own `host_key`/`fingerprint`.
    After a successful rollout a host keeps `keep_releases` release directories: the
    current one and the most recent healthy ones before it."""

    hosts: tuple[SshHost, ...]
    user: str
    key_secret: str
    path: str
    restart: str
    service_port: int
    known_hosts: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    connect_timeout: float = 10.0
    restart_timeout: float = 60.0
    keep_releases: int = 5
    pos: Pos = field(default_factory=Pos)

    kind = "ssh"


Target = LocalTarget | SshTarget


@dataclass(frozen=True, slots=True)
class CanaryAnalysis:
    """Between canary steps: the canary's error rate and p95 latency (from the router's
    metrics over `interval`) must stay within these, once `min_requests` were seen."""

    max_error_rate: float | None = None
    max_p95_ms: float | None = None
    min_requests: int = 0
    interval: float = 5.0


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """How a release replaces the running one.

    `kind`: `all-at-once` | `rolling` | `blue-green` | `canary`.
    rolling: `batch_size` instances or `batch_percent` % per batch, and `min_healthy`
    instances that must keep serving (None: total - batch). blue-green: `keep_old` seconds the
    old set stays warm after the switch. canary: traffic `weights` (percent, last 100),
    `bake` seconds at each step, and `analysis`.
    """

    kind: str = "all-at-once"
    batch_size: int | None = None
    batch_percent: int | None = None
    min_healthy: int | None = None
    keep_old: float = 0.0
    weights: tuple[int, ...] = ()
    bake: float = 0.0
    analysis: CanaryAnalysis | None = None
    pos: Pos = field(default_factory=Pos)


STRATEGIES = ("all-at-once", "rolling", "blue-green", "canary")


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """GET `path` on an instance; healthy when the status is `status`."""

    path: str = "/"
    status: int = 200


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """Run `run` (shell) in the release directory with `PORT` set; healthy on exit 0."""

    run: str


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    """How an instance is judged healthy.

    `healthy_threshold` consecutive passes make a new instance healthy; `unhealthy_threshold`
    consecutive failures make a running one unhealthy; `start_timeout` bounds how long a new
    instance may take to become healthy.
    """

    check: HttpCheck | CommandCheck = field(default_factory=HttpCheck)
    timeout: float = 2.0
    interval: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3
    start_timeout: float = 30.0
    pos: Pos = field(default_factory=Pos)


@dataclass(frozen=True, slots=True)
class HookScript:
    """One script of a lifecycle hook (appspec semantics): path in the release, timeout
    in seconds (CodeDeploy's default 3600), user to run as (None: the deploying user)."""

    location: str
    timeout: float = 3600.0
    runas: str | None = None


HOOK_EVENTS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)


@dataclass(frozen=True, slots=True)
class HooksSpec:
    """Lifecycle hooks: an `appspec` file inside the release, or inline scripts per event."""

    appspec: str | None = None
    inline: tuple[tuple[str, tuple[HookScript, ...]], ...] = ()
    pos: Pos = field(default_factory=Pos)


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    """The environment's router: it listens on `host:port`; a removed instance gets `drain`
    seconds to finish its in-flight requests."""

    port: int
    host: str = "127.0.0.1"
    drain: float = 5.0
    pos: Pos = field(default_factory=Pos)


ROLLBACK_CAUSES = ("hooks", "health", "analysis")


@dataclass(frozen=True, slots=True)
class RollbackPolicy:
    """Roll back automatically to the last healthy release when a batch fails for one of
    `on` (`hooks`, `health`, `analysis`)."""

    automatic: bool = True
    on: tuple[str, ...] = ROLLBACK_CAUSES


@dataclass(frozen=True, slots=True)
class Reviewers:
    """Who must approve: `required` approvals from these users or members of these roles."""

    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    required: int = 1


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """No deployment may start for `duration` seconds after each time `cron` fires (UTC)."""

    cron: str
    duration: float
    pos: Pos = field(default_factory=Pos)


@dataclass(frozen=True, slots=True)
class ProtectionRules:
    """The gates of an environment, as data (enforced by the control plane).

    `branches`/`tags` are glob patterns of refs allowed to deploy (None: any); `wait_timer`
    seconds to wait after approval; `allow_untrusted` whether runs of untrusted events (pull
    requests, forks) may ever deploy: never by default.
    """

    reviewers: Reviewers | None = None
    prevent_self_review: bool = True
    branches: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    wait_timer: float = 0.0
    freeze: tuple[FreezeWindow, ...] = ()
    allow_untrusted: bool = False
    pos: Pos = field(default_factory=Pos)


@dataclass(frozen=True, slots=True)
class ConcurrencySpec:
    """One deployment at a time per environment; queued ones run oldest-first, and a queued
    deployment superseded by a newer commit is skipped when `skip_superseded`."""

    skip_superseded: bool = True


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """One environment file, as written. `name` comes from the file name."""

    name: str
    file: str
    target: Target
    strategy: StrategySpec = field(default_factory=StrategySpec)
    health: HealthCheckSpec = field(default_factory=HealthCheckSpec)
    hooks: HooksSpec = field(default_factory=HooksSpec)
    traffic: TrafficSpec | None = None
    rollback: RollbackPolicy = field(default_factory=RollbackPolicy)
    protection: ProtectionRules = field(default_factory=ProtectionRules)
    concurrency: ConcurrencySpec = field(default_factory=ConcurrencySpec)
    url: str | None = None
    description: str | None = None
