"""Deployments: asked for by a workflow step (`shipline/deploy`) or from the CLI/API
(`shipline deploy`, `rollback`, roll forward), with the same gates and audit.

A step's request is allowed only for a job whose environment gate approved it; a manual
one only for one of the environment's reviewers (maintainer and up). Either way the
environment's rules are read from the default branch at that moment, the artifact is
verified (`engine.releases`), and the deployment joins its environment's queue, where
`engine.deploy_worker` starts it. Every request, allowed or refused, is an audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipline.domain.clock import Clock
from shipline.domain.deployments import (
    DeploymentKind,
    DeploymentRecord,
    DeploymentState,
    GateState,
    ReleaseHistoryRecord,
    ReleaseOutcome,
    ReleaseRecord,
)
from shipline.domain.records import ProjectRecord, Role, RunRecord, TokenKind
from shipline.engine.access import AccessService
from shipline.engine.environment_files import EnvironmentError, EnvironmentFile, EnvironmentFiles
from shipline.engine.errors import Conflict, Forbidden, Invalid, NotFound
from shipline.engine.principal import Principal
from shipline.engine.projects import ProjectService
from shipline.engine.protection import may_review, ref_refusal, trust_refusal
from shipline.engine.releases import Refused, ReleaseVerifier, VerifiedRelease
from shipline.store.ports import NewDeployment, NewRelease, Page, Store, Transaction

SYSTEM_ACTOR = "shipline"


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """A deployment with its release, as history and the API show it."""

    deployment: DeploymentRecord
    release: ReleaseRecord


class DeploymentService:
    """Requests, history and progress of deployments."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        files: EnvironmentFiles,
        projects: ProjectService,
        access: AccessService,
        verifier: ReleaseVerifier,
    ) -> None:
        self._store = store
        self._clock = clock
        self._files = files
        self._projects = projects
        self._access = access
        self._verifier = verifier

    # -- from a workflow step ----------------------------------------------------------

    def from_job(self, job_id: int, artifact: str, *, request_id: str = "") -> DeploymentRecord:
        """Queue `artifact` of the job's run for the job's environment.

        `Forbidden` (audited) when the job has no approved environment gate or the
        artifact fails verification (the message says why)."""
        with self._store.transaction(write=False) as tx:
            job = tx.jobs.get(job_id)
            run = tx.runs.get(job.run_id) if job is not None else None
            gate = tx.gates.for_job(job_id)
            project = tx.projects.get_by_id(run.project_id) if run is not None else None
        if job is None or run is None or project is None:
            raise NotFound("no such job")
        actor = f"job:{job_id}"
        if gate is None:
            self._deny(
                actor,
                project,
                "deployment.request",
                "the job targets no environment (give it `environment:`)",
                request_id,
                target=f"job:{job_id}",
            )
        assert gate is not None
        if gate.state is not GateState.APPROVED:
            self._deny(
                actor,
                project,
                "deployment.request",
                f"the job's gate for environment {gate.environment} is {gate.state}",
                request_id,
                target=f"job:{job_id}",
            )
        file = self._read(actor, project, gate.environment, request_id)
        refusal = trust_refusal(file.rules, run.trust) or ref_refusal(file.rules, run.ref)
        if refusal is not None:
            self._deny(actor, project, "deployment.request", refusal, request_id, file.name)
        verified = self._verify(actor, project, run, artifact, file, request_id)
        return self._queue(
            project,
            file.name,
            verified,
            run,
            kind=DeploymentKind.DEPLOY,
            actor=run.actor,
            job_id=job_id,
            request_id=request_id,
            audit_actor=actor,
        )

    # -- from the CLI / API ------------------------------------------------------------

    def deploy(
        self,
        actor: Principal,
        project_name: str,
        environment: str,
        release_id: int,
        *,
        request_id: str = "",
        kind: DeploymentKind | None = None,
    ) -> DeploymentRecord:
        """Queue release `release_id` for `environment` (`shipline deploy`)."""
        action = "deployment.rollback" if kind is DeploymentKind.ROLLBACK else "deployment.create"
        project = self._projects.authorize(
            actor, project_name, Role.MAINTAINER, action=action, request_id=request_id
        )
        with self._store.transaction(write=False) as tx:
            release = tx.releases.get(release_id)
            run = tx.runs.get(release.run_id) if release is not None else None
            role = tx.members.role(project.id, actor.user_id) if actor.user_id is not None else None
            current = tx.history.live(project.id, environment)
            approved_before = self._succeeded_before(tx, project.id, environment, release_id)
            last = tx.deployments.page(project.id, environment, limit=1).items
        if release is None or release.project_id != project.id or run is None:
            raise NotFound(f"project {project.name} has no release {release_id}", field="release")
        file = self._read(actor.user_name, project, environment, request_id)
        rules = file.rules
        denial = None
        if actor.kind is not TokenKind.USER:
            denial = "only a user may deploy from the CLI or API"
        elif not may_review(rules, actor.user_name, role, actor.is_admin):
            denial = f"{actor.user_name} is not one of environment {environment}'s reviewers"
        elif rules.prevent_self_review and rules.reviewers is not None and not approved_before:
            denial = (
                f"release {release_id} never ran in {environment}: a new release needs another "
                "reviewer's approval, given to a workflow run (`shipline approve`)"
            )
        denial = denial or trust_refusal(rules, run.trust) or ref_refusal(rules, release.ref)
        if denial is not None:
            self._deny(actor.user_name, project, action, denial, request_id, environment)
        verified = self._verify(actor.user_name, project, run, release.artifact, file, request_id)
        if verified.digest != release.digest:
            self._deny(
                actor.user_name,
                project,
                action,
                f"artifact {release.artifact!r} no longer has release {release_id}'s digest",
                request_id,
                environment,
            )
        if kind is None:
            rolled_back = bool(last) and (
                last[0].kind is DeploymentKind.ROLLBACK
                or last[0].state is DeploymentState.ROLLED_BACK
            )
            newer = current is not None and release_id > current.release_id
            kind = DeploymentKind.ROLL_FORWARD if rolled_back and newer else DeploymentKind.DEPLOY
        return self._queue(
            project,
            environment,
            verified,
            run,
            kind=kind,
            actor=actor.user_name,
            job_id=None,
            request_id=request_id,
            audit_actor=actor.user_name,
        )

    def rollback(
        self,
        actor: Principal,
        project_name: str,
        environment: str,
        to_release: int | None = None,
        *,
        request_id: str = "",
    ) -> DeploymentRecord:
        """Queue the release that was live before the current one, or `to_release`, read
        from the environment's release history (`shipline rollback ENV [--to RELEASE]`)."""
        project = self._projects.authorize(
            actor, project_name, Role.MAINTAINER, action="deployment.rollback"
        )
        with self._store.transaction(write=False) as tx:
            live = tx.history.live(project.id, environment)
            if to_release is None:
                earlier = tx.history.previous(project.id, environment)
            else:
                earlier = tx.history.last_of(
                    project.id, environment, to_release, ReleaseOutcome.SUCCESS
                )
        if live is None:
            raise Conflict(f"nothing was deployed to {environment} yet: nothing to roll back")
        if earlier is None and to_release is None:
            raise Conflict(f"{environment} ran no other release before: nothing to roll back to")
        if earlier is None:
            raise Conflict(
                f"release {to_release} never went live in {environment}: a rollback goes to a "
                f"release of its history (`shipline releases {environment}`)",
                field="release",
            )
        if earlier.release_id == live.release_id:
            raise Conflict(f"release {earlier.release_id} is the one {environment} serves now")
        return self.deploy(
            actor,
            project_name,
            environment,
            earlier.release_id,
            request_id=request_id,
            kind=DeploymentKind.ROLLBACK,
        )

    # -- reading -----------------------------------------------------------------------

    def history(
        self,
        actor: Principal,
        project_name: str,
        environment: str | None,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[DeploymentView]:
        """An environment's (or the project's) deployments, newest first."""
        if limit < 1 or limit > 100:
            raise Invalid("limit is 1 to 100", field="limit")
        project = self._projects.authorize(
            actor, project_name, Role.VIEWER, action="deployment.list"
        )
        with self._store.transaction(write=False) as tx:
            page = tx.deployments.page(project.id, environment, limit=limit, cursor=cursor)
            views = [self._view(tx, d) for d in page.items]
        return Page(views, page.next_cursor)

    def releases(
        self,
        actor: Principal,
        project_name: str,
        environment: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[ReleaseHistoryRecord]:
        """An environment's release history, newest first: which release, when, by whom,
        from which run and commit, and the outcome (with the rollback's cause and reason)."""
        if limit < 1 or limit > 100:
            raise Invalid("limit is 1 to 100", field="limit")
        project = self._projects.authorize(
            actor, project_name, Role.VIEWER, action="deployment.list"
        )
        with self._store.transaction(write=False) as tx:
            return tx.history.page(project.id, environment, limit=limit, cursor=cursor)

    def environment_files(
        self, actor: Principal, project_name: str, names: Sequence[str]
    ) -> dict[str, EnvironmentFile | str]:
        """The named environments' files as the server reads them now from the default
        branch (viewers), fetching the repository once; for a file that cannot be read,
        the reason instead."""
        project = self._projects.authorize(
            actor, project_name, Role.VIEWER, action="environment.read"
        )
        found: dict[str, EnvironmentFile | str] = {}
        for n, name in enumerate(names):
            try:
                found[name] = self._files.read(project, name, fetch=n == 0)
            except EnvironmentError as exc:
                found[name] = str(exc)
        return found

    def get(self, actor: Principal, deployment_id: int) -> DeploymentView:
        with self._store.transaction(write=False) as tx:
            found = tx.deployments.get(deployment_id)
            view = self._view(tx, found) if found is not None else None
        if view is None:
            raise NotFound("no such deployment")
        self._check_viewer(actor, view.deployment.project_id)
        return view

    def progress(
        self, actor: Principal, deployment_id: int, *, after: int = 0
    ) -> tuple[DeploymentView, list[tuple[int, str]]]:
        """The deployment and its progress lines after sequence number `after`."""
        view = self.get(actor, deployment_id)
        with self._store.transaction(write=False) as tx:
            lines = tx.deployments.progress(deployment_id, after=after)
            found = tx.deployments.get(deployment_id)
        if found is not None:
            view = DeploymentView(found, view.release)
        return view, lines

    def follow(
        self, deployment_id: int, *, after: int = 0
    ) -> tuple[DeploymentState, str, list[tuple[int, str]]]:
        """State, reason and progress lines after `after` of a deployment, for the job that
        asked for it (the caller established that; no access check here)."""
        with self._store.transaction(write=False) as tx:
            found = tx.deployments.get(deployment_id)
            lines = tx.deployments.progress(deployment_id, after=after)
        if found is None:
            raise NotFound("no such deployment")
        return found.state, found.reason, lines

    def _check_viewer(self, actor: Principal, project_id: int) -> None:
        try:
            self._access.require(actor, project_id, Role.VIEWER, action="deployment.read")
        except Forbidden as exc:
            raise NotFound("no such deployment") from exc

    @staticmethod
    def _view(tx: Transaction, deployment: DeploymentRecord) -> DeploymentView:
        release = tx.releases.get(deployment.release_id)
        assert release is not None
        return DeploymentView(deployment, release)

    @staticmethod
    def _succeeded_before(tx: Transaction, project_id: int, environment: str, release: int) -> bool:
        found = tx.history.last_of(project_id, environment, release, ReleaseOutcome.SUCCESS)
        return found is not None

    # -- shared ------------------------------------------------------------------------

    def _read(
        self, actor: str, project: ProjectRecord, environment: str, request_id: str
    ) -> EnvironmentFile:
        try:
            return self._files.read(project, environment)
        except EnvironmentError as exc:
            self._deny(actor, project, "deployment.request", str(exc), request_id, environment)
            raise  # unreachable: _deny raises

    def _verify(
        self,
        actor: str,
        project: ProjectRecord,
        run: RunRecord,
        artifact: str,
        file: EnvironmentFile,
        request_id: str,
    ) -> VerifiedRelease:
        try:
            return self._verifier.verify(project, run, artifact, file.rules)
        except Refused as exc:
            self._deny(actor, project, "deployment.verify", str(exc), request_id, file.name)
            raise  # unreachable: _deny raises

    def _deny(
        self,
        actor: str,
        project: ProjectRecord,
        action: str,
        reason: str,
        request_id: str,
        environment: str = "",
        *,
        target: str = "",
    ) -> None:
        with self._store.transaction() as tx:
            tx.audit.append(
                actor=actor,
                action=action,
                now=self._clock.now(),
                decision="denied",
                project_id=project.id,
                target=target or f"environment:{environment}",
                reason=reason,
                request_id=request_id,
            )
        raise Forbidden(reason)

    def _queue(
        self,
        project: ProjectRecord,
        environment: str,
        verified: VerifiedRelease,
        run: RunRecord,
        *,
        kind: DeploymentKind,
        actor: str,
        job_id: int | None,
        request_id: str,
        audit_actor: str,
    ) -> DeploymentRecord:
        now = self._clock.now()
        with self._store.transaction() as tx:
            release = tx.releases.create(
                NewRelease(
                    project_id=project.id,
                    artifact=verified.artifact,
                    digest=verified.digest,
                    provenance=verified.provenance,
                    run_id=run.id,
                    job_key=verified.job_key,
                    ref=verified.ref,
                    sha=verified.sha,
                    builder=verified.builder,
                    created_by=run.actor,
                ),
                now=now,
            )
            current = tx.history.live(project.id, environment)
            deployment = tx.deployments.create(
                NewDeployment(
                    project_id=project.id,
                    environment=environment,
                    release_id=release.id,
                    kind=kind,
                    actor=actor,
                    ref=release.ref,
                    sha=release.sha,
                    run_id=run.id if job_id is not None else None,
                    job_id=job_id,
                    previous_release_id=current.release_id if current is not None else None,
                ),
                now=now,
            )
            tx.deployments.add_progress(
                deployment.id,
                f"queued: release {release.id} ({release.artifact}, {release.digest}, "
                f"{release.ref}@{release.sha[:12]}) verified, for {environment}",
                now=now,
            )
            tx.audit.append(
                actor=audit_actor,
                action=f"deployment.{kind.value}",
                now=now,
                project_id=project.id,
                target=f"deployment:{deployment.id}",
                request_id=request_id,
                data={
                    "environment": environment,
                    "release": release.id,
                    "artifact": release.artifact,
                    "digest": release.digest,
                    "provenance": release.provenance,
                    "run": run.id,
                    "ref": release.ref,
                    "sha": release.sha,
                },
            )
        return deployment
