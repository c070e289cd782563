"""The composition root: the only module that knows the concrete executor, stores and
source provider, and builds the object graph from them."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shipline.executors import sandbox
from shipline.executors.base import Executor
from shipline.executors.shell import ShellExecutor
from shipline.runner.isolation import SandboxPolicy
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.scm.git_checkout import GitSourceProvider
from shipline.store.blobs import BlobStore
from shipline.store.local import DatabaseCacheStore, LocalArtifactStore, LocalCacheStore
from shipline.store.provenance_files import ProvenanceFiles

log = logging.getLogger("shipline.runner")

if TYPE_CHECKING:
    from shipline.domain.artifacts import ArtifactRecord
    from shipline.domain.records import ProjectRecord, RunRecord

    # The server's classes are imported by `build_server` only: `shipline run` does not
    # pay for SQLAlchemy, FastAPI and the engine's services.
    from shipline.engine.deploy_worker import DeploymentWorker
    from shipline.engine.embedded import EmbeddedRunner
    from shipline.engine.leases import LeaseReaper
    from shipline.engine.polling import Poller
    from shipline.engine.provenance import ProvenanceWriter
    from shipline.engine.remote_files import Bundler, Signer
    from shipline.engine.rollouts import Rollouts
    from shipline.engine.schedules import Scheduler
    from shipline.engine.secrets import SecretService
    from shipline.runner.ports import ArtifactStore, CacheStore
    from shipline.runner.remote.protocol import JobOut
    from shipline.scm.hosted import HostedRepositories
    from shipline.scm.repository import GitRepository
    from shipline.security.keyfiles import SecretsKeySource
    from shipline.server.context import ServerContext
    from shipline.settings import Settings
    from shipline.store.ports import QueueSignals, Store
    from shipline.store.sql.store import SqlStore


def local_job_runner(
    *,
    repo_root: Path,
    state_dir: Path,
    run_dir: Path,
    observer: JobObserver,
    host_env: Mapping[str, str],
    executor: str = "shell",
) -> JobRunner:
    """A runner for `shipline run`: the named executor (`shell` or `sandbox`), stores
    under the state directory, checkouts from the local repository."""
    blobs = BlobStore(state_dir / "blobs")
    return JobRunner(
        make_executor(executor),
        observer,
        work_root=run_dir / "jobs",
        artifacts=LocalArtifactStore(blobs, run_dir),
        caches=LocalCacheStore(blobs, state_dir / "caches.json"),
        source=GitSourceProvider(repo_root),
        host_env=host_env,
    )


EXECUTORS = ("shell", "sandbox")


def executor_unavailable(name: str) -> str | None:
    """None when executor `name` can run steps on this machine, else why not."""
    if name == "shell":
        return None
    if name == "sandbox":
        return sandbox.probe()
    return f"no executor {name!r} (executors: {', '.join(EXECUTORS)})"


def make_executor(name: str, *, limits: str = "auto", warning: str | None = None) -> Executor:
    """The executor named `name` (one of `EXECUTORS`); `warning` is a shell executor's
    reason to be there instead of the sandbox (shown in every job's log)."""
    if name == "sandbox":
        return sandbox.SandboxExecutor(limits=limits)
    if name == "shell":
        return ShellExecutor(warning=warning)
    raise ValueError(f"no executor {name!r} (executors: {', '.join(EXECUTORS)})")


class SandboxUnavailable(Exception):
    """The sandbox is required (`--executor sandbox`) and cannot run here."""


def choose_executor(choice: str, limits: str = "auto") -> tuple[str, str | None]:
    """The executor a runner uses for `choice` (`auto`, `sandbox`, `shell`), probed on this
    machine: `(name, warning)`, the warning set when `auto` falls back to `shell`.
    Raises `SandboxUnavailable` when `sandbox` is required and cannot run."""
    if choice == "shell":
        return "shell", None
    why = sandbox.probe(limits)
    if why is None:
        return "sandbox", None
    if choice == "sandbox":
        raise SandboxUnavailable(why)
    return "shell", (
        f"the sandbox does not work on this machine ({why}); steps run UNISOLATED with the "
        "shell executor. Install bubblewrap (Debian: apt-get install bubblewrap), or start "
        "with --executor sandbox to refuse to run steps without it."
    )


def sandbox_policy(settings: Settings) -> SandboxPolicy:
    """The embedded runner's isolation policy, from the settings."""
    return SandboxPolicy(
        trusted_network=settings.sandbox_network_trusted,
        untrusted_network=settings.sandbox_network_untrusted,
        memory=settings.sandbox_memory_bytes,
        processes=settings.sandbox_processes,
    )


# Variables of the server's environment that steps on the embedded runner inherit. Nothing
# else: the server's own variables (SHIPLINE_ADMIN_TOKEN, database credentials) must never
# reach a step.
SERVER_HOST_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
STATE_DIR_MODE = 0o700


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory readable by the server's user only (0700), and take
    looser bits away from one that exists: it holds the database, keys and blobs."""
    state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(state_dir.stat().st_mode) != STATE_DIR_MODE:
        state_dir.chmod(STATE_DIR_MODE)


def server_owner(state_dir: Path) -> str:
    """The embedded runner's lease owner: stable across restarts of the server on this state
    directory (so that `recover` finds the jobs a killed process left), distinct between
    servers sharing one database."""
    id_file = state_dir / "server-id"
    try:
        server_id = id_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        server_id = ""
    if not server_id:
        server_id = secrets.token_hex(8)
        id_file.write_text(server_id + "\n", encoding="utf-8")
    return f"embedded:{socket.gethostname()}:{server_id}"


def server_job_runners(
    state_dir: Path,
    host_env: Mapping[str, str],
    provenance: ProvenanceWriter | None = None,
    *,
    shared_dir: Path | None = None,
    executor: tuple[str, str | None] = ("shell", None),
    limits: str = "auto",
    policy: SandboxPolicy | None = None,
    caches: CacheStore | None = None,
) -> Callable[[JobObserver, RunRecord], JobRunner]:
    """`make_runner` of the embedded runner: the chosen executor (`choose_executor`) with
    `policy`, the run's artifacts under `attempt_dir` (per attempt) of the shared
    directory (`shared_dir`, default `state_dir`), its jobs' directories under the state
    directory, caches and blobs shared, checkouts from the project's mirror (the one
    `RunService` fetched the run's commit into). With `provenance`, every artifact a job
    uploads gets signed provenance beside it (per attempt, like the artifacts). `caches`:
    the server's (indexed in its database; default: a JSON index in the shared directory)."""
    shared = shared_dir or state_dir
    blobs = BlobStore(shared / "blobs")
    if caches is None:
        caches = LocalCacheStore(blobs, shared / "caches.json")
    env = {k: v for k, v in host_env.items() if k in SERVER_HOST_ENV}

    def make_runner(observer: JobObserver, run: RunRecord) -> JobRunner:
        run_dir = attempt_dir(shared, run.id, run.attempt)
        artifacts: ArtifactStore = LocalArtifactStore(blobs, run_dir)
        if provenance is not None:
            from shipline.engine.provenance import SignedArtifacts

            artifacts = SignedArtifacts(artifacts, run, provenance, ProvenanceFiles(run_dir).save)
        return JobRunner(
            make_executor(executor[0], limits=limits, warning=executor[1]),
            observer,
            work_root=attempt_dir(state_dir, run.id, run.attempt) / "jobs",
            artifacts=artifacts,
            caches=caches,
            source=GitSourceProvider(mirror_dir(state_dir, run.project_id)),
            host_env=env,
            policy=policy,
            ephemeral=True,
        )

    return make_runner


def attempt_dir(state_dir: Path, run_id: int, attempt: int) -> Path:
    """The files of one attempt of a run (its artifact index, its jobs' directories):
    `runs/<id>` for the first, `runs/<id>/attempt-<n>` for re-runs, so that a re-run's
    upload never replaces an earlier attempt's artifact of the same name."""
    run_dir = state_dir / "runs" / str(run_id)
    return run_dir if attempt <= 1 else run_dir / f"attempt-{attempt}"


def run_artifacts(state_dir: Path) -> Callable[[int, int], LocalArtifactStore]:
    """The artifact index of a run's attempt, over the server's blob store (what the API
    lists and serves; the same place the embedded runner's jobs upload to). `state_dir`
    is the shared directory when the servers have one (`Settings.shared_dir`)."""
    blobs = BlobStore(state_dir / "blobs")
    return lambda run_id, attempt: LocalArtifactStore(
        blobs, attempt_dir(state_dir, run_id, attempt)
    )


def run_provenance(state_dir: Path) -> Callable[[int, int, str], bytes | None]:
    """The signed provenance of an artifact, by (run id, attempt, artifact name)."""
    return lambda run_id, attempt, name: ProvenanceFiles(
        attempt_dir(state_dir, run_id, attempt)
    ).load(name)


def mirror_dir(state_dir: Path, project_id: int) -> Path:
    """Where the server keeps its bare mirror of a project's repository."""
    return state_dir / "mirrors" / str(project_id)


def repositories(
    state_dir: Path, hosted: HostedRepositories
) -> Callable[[ProjectRecord], GitRepository]:
    """The server's view of a project's repository: a mirror under the state directory,
    fetched from the project's remote, or from the repository the server hosts for it."""
    from shipline.domain.source import HOSTED
    from shipline.scm.repository import GitRepository

    def repository(project: ProjectRecord) -> GitRepository:
        source = project.repository
        if source == HOSTED:
            source = str(hosted.ensure(project.id, project.default_branch))
        return GitRepository(source, mirror_dir(state_dir, project.id))

    return repository


def open_store(settings: Settings) -> SqlStore:
    """The SQL store of `settings.database_url`, migrated to the newest revision."""
    from shipline.store.sql.store import SqlStore

    if settings.database_url.startswith("sqlite"):
        prepare_state_dir(settings.state_dir)
    return SqlStore(settings.database_url)


def secrets_key_source(settings: Settings) -> SecretsKeySource:
    """Where the server's secrets master key comes from (see `Settings`)."""
    from shipline.security.keyfiles import SecretsKeySource

    return SecretsKeySource(
        settings.state_dir,
        operator_key=settings.secrets_key_value,
        operator_file=settings.secrets_key_file,
    )


def build_server(
    settings: Settings, *, host_env: Mapping[str, str] | None = None
) -> tuple[ServerContext, EmbeddedRunner]:
    """The server's object graph: state directory (0700), store (migrations run), clock,
    services, and the embedded runner with its executor chosen (`choose_executor`: raises
    `SandboxUnavailable` when the sandbox is required and cannot run). `host_env` (default:
    this process's environment) is filtered to `SERVER_HOST_ENV` before any step sees it."""
    from shipline.domain.clock import SystemClock
    from shipline.engine.access import AccessService
    from shipline.engine.audit import AuditTrail
    from shipline.engine.deployments import DeploymentService
    from shipline.engine.embedded import EmbeddedRunner
    from shipline.engine.environment_files import EnvironmentFiles
    from shipline.engine.gates import GateService
    from shipline.engine.job_deployer import ServerDeployer
    from shipline.engine.projects import ProjectService
    from shipline.engine.provenance import ProvenanceWriter
    from shipline.engine.releases import ReleaseVerifier
    from shipline.engine.secrets import SecretService
    from shipline.engine.service import RunService
    from shipline.scm.hosted import HostedRepositories
    from shipline.security.keyfiles import signing_key
    from shipline.security.provenance import (
        BUILDER_EMBEDDED_SANDBOX,
        BUILDER_EMBEDDED_SHELL,
        BUILDER_REMOTE,
        public_pem,
    )
    from shipline.security.webhook_keys import load_or_create_key
    from shipline.server.context import ServerContext

    state_dir = settings.state_dir
    prepare_state_dir(state_dir)  # also for PostgreSQL: mirrors, runs and blobs live here
    store = open_store(settings)
    clock = SystemClock()
    keys = secrets_key_source(settings)
    keys.keyring()  # made (or checked) now: a bad operator key stops the start
    signing = signing_key(state_dir)
    executor = choose_executor(settings.executor, settings.sandbox_limits)
    # The builder id says what isolated the steps: provenance from unisolated steps is
    # weaker, and a verifier may refuse it.
    builder = BUILDER_EMBEDDED_SANDBOX if executor[0] == "sandbox" else BUILDER_EMBEDDED_SHELL
    writer = ProvenanceWriter(store, clock, signing, builder)
    hosted = HostedRepositories(state_dir)
    hosted.install_hooks()
    runs = RunService(store, clock, repositories(state_dir, hosted))
    if executor[1] is not None:
        log.warning("WARNING: %s", executor[1])
    else:
        log.info("embedded runner: steps run with the %s executor", executor[0])
    access = AccessService(store, clock)
    projects = ProjectService(store, clock, access, runs)
    files = EnvironmentFiles(repositories(state_dir, hosted))
    gates = GateService(store, clock, files, runs, projects)
    runs.gatekeeper = gates
    verifier = ReleaseVerifier(
        run_artifacts(settings.shared_dir),
        run_provenance(settings.shared_dir),
        [signing.public_key()],
    )
    deployments = DeploymentService(store, clock, files, projects, access, verifier)
    runner = EmbeddedRunner(
        store,
        runs,
        clock,
        slots=settings.runner_slots,
        make_runner=server_job_runners(
            state_dir,
            os.environ if host_env is None else host_env,
            writer,
            shared_dir=settings.shared_dir,
            executor=executor,
            limits=settings.sandbox_limits,
            policy=sandbox_policy(settings),
            caches=server_caches(settings, store),
        ),
        owner=server_owner(state_dir),
        signals=store.signals,
        secrets=SecretService(store, clock, keys.keyring, projects),
        deployer=lambda job_id, token: ServerDeployer(deployments, access, job_id, token),
    )
    context = ServerContext(
        job_listeners=runner.listeners,
        store=store,
        clock=clock,
        access=access,
        runs=runs,
        keyring=keys.keyring,
        provenance=run_provenance(settings.shared_dir),
        signing_public_key=public_pem(signing.public_key()),
        audit_checkpoint=lambda: AuditTrail(store).checkpoint(signing, clock),
        runner_slots=settings.runner_slots,
        artifacts=run_artifacts(settings.shared_dir),
        caches=server_caches(settings, store).listed,
        hosted=hosted,
        webhook_key=load_or_create_key(state_dir / "keys" / "webhook.key"),
        gates=gates,
        deployments=deployments,
    )
    remote_writer = ProvenanceWriter(store, clock, signing, BUILDER_REMOTE)
    add_remote_runners(context, settings, store.signals, remote_writer)
    return context, runner


def add_remote_runners(
    context: ServerContext,
    settings: Settings,
    signals: QueueSignals | None = None,
    provenance: ProvenanceWriter | None = None,
) -> None:
    """Give the server what remote runners need: registration, the job queue over HTTP
    with the lease policy of `settings` (its long polls woken by the store's `signals`),
    and their jobs' files in the blob store, each artifact signed by `provenance` (the
    remote runner's builder id)."""
    from shipline.engine.leases import LeasePolicy
    from shipline.engine.remote import RemoteJobs
    from shipline.engine.remote_files import JobFiles
    from shipline.engine.runners import RunnerService

    state_dir = settings.state_dir
    shared = settings.shared_dir
    blobs = BlobStore(shared / "blobs")
    caches = server_caches(settings, context.store)
    policy = LeasePolicy(
        heartbeat_seconds=settings.heartbeat_seconds, lease_seconds=settings.lease_seconds
    )
    context.runners = RunnerService(context.store, context.clock, context.access)
    context.remote = RemoteJobs(
        context.store,
        context.clock,
        context.runs,
        context.access,
        policy=policy,
        secrets=secret_service(context),
        signals=signals,
        poll_interval=settings.queue_poll_seconds,
    )
    context.job_files = JobFiles(
        context.store,
        blobs,
        run_artifacts(shared),
        caches,
        caches.listed,
        mirror_bundler(state_dir),
        sign=None if provenance is None else artifact_signer(shared, provenance),
    )


def artifact_signer(shared: Path, writer: ProvenanceWriter) -> Signer:
    """Signs an artifact's provenance and keeps it beside the run attempt's artifacts."""

    def sign(run: RunRecord, record: ArtifactRecord) -> None:
        files = ProvenanceFiles(attempt_dir(shared, run.id, run.attempt))
        files.save(record.name, writer.envelope(run, record))

    return sign


def server_caches(settings: Settings, store: Store) -> DatabaseCacheStore:
    """The server's caches: archives in the shared blob store, the index in the database
    (every server process sees the same entries, and the first save of a key wins)."""
    return DatabaseCacheStore(BlobStore(settings.shared_dir / "blobs"), store)


def secret_service(context: ServerContext) -> SecretService | None:
    """The service that opens secrets for claimed jobs; None when the server keeps none."""
    if context.keyring is None:
        return None
    from shipline.engine.access import AccessService
    from shipline.engine.projects import ProjectService
    from shipline.engine.secrets import SecretService

    access = AccessService(context.store, context.clock)
    projects = ProjectService(context.store, context.clock, access, context.runs)
    return SecretService(context.store, context.clock, context.keyring, projects)


def mirror_bundler(state_dir: Path) -> Bundler:
    """Bundles of the server's mirrors, one at a time per project (a fetch into a mirror
    must not race another)."""
    import threading

    from shipline.scm.repository import GitRepository

    locks: dict[int, threading.Lock] = {}
    guard = threading.Lock()

    def bundle(project: ProjectRecord, sha: str, dest: Path) -> None:
        with guard:
            lock = locks.setdefault(project.id, threading.Lock())
        with lock:
            repo = GitRepository(project.repository, mirror_dir(state_dir, project.id))
            repo.bundle(sha, dest)

    return bundle


def build_reaper(context: ServerContext) -> LeaseReaper:
    """The reaper of remote runners' expired leases (every server runs one)."""
    from shipline.engine.leases import LeasePolicy, LeaseReaper

    policy = context.remote.policy if context.remote is not None else LeasePolicy()
    return LeaseReaper(context.store, context.clock, context.runs, policy)


def deployment_controller(settings: Settings) -> Rollouts:
    """The server's deployment controllers (`shipline.deploy`), one per project: the
    supervisors, routers and instances of a project's environments under
    `state_dir/deploy/projects/<project>`."""
    from shipline.deploy.controller import RolloutController
    from shipline.engine.controller_rollouts import ControllerRollouts

    controllers: dict[str, RolloutController] = {}

    def controller_for(project: str) -> RolloutController:
        if project not in controllers:
            controllers[project] = RolloutController(project_deploy_dir(settings, project))
        return controllers[project]

    return ControllerRollouts(controller_for)


def project_deploy_dir(settings: Settings, project: str) -> Path:
    """Where a project's deployment controller keeps its environments' supervisors."""
    return settings.state_dir / "deploy" / "projects" / project


def build_deployment_worker(
    settings: Settings, context: ServerContext, rollouts: Rollouts | None = None
) -> DeploymentWorker:
    """The worker that ticks environment gates and runs the deployment queue. `rollouts`
    is the deployment controller (None: deployments fail with that reason)."""
    from shipline.engine.deploy_worker import DeploymentWorker
    from shipline.engine.environment_files import EnvironmentFiles
    from shipline.engine.releases import ReleaseVerifier
    from shipline.engine.rollouts import InstanceProbe
    from shipline.scm.hosted import HostedRepositories
    from shipline.security.keyfiles import signing_key

    probe: object = rollouts
    if isinstance(probe, InstanceProbe):
        context.instances = probe  # the dashboard shows each environment's instances
    state_dir = settings.state_dir
    files = EnvironmentFiles(repositories(state_dir, HostedRepositories(state_dir)))
    verifier = ReleaseVerifier(
        run_artifacts(settings.shared_dir),
        run_provenance(settings.shared_dir),
        [signing_key(state_dir).public_key()],
    )
    secrets = secret_service(context)
    return DeploymentWorker(
        context.store,
        context.clock,
        files,
        verifier,
        rollouts,
        state_dir / "releases",
        gates=context.gates,
        secrets=secrets.for_deployment if secrets is not None else None,
    )


def upgrade_database(settings: Settings) -> tuple[str | None, str | None]:
    """Run the migrations `settings.database_url` has not had: `(before, after)` revisions
    (before is None for a new database; equal when there was nothing to do)."""
    from shipline.store.sql import migrations

    if settings.database_url.startswith("sqlite"):
        prepare_state_dir(settings.state_dir)
    before = migrations.current_revision(settings.database_url)
    migrations.upgrade(settings.database_url)
    return before, migrations.current_revision(settings.database_url)


def build_poller(context: ServerContext) -> Poller:
    """The poller of projects that set a poll interval: their ref changes raise push
    events through the same `SourceService.pushed` as a hosted push."""
    from shipline.engine.polling import Poller
    from shipline.engine.projects import ProjectService
    from shipline.engine.source import SourceService

    projects = ProjectService(context.store, context.clock, context.access, context.runs)
    source = SourceService(context.store, context.clock, projects, context.runs)
    return Poller(context.store, context.clock, context.runs.repositories, source.pushed)


def build_scheduler(context: ServerContext) -> Scheduler:
    """The scheduler that fires `on.schedule` crons, over the server's services."""
    from shipline.engine.schedules import Scheduler

    return Scheduler(context.store, context.runs, context.clock, context.runs.repositories)


def rotate_secrets_key(settings: Settings, new_key_file: Path | None) -> tuple[int, str]:
    """Re-seal every secret under a new master key: `(secrets, new key id)`.

    With Shipline's own key file the new key is generated and kept beside the old one
    until every value is re-sealed, then renamed over it; an operator-provided key needs
    `new_key_file` (the operator then configures the server with it).
    """
    from shipline.domain.clock import SystemClock
    from shipline.engine.secrets import reseal_all
    from shipline.security.sealing import Keyring, MasterKey, SealError

    keys = secrets_key_source(settings)
    old = keys.keyring()
    if new_key_file is not None:
        new = MasterKey.from_text(new_key_file.read_text(encoding="ascii"), str(new_key_file))
    elif keys.generated:
        new = MasterKey.generate()
    else:
        raise SealError(
            "the master key is the operator's (SHIPLINE_SECRETS_KEY or _FILE): give the new "
            "one with --new-key-file"
        )
    store = open_store(settings)
    try:
        if keys.generated:
            keys.begin_rotation(new)
            try:
                count = reseal_all(store, SystemClock(), old, new)
            except BaseException:
                keys.abandon_rotation()
                raise
            keys.finish_rotation()
            # A value a server sealed under the old key during the rotation: re-seal it too.
            reseal_all(store, SystemClock(), Keyring(old.current, (new,)), new)
        else:
            count = reseal_all(store, SystemClock(), old, new)
    finally:
        store.close()
    return count, new.id


def remote_job_runners(
    urls: list[str],
    executor: tuple[str, str | None],
    host_env: Mapping[str, str],
    policy: SandboxPolicy | None = None,
) -> Callable[[JobObserver, JobOut, Path], JobRunner]:
    """`make_runner` of `shipline runner`: the chosen executor (`choose_executor`) with
    `policy` (default: the sandbox's defaults, half this machine's memory per job), and the
    job's artifacts, caches and source through the server, with the job's token. Each job
    starts from an empty directory and leaves nothing behind."""
    if policy is None:
        policy = SandboxPolicy(memory=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    from shipline.runner.remote.connection import SyncConnection
    from shipline.runner.remote.stores import (
        BundleSource,
        HttpArtifactStore,
        HttpCacheStore,
        JobFilesClient,
    )

    def make_runner(observer: JobObserver, job: JobOut, root: Path) -> JobRunner:
        files = JobFilesClient(SyncConnection(urls, job.token), job.job_id, root / "blobs")
        return JobRunner(
            make_executor(executor[0], warning=executor[1]),
            observer,
            work_root=root / "jobs",
            artifacts=HttpArtifactStore(files),
            caches=HttpCacheStore(files),
            source=BundleSource(files, root / "source.git"),
            host_env=host_env,
            policy=policy,
            ephemeral=True,
        )

    return make_runner
