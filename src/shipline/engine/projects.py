"""Projects and who may act on them: create, list what a caller may see, delete, set
members' roles — and the access checks the API makes before it reads or changes a project's
runs.

Visibility is a rule of its own: a project the caller may not see does not exist for them,
so reading it is `NotFound` (404), never `Forbidden` (403) — the name of a private project
does not leak. A caller who may see a project but not do the action gets `Forbidden`. Every
change writes its audit record in the transaction that makes it; every denial is audited.

Project names are one path segment: `[a-z0-9][a-z0-9._-]{0,99}` (so `/projects/{project}`
needs no escaping). Names with an `owner/` part are not accepted through this service.
"""

from __future__ import annotations

import re

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, Role, RunRecord
from shipline.engine.access import AccessService
from shipline.engine.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from shipline.engine.principal import Principal, denial_reason
from shipline.engine.service import RunService, TriggerRequest
from shipline.store import ports
from shipline.store.ports import Page, Store

__all__ = ["PROJECT_NAME", "ProjectService"]

PROJECT_NAME = r"^[a-z0-9][a-z0-9._-]{0,99}$"
_PROJECT_NAME = re.compile(PROJECT_NAME)
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


class ProjectService:
    """Projects over a `Store`, with access checks from `AccessService` and run actions
    delegated to `RunService` once the caller is allowed."""

    def __init__(self, store: Store, clock: Clock, access: AccessService, runs: RunService) -> None:
        self._store = store
        self._clock = clock
        self._access = access
        self._runs = runs

    # -- access ------------------------------------------------------------------------

    def authorize(
        self, actor: Principal, name: str, role: Role, *, action: str, request_id: str = ""
    ) -> ProjectRecord:
        """The project named `name` when `actor` may do `action` there (needing `role`).

        `NotFound` when it does not exist or the actor may not even view it; `Forbidden`
        when the actor may view it but `role` is more than they have."""
        with self._store.transaction(write=False) as tx:
            project = tx.projects.get(name)
        if project is None:
            raise NotFound("no such project")
        self._check(actor, project.id, role, action=action, request_id=request_id)
        return project

    def authorize_run(
        self, actor: Principal, run_id: int, role: Role, *, action: str, request_id: str = ""
    ) -> RunRecord:
        """The run `run_id` when `actor` may do `action` on it; `NotFound` when it does not
        exist or its project is hidden from the actor, `Forbidden` when not allowed."""
        with self._store.transaction(write=False) as tx:
            run = tx.runs.get(run_id)
        if run is None:
            raise NotFound("no such run")
        self._check(actor, run.project_id, role, action=action, request_id=request_id)
        return run

    def _check(
        self, actor: Principal, project_id: int, role: Role, *, action: str, request_id: str
    ) -> None:
        try:
            self._access.require(
                actor, project_id, Role.VIEWER, action=action, request_id=request_id
            )
        except Forbidden as exc:  # audited by `require`; hidden from the caller
            raise NotFound("no such project") from exc
        if role is not Role.VIEWER:
            self._access.require(actor, project_id, role, action=action, request_id=request_id)

    # -- projects ----------------------------------------------------------------------

    def create(
        self,
        actor: Principal,
        name: str,
        repository: str,
        default_branch: str = "main",
        *,
        request_id: str = "",
    ) -> ProjectRecord:
        """A new project (admins only); `Conflict` when the name is taken."""
        self.require_admin(actor, "project.create", request_id)
        if not _PROJECT_NAME.match(name):
            raise Invalid(
                "a project name is 1-100 lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
                field="name",
            )
        if not repository.strip() or not repository.isprintable():
            raise Invalid("a repository is a local path or a git URL", field="repository")
        if not _BRANCH.match(default_branch) or default_branch.startswith(("-", "/")):
            raise Invalid("not a valid branch name", field="default_branch")
        now = self._clock.now()
        try:
            with self._store.transaction() as tx:
                project = tx.projects.create(name, repository, default_branch)
                tx.audit.append(
                    actor=actor.user_name,
                    action="project.create",
                    now=now,
                    project_id=project.id,
                    target=name,
                    request_id=request_id,
                    data={"repository": repository, "default_branch": default_branch},
                )
        except ports.Conflict as exc:
            raise Conflict(f"a project named {name!r} exists already", field="name") from exc
        return project

    def visible(self, actor: Principal, *, limit: int, cursor: str | None) -> Page[ProjectRecord]:
        """The projects `actor` may see, newest first, `limit` at a time.

        Store pages are read `limit - found` at a time, so a page of this list always ends
        where a store page ends and the store's cursor continues it exactly."""
        found: list[ProjectRecord] = []
        with self._store.transaction() as tx:
            while True:
                try:
                    page = tx.projects.page(limit=limit - len(found), cursor=cursor)
                except ValueError as exc:  # the store's InvalidCursor
                    raise Invalid("invalid cursor", field="cursor") from exc
                found.extend(
                    p
                    for p in page.items
                    if actor.is_admin or denial_reason(tx, actor, p.id, Role.VIEWER) is None
                )
                cursor = page.next_cursor
                if cursor is None or len(found) >= limit:
                    return Page(found, cursor)

    def delete(self, actor: Principal, name: str, *, request_id: str = "") -> None:
        """Delete a project with its runs, jobs and logs (needs the admin role there); its
        audit records stay."""
        project = self.authorize(
            actor, name, Role.ADMIN, action="project.delete", request_id=request_id
        )
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.projects.delete(project.id)
            tx.audit.append(
                actor=actor.user_name,
                action="project.delete",
                now=now,
                project_id=project.id,
                target=name,
                request_id=request_id,
            )

    def set_member(
        self, actor: Principal, name: str, user_name: str, role: Role, *, request_id: str = ""
    ) -> None:
        """Give `user_name` `role` in the project. Maintainers may grant up to maintainer;
        granting admin needs the admin role there."""
        needed = Role.ADMIN if role is Role.ADMIN else Role.MAINTAINER
        project = self.authorize(
            actor, name, needed, action="member.set_role", request_id=request_id
        )
        now = self._clock.now()
        with self._store.transaction() as tx:
            user = tx.users.get(user_name)
            if user is None:
                raise NotFound(f"no user named {user_name!r}", field="user")
            tx.members.set_role(project.id, user.id, role)
            tx.audit.append(
                actor=actor.user_name,
                action="member.set_role",
                now=now,
                project_id=project.id,
                target=user_name,
                request_id=request_id,
                data={"role": str(role)},
            )

    # -- runs --------------------------------------------------------------------------

    def trigger(
        self, actor: Principal, name: str, request: TriggerRequest, *, request_id: str = ""
    ) -> list[RunRecord]:
        """Start runs in the project (developer and up). A ref the repository does not have,
        or a repository that cannot be read, is `Invalid` naming `ref`."""
        project = self.authorize(
            actor, name, Role.DEVELOPER, action="run.trigger", request_id=request_id
        )
        try:
            return self._runs.trigger(project, request, actor=actor.user_name)
        except ServiceError:
            raise
        except ShiplineError as exc:  # the repository could not answer (scm.RepositoryError)
            raise Invalid(str(exc), field="ref") from exc

    def cancel(self, actor: Principal, run_id: int, *, request_id: str = "") -> RunRecord:
        """Cancel a run (developer and up); cancelling a completed run changes nothing."""
        self.authorize_run(
            actor, run_id, Role.DEVELOPER, action="run.cancel", request_id=request_id
        )
        return self._runs.cancel(run_id, actor=actor.user_name)

    def rerun(
        self, actor: Principal, run_id: int, *, failed_only: bool, request_id: str = ""
    ) -> RunRecord:
        """A new attempt of a completed run (developer and up), all jobs or the failed ones
        and their dependents."""
        self.authorize_run(actor, run_id, Role.DEVELOPER, action="run.rerun", request_id=request_id)
        return self._runs.rerun(run_id, actor=actor.user_name, failed_only=failed_only)

    # -- helpers -----------------------------------------------------------------------

    def require_admin(self, actor: Principal, action: str, request_id: str = "") -> None:
        """Let only admins through; anyone else is `Forbidden` and the denial audited."""
        if actor.is_admin:
            return
        with self._store.transaction() as tx:
            tx.audit.append(
                actor=actor.user_name,
                action=action,
                now=self._clock.now(),
                decision="denied",
                reason="not an admin",
                request_id=request_id,
            )
        raise Forbidden("only an admin may do this")
