"""The deployment queue's worker: one deployment at a time per environment, oldest first.

`dispatch()` decides which queued deployments start (in one locked transaction, so that
servers sharing a database never start one environment twice): a queued deployment from a
workflow that a newer commit's deployment superseded is skipped with the reason (no older
commit is deployed after a newer one), and nothing starts while a freeze window is open.
`execute()` verifies the release again, unpacks it and hands it to the `Rollouts` port,
storing each progress line and the outcome, with an audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from shipline.domain.clock import Clock
from shipline.domain.deployments import (
    DeploymentKind,
    DeploymentRecord,
    DeploymentState,
    ReleaseOutcome,
)
from shipline.domain.records import ProjectRecord
from shipline.engine.environment_files import EnvironmentError, EnvironmentFile, EnvironmentFiles
from shipline.engine.errors import Conflict
from shipline.engine.gates import GateService
from shipline.engine.protection import freeze_until
from shipline.engine.releases import Refused, ReleaseVerifier
from shipline.engine.rollouts import RolloutReport, RolloutRequest, Rollouts
from shipline.store.ports import NewHistoryEntry, Store, Transaction

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "shipline"
_OUTCOMES = {
    DeploymentState.SUCCESS: ReleaseOutcome.SUCCESS,
    DeploymentState.ROLLED_BACK: ReleaseOutcome.ROLLED_BACK,
    DeploymentState.FAILURE: ReleaseOutcome.FAILURE,
}


# The environment's secrets for a deployment's instances: (project id, environment,
# deployment id) -> values (`SecretService.for_deployment`).
EnvironmentSecrets = Callable[[int, str, int], dict[str, str]]


class DeploymentWorker:
    """Starts queued deployments and runs them through `rollouts` (None: every deployment
    fails with the reason that this server has no deployment controller). `secrets` opens
    the environment's secrets for the instances once a deployment is verified (None: the
    instances get none)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        files: EnvironmentFiles,
        verifier: ReleaseVerifier,
        rollouts: Rollouts | None,
        releases_dir: Path,
        *,
        gates: GateService | None = None,
        secrets: EnvironmentSecrets | None = None,
        poll_interval: float = 0.2,
    ) -> None:
        self._store = store
        self._clock = clock
        self._files = files
        self._verifier = verifier
        self._rollouts = rollouts
        self._releases_dir = releases_dir
        self._gates = gates
        self._secrets = secrets
        self.poll_interval = poll_interval
        self._stopping = asyncio.Event()
        self.running: dict[int, asyncio.Task[DeploymentRecord]] = {}

    # -- deciding ----------------------------------------------------------------------

    def recover(self) -> list[DeploymentRecord]:
        """Deployments a previous server process left in progress end as failures."""
        ended: list[DeploymentRecord] = []
        with self._store.transaction() as tx:
            for d in tx.deployments.unfinished(lock=True):
                if d.state is DeploymentState.IN_PROGRESS:
                    ended.append(
                        self._finish(
                            tx,
                            d,
                            RolloutReport(
                                DeploymentState.FAILURE,
                                "the server stopped during the rollout; check the environment "
                                "and deploy again",
                            ),
                        )
                    )
        return ended

    def dispatch(self) -> list[DeploymentRecord]:
        """Start what may start now; returns the deployments moved to in_progress."""
        with self._store.transaction(write=False) as tx:
            queued = [d for d in tx.deployments.unfinished() if d.state is DeploymentState.QUEUED]
            projects = {d.project_id: tx.projects.get_by_id(d.project_id) for d in queued}
        if not queued:
            return []
        frozen = self._frozen(queued, projects)
        started: list[DeploymentRecord] = []
        with self._store.transaction() as tx:
            unfinished = tx.deployments.unfinished(lock=True)
            busy = {
                (d.project_id, d.environment)
                for d in unfinished
                if d.state is DeploymentState.IN_PROGRESS
            }
            queues: dict[tuple[int, str], list[DeploymentRecord]] = {}
            for d in unfinished:
                if d.state is DeploymentState.QUEUED:
                    queues.setdefault((d.project_id, d.environment), []).append(d)
            for key, queue in queues.items():
                if key in busy or key in frozen:
                    continue
                for d in queue:
                    reason = self._superseded(tx, d, queue)
                    if reason is not None:
                        self._skip(tx, d, reason)
                        continue
                    now = self._clock.now()
                    started.append(
                        tx.deployments.set_state(d.id, DeploymentState.IN_PROGRESS, now=now)
                    )
                    tx.deployments.add_progress(d.id, "started", now=now)
                    break
        return started

    def _frozen(
        self, queued: list[DeploymentRecord], projects: dict[int, ProjectRecord | None]
    ) -> set[tuple[int, str]]:
        frozen: set[tuple[int, str]] = set()
        now = self._clock.now()
        for key in {(d.project_id, d.environment) for d in queued}:
            project = projects.get(key[0])
            if project is None:
                continue
            try:
                file = self._files.read(project, key[1], fetch=False)
            except EnvironmentError:
                continue  # execute() ends it with the reason
            if freeze_until(file.rules, now) is not None:
                frozen.add(key)
        return frozen

    @staticmethod
    def _superseded(
        tx: Transaction, d: DeploymentRecord, queue: list[DeploymentRecord]
    ) -> str | None:
        """Why a workflow's queued deployment must not run: a newer run's deployment is
        queued behind it, or already ran."""
        if d.kind is not DeploymentKind.DEPLOY or d.run_id is None:
            return None
        newer = [
            q
            for q in queue
            if q.id > d.id and q.kind is DeploymentKind.DEPLOY and (q.run_id or 0) > d.run_id
        ]
        if newer:
            n = newer[-1]
            return (
                f"superseded by deployment {n.id} of a newer commit ({n.sha[:12]}, run {n.run_id})"
            )
        current = tx.deployments.last_success(d.project_id, d.environment)
        if current is not None and current.run_id is not None and current.run_id > d.run_id:
            return (
                f"a newer commit ({current.sha[:12]}, run {current.run_id}) is deployed already "
                f"(deployment {current.id})"
            )
        return None

    def _skip(self, tx: Transaction, d: DeploymentRecord, reason: str) -> None:
        now = self._clock.now()
        tx.deployments.set_state(d.id, DeploymentState.SKIPPED, now=now, reason=reason)
        tx.deployments.add_progress(d.id, f"skipped: {reason}", now=now)
        tx.audit.append(
            actor=SYSTEM_ACTOR,
            action="deployment.skip",
            now=now,
            project_id=d.project_id,
            target=f"deployment:{d.id}",
            reason=reason,
            data={"environment": d.environment, "release": d.release_id, "run": d.run_id},
        )

    # -- running -----------------------------------------------------------------------

    def progress(self, deployment_id: int, message: str) -> None:
        with self._store.transaction() as tx:
            tx.deployments.add_progress(deployment_id, message, now=self._clock.now())

    async def execute(self, d: DeploymentRecord) -> DeploymentRecord:
        """Verify, unpack and roll out one started deployment; returns it, ended."""
        try:
            report = await self._rollout(d)
        except Exception as exc:  # a bug in a controller must not leave it in progress
            log.exception("deployment %s", d.id)
            report = RolloutReport(DeploymentState.FAILURE, f"the controller failed: {exc}")
        with self._store.transaction() as tx:
            return self._finish(tx, d, report)

    async def _rollout(self, d: DeploymentRecord) -> RolloutReport:
        with self._store.transaction(write=False) as tx:
            project = tx.projects.get_by_id(d.project_id)
            release = tx.releases.get(d.release_id)
            run = tx.runs.get(release.run_id) if release is not None else None
            previous = tx.releases.get(d.previous_release_id) if d.previous_release_id else None
        if project is None or release is None or run is None:
            return RolloutReport(DeploymentState.REFUSED, "its project, release or run is gone")
        try:
            file: EnvironmentFile = await asyncio.to_thread(
                self._files.read, project, d.environment
            )
            verified = await asyncio.to_thread(
                self._verifier.verify, project, run, release.artifact, file.rules
            )
            if verified.digest != release.digest:
                raise Refused(
                    f"artifact {release.artifact!r} no longer has the release's digest "
                    f"({verified.digest}, recorded {release.digest})"
                )
            directory = await asyncio.to_thread(
                self._verifier.unpack,
                run,
                verified,
                self._releases_dir / str(project.id) / str(release.id),
            )
        except (EnvironmentError, Refused) as exc:
            return RolloutReport(DeploymentState.REFUSED, str(exc))
        self.progress(d.id, f"verified release {release.id} ({release.digest}); rolling out")
        if self._rollouts is None:
            return RolloutReport(
                DeploymentState.FAILURE, "this server has no deployment controller"
            )
        # Only now, past the gates (a deployment is queued once its environment approved
        # it) and the verification: the environment's secrets, for its instances.
        values: dict[str, str] = {}
        if self._secrets is not None:
            try:
                values = await asyncio.to_thread(self._secrets, project.id, d.environment, d.id)
            except Conflict as exc:
                return RolloutReport(DeploymentState.FAILURE, str(exc))
        request = RolloutRequest(
            project=project.name,
            environment=d.environment,
            environment_file=file.path,
            environment_text=file.text,
            deployment_id=d.id,
            kind=d.kind,
            release=release,
            directory=directory,
            previous=previous,
            secrets=values,
        )

        def progress(line: str) -> None:
            # In order, from the event loop: one short insert per line.
            self.progress(d.id, line)

        return await self._rollouts.rollout(request, progress)

    def _finish(
        self, tx: Transaction, d: DeploymentRecord, report: RolloutReport
    ) -> DeploymentRecord:
        now = self._clock.now()
        ended = tx.deployments.set_state(d.id, report.state, now=now, reason=report.reason)
        self._remember(tx, ended, report)
        tx.deployments.add_progress(
            d.id, f"{report.state}" + (f": {report.reason}" if report.reason else ""), now=now
        )
        tx.audit.append(
            actor=SYSTEM_ACTOR,
            action="deployment.finish",
            now=now,
            decision="denied" if report.state is DeploymentState.REFUSED else "allowed",
            project_id=d.project_id,
            target=f"deployment:{d.id}",
            reason=report.reason,
            data={
                "environment": d.environment,
                "release": d.release_id,
                "state": str(report.state),
                "kind": str(d.kind),
            },
        )
        return ended

    @staticmethod
    def _remember(tx: Transaction, d: DeploymentRecord, report: RolloutReport) -> None:
        """A rollout that reached the target goes into the environment's release history
        (a refused or skipped deployment never ran there)."""
        outcome = _OUTCOMES.get(report.state)
        release = tx.releases.get(d.release_id)
        if outcome is None or release is None or d.finished_at is None:
            return
        rolled_back_to = report.rolled_back_to
        if outcome is ReleaseOutcome.ROLLED_BACK and rolled_back_to is None:
            rolled_back_to = d.previous_release_id
        tx.history.record(
            NewHistoryEntry(
                project_id=d.project_id,
                environment=d.environment,
                deployment_id=d.id,
                release_id=d.release_id,
                kind=d.kind,
                outcome=outcome,
                actor=d.actor,
                run_id=release.run_id,
                ref=release.ref,
                sha=release.sha,
                artifact=release.artifact,
                digest=release.digest,
                cause=report.cause,
                reason=report.reason,
                rolled_back_to=rolled_back_to,
                started_at=d.started_at,
            ),
            now=d.finished_at,
        )

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Tick gates (wait timers, freeze windows) and start deployments until `stop()`."""
        while not self._stopping.is_set():
            try:
                if self._gates is not None:
                    await asyncio.to_thread(self._gates.tick)
                for d in await asyncio.to_thread(self.dispatch):
                    self._start(d)
            except Exception:
                log.exception("deployment worker")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_interval)

    def _start(self, d: DeploymentRecord) -> None:
        task = asyncio.create_task(self.execute(d))
        self.running[d.id] = task

        def done(_: asyncio.Task[DeploymentRecord]) -> None:
            self.running.pop(d.id, None)

        task.add_done_callback(done)

    async def stop(self, grace: float = 30.0) -> None:
        self._stopping.set()
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=grace)
