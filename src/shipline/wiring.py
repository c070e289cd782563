"""The composition root: the only module that knows the concrete executor, stores and
source provider, and builds the object graph from them."""

from __future__ import annotations

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
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.scm.git_checkout import GitSourceProvider
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore
from shipline.store.provenance_files import ProvenanceFiles

if TYPE_CHECKING:
    from shipline.domain.records import RunRecord

    # The server's classes are imported by `build_server` only: `shipline run` does not
    # pay for SQLAlchemy, FastAPI and the engine's services.
    from shipline.engine.deploy_worker import DeploymentWorker
    from shipline.engine.embedded import EmbeddedRunner
    from shipline.engine.provenance import ProvenanceWriter
    from shipline.engine.rollouts import Rollouts
    from shipline.engine.schedules import Scheduler
    from shipline.runner.ports import ArtifactStore
    from shipline.security.keyfiles import SecretsKeySource
    from shipline.server.context import ServerContext
    from shipline.settings import Settings
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


def make_executor(name: str) -> Executor:
    """The executor named `name` (one of `EXECUTORS`)."""
    if name == "sandbox":
        return sandbox.SandboxExecutor()
    if name == "shell":
        return ShellExecutor()
    raise ValueError(f"no executor {name!r} (executors: {', '.join(EXECUTORS)})")


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
    state_dir: Path, host_env: Mapping[str, str], provenance: ProvenanceWriter | None = None
) -> Callable[[JobObserver, RunRecord], JobRunner]:
    """`make_runner` of the embedded runner: shell executor, the run's files under
    `state_dir/runs/<run id>`, caches and blobs shared, checkouts from the project's
    mirror (the one `RunService` fetched the run's commit into). With `provenance`, every
    artifact a job uploads gets signed provenance beside it."""
    blobs = BlobStore(state_dir / "blobs")
    caches = LocalCacheStore(blobs, state_dir / "caches.json")
    env = {k: v for k, v in host_env.items() if k in SERVER_HOST_ENV}

    def make_runner(observer: JobObserver, run: RunRecord) -> JobRunner:
        run_dir = state_dir / "runs" / str(run.id)
        artifacts: ArtifactStore = LocalArtifactStore(blobs, run_dir)
        if provenance is not None:
            from shipline.engine.provenance import SignedArtifacts

            artifacts = SignedArtifacts(artifacts, run, provenance, ProvenanceFiles(run_dir).save)
        return JobRunner(
            ShellExecutor(),
            observer,
            work_root=run_dir / "jobs",
            artifacts=artifacts,
            caches=caches,
            source=GitSourceProvider(mirror_dir(state_dir, run.project_id)),
            host_env=env,
        )

    return make_runner


def run_artifacts(state_dir: Path) -> Callable[[int], LocalArtifactStore]:
    """The artifact index of a run, over the server's blob store (what the API lists and
    serves; the same place the embedded runner's jobs upload to)."""
    blobs = BlobStore(state_dir / "blobs")
    return lambda run_id: LocalArtifactStore(blobs, state_dir / "runs" / str(run_id))


def run_provenance(state_dir: Path) -> Callable[[int, str], bytes | None]:
    """The signed provenance of a run's artifact, by (run id, artifact name)."""
    return lambda run_id, name: ProvenanceFiles(state_dir / "runs" / str(run_id)).load(name)


def mirror_dir(state_dir: Path, project_id: int) -> Path:
    """Where the server keeps its bare mirror of a project's repository."""
    return state_dir / "mirrors" / str(project_id)


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
    services, and the embedded runner. `host_env` (default: this process's environment)
    is filtered to `SERVER_HOST_ENV` before any step sees it."""
    from shipline.domain.clock import SystemClock
    from shipline.engine.access import AccessService
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
    from shipline.scm.repository import GitRepository
    from shipline.security.keyfiles import signing_key
    from shipline.security.provenance import BUILDER_EMBEDDED_SHELL, public_pem
    from shipline.server.context import ServerContext

    state_dir = settings.state_dir
    prepare_state_dir(state_dir)  # also for PostgreSQL: mirrors, runs and blobs live here
    store = open_store(settings)
    clock = SystemClock()
    keys = secrets_key_source(settings)
    keys.keyring()  # made (or checked) now: a bad operator key stops the start
    signing = signing_key(state_dir)
    writer = ProvenanceWriter(store, clock, signing, BUILDER_EMBEDDED_SHELL)
    runs = RunService(
        store,
        clock,
        lambda project: GitRepository(project.repository, mirror_dir(state_dir, project.id)),
    )
    access = AccessService(store, clock)
    projects = ProjectService(store, clock, access, runs)
    files = EnvironmentFiles(
        lambda project: GitRepository(project.repository, mirror_dir(state_dir, project.id))
    )
    gates = GateService(store, clock, files, runs, projects)
    runs.gatekeeper = gates
    verifier = ReleaseVerifier(
        run_artifacts(state_dir), run_provenance(state_dir), [signing.public_key()]
    )
    deployments = DeploymentService(store, clock, files, projects, access, verifier)
    runner = EmbeddedRunner(
        store,
        runs,
        clock,
        slots=settings.runner_slots,
        make_runner=server_job_runners(
            state_dir, os.environ if host_env is None else host_env, writer
        ),
        owner=server_owner(state_dir),
        secrets=SecretService(store, clock, keys.keyring, projects),
        deployer=lambda job_id: ServerDeployer(deployments, job_id),
    )
    context = ServerContext(
        job_listeners=runner.listeners,
        store=store,
        clock=clock,
        access=access,
        runs=runs,
        keyring=keys.keyring,
        provenance=run_provenance(state_dir),
        signing_public_key=public_pem(signing.public_key()),
        runner_slots=settings.runner_slots,
        artifacts=run_artifacts(state_dir),
        caches=LocalCacheStore(BlobStore(state_dir / "blobs"), state_dir / "caches.json").listed,
        gates=gates,
        deployments=deployments,
    )
    return context, runner


def build_deployment_worker(
    settings: Settings, context: ServerContext, rollouts: Rollouts | None = None
) -> DeploymentWorker:
    """The worker that ticks environment gates and runs the deployment queue. `rollouts`
    is the deployment controller (None: deployments fail with that reason)."""
    from shipline.engine.deploy_worker import DeploymentWorker
    from shipline.engine.environment_files import EnvironmentFiles
    from shipline.engine.releases import ReleaseVerifier
    from shipline.scm.repository import GitRepository
    from shipline.security.keyfiles import signing_key

    state_dir = settings.state_dir
    files = EnvironmentFiles(
        lambda project: GitRepository(project.repository, mirror_dir(state_dir, project.id))
    )
    verifier = ReleaseVerifier(
        run_artifacts(state_dir),
        run_provenance(state_dir),
        [signing_key(state_dir).public_key()],
    )
    return DeploymentWorker(
        context.store,
        context.clock,
        files,
        verifier,
        rollouts,
        state_dir / "releases",
        gates=context.gates,
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
