"""Code reaching the server by `git push` to a hosted repository: who may push where
(branch and tag protection), and what a push starts (one event per ref change).

The hosted repository itself is served by `server.git_http` through `git http-backend`;
this service is what it asks: the protection rules resolved for a pusher (enforced by the
pre-receive hook before any ref moves) and, when the push is over, the ref updates that
happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, Role, RunRecord
from shipline.domain.source import HOSTED, ProtectionRule, RefKind
from shipline.engine.errors import Invalid, NotFound
from shipline.engine.principal import Principal
from shipline.engine.projects import ProjectService
from shipline.engine.service import RunService
from shipline.plan.events import Event
from shipline.plan.protection import Grant, RefUpdate
from shipline.plan.trust import classify_push
from shipline.spec.filters import validate_pattern
from shipline.store import ports
from shipline.store.ports import PollState, Store

__all__ = ["MAX_POLL", "MIN_POLL", "PushListener", "SourceService"]

MIN_POLL, MAX_POLL = 10, 86_400  # seconds between two polls of a remote

# Called after a push's own runs started, with the project, the pusher, the updates and
# whether the push may start workflows (hosted pull requests listen: a push to a head
# branch is a `synchronize`).
PushListener = Callable[[ProjectRecord, str, Sequence[RefUpdate], bool], None]


class SourceService:
    """Protection rules and pushes of hosted repositories."""

    def __init__(
        self, store: Store, clock: Clock, projects: ProjectService, runs: RunService
    ) -> None:
        self._store = store
        self._clock = clock
        self._projects = projects
        self._runs = runs
        self.push_listeners: list[PushListener] = []

    # -- access to the repository --------------------------------------------------------

    def authorize_git(
        self, actor: Principal, name: str, *, push: bool, request_id: str = ""
    ) -> ProjectRecord:
        """The hosted project `name` when `actor` may fetch from it (viewer) or push to it
        (developer); `NotFound` for a project that is hidden or not hosted."""
        role = Role.DEVELOPER if push else Role.VIEWER
        action = "git.push" if push else "git.fetch"
        project = self._projects.authorize(actor, name, role, action=action, request_id=request_id)
        if project.repository != HOSTED:
            raise NotFound(f"the repository of project {name!r} is not hosted by Shipline")
        return project

    def grants(self, project: ProjectRecord, actor: Principal) -> list[Grant]:
        """The project's protection rules as they apply to `actor`."""
        with self._store.transaction(write=False) as tx:
            rules = tx.protections.for_project(project.id)
            role = None
            if actor.user_id is not None:
                role = tx.members.role(project.id, actor.user_id)
        return [
            Grant(
                kind=str(rule.kind),
                pattern=rule.pattern,
                push_role=str(rule.push_role),
                may_push=actor.is_admin or (role is not None and role.allows(rule.push_role)),
                allow_force_push=rule.allow_force_push,
                allow_deletion=rule.allow_deletion,
            )
            for rule in rules
        ]

    # -- protection rules ------------------------------------------------------------------

    def protections(self, actor: Principal, name: str) -> list[ProtectionRule]:
        """A project's protection rules (viewers may read them)."""
        project = self._projects.authorize(actor, name, Role.VIEWER, action="protection.list")
        with self._store.transaction(write=False) as tx:
            return tx.protections.for_project(project.id)

    def protect(
        self,
        actor: Principal,
        name: str,
        kind: RefKind,
        pattern: str,
        *,
        push_role: Role,
        allow_force_push: bool = False,
        allow_deletion: bool = False,
        request_id: str = "",
    ) -> ProtectionRule:
        """Create or change the rule for (kind, pattern) (maintainers and up)."""
        project = self._projects.authorize(
            actor, name, Role.MAINTAINER, action="protection.set", request_id=request_id
        )
        errors = validate_pattern(pattern, kind="ref") if pattern else []
        if not pattern or pattern.startswith("!") or errors or len(pattern) > 255:
            detail = errors[0].message if errors else "a non-empty pattern without a leading !"
            raise Invalid(f"invalid {kind} pattern {pattern!r}: {detail}", field="pattern")
        now = self._clock.now()
        with self._store.transaction() as tx:
            rule = tx.protections.put(
                project.id,
                kind,
                pattern,
                push_role=push_role,
                allow_force_push=allow_force_push,
                allow_deletion=allow_deletion,
                now=now,
            )
            tx.audit.append(
                actor=actor.user_name,
                action="protection.set",
                now=now,
                project_id=project.id,
                target=f"{kind}:{pattern}",
                request_id=request_id,
                data={
                    "push_role": str(push_role),
                    "allow_force_push": allow_force_push,
                    "allow_deletion": allow_deletion,
                },
            )
        return rule

    def unprotect(self, actor: Principal, name: str, rule_id: int, *, request_id: str = "") -> None:
        """Delete a protection rule (maintainers and up)."""
        project = self._projects.authorize(
            actor, name, Role.MAINTAINER, action="protection.delete", request_id=request_id
        )
        now = self._clock.now()
        try:
            with self._store.transaction() as tx:
                tx.protections.delete(project.id, rule_id)
                tx.audit.append(
                    actor=actor.user_name,
                    action="protection.delete",
                    now=now,
                    project_id=project.id,
                    target=f"rule:{rule_id}",
                    request_id=request_id,
                )
        except ports.NotFound as exc:
            raise NotFound(f"no protection rule {rule_id}", field="rule") from exc

    # -- pushes --------------------------------------------------------------------------

    # -- polling -------------------------------------------------------------------------

    def polling(self, actor: Principal, name: str) -> PollState | None:
        """How the project is polled (None: it is not); viewers may read it."""
        project = self._projects.authorize(actor, name, Role.VIEWER, action="polling.read")
        with self._store.transaction(write=False) as tx:
            return tx.polls.get(project.id)

    def set_polling(
        self, actor: Principal, name: str, interval: int | None, *, request_id: str = ""
    ) -> PollState | None:
        """Poll the project's remote every `interval` seconds (None: stop), maintainers and
        up. Starting to poll fetches once and records the refs: pushes after that raise
        events at the next poll."""
        project = self._projects.authorize(
            actor, name, Role.MAINTAINER, action="polling.set", request_id=request_id
        )
        if project.repository == HOSTED and interval is not None:
            raise Invalid(
                "a hosted repository raises its events on push: it is not polled",
                field="interval",
            )
        if interval is not None and not MIN_POLL <= interval <= MAX_POLL:
            raise Invalid(
                f"the poll interval is {MIN_POLL} to {MAX_POLL} seconds, not {interval}",
                field="interval",
            )
        baseline: dict[str, str] | None = None
        with self._store.transaction(write=False) as tx:
            before = tx.polls.get(project.id)
        if interval is not None and (before is None or before.refs is None):
            repo = self._runs.repositories(project)
            try:
                repo.fetch()
            except ShiplineError as exc:
                raise Invalid(f"the remote cannot be fetched: {exc}", field="interval") from exc
            baseline = repo.branches_and_tags()
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.polls.set_interval(project.id, interval)
            if baseline is not None:
                state = tx.polls.get(project.id)
                assert state is not None
                tx.polls.save(project.id, baseline, generation=state.generation, now=now)
            tx.audit.append(
                actor=actor.user_name,
                action="polling.set",
                now=now,
                project_id=project.id,
                target=name,
                request_id=request_id,
                data={"interval": interval},
            )
            return tx.polls.get(project.id)

    # -- pushes --------------------------------------------------------------------------

    def pushed(
        self,
        project: ProjectRecord,
        actor: str,
        updates: Sequence[RefUpdate],
        *,
        action: str = "git.push",
        fetch: bool = True,
        start_workflows: bool = True,
    ) -> list[RunRecord]:
        """A push was accepted (or a poll found refs moved, `action` "source.poll"): record
        an event per ref change and start the workflows whose `on: push` filters match
        each created or updated branch or tag. Pushes are trusted: only developers and up
        may push, and a polled remote's refs move only by its writers (`plan.trust`).

        `start_workflows` False (a push made with a job token, as GitHub's rule for
        `GITHUB_TOKEN`, so a workflow cannot start itself in a loop): the push is recorded
        and starts nothing, not even a pull request's `synchronize`."""
        repo = self._runs.repositories(project)
        if fetch:
            repo.fetch()
        trust = classify_push().trust
        now = self._clock.now()
        runs: list[RunRecord] = []
        for update in updates:
            if update.kind is None:
                continue
            paths = None
            if not update.deleted and update.kind == "branch":
                try:
                    paths = repo.changed_paths(None if update.created else update.old, update.new)
                except ShiplineError:  # the old commit is gone (a forced update): unknown
                    paths = None
            with self._store.transaction() as tx:
                tx.audit.append(
                    actor=actor,
                    action=action,
                    now=now,
                    project_id=project.id,
                    target=update.ref,
                    data={
                        "change": update.change,
                        "kind": update.kind,
                        "before": update.old,
                        "after": update.new,
                        "trust": str(trust),
                        **({} if start_workflows else {"workflows": "not started: job token"}),
                    },
                )
                tx.events.publish(
                    "source.push",
                    now=now,
                    data={
                        "project": project.name,
                        "ref": update.ref,
                        "change": update.change,
                        "before": update.old,
                        "after": update.new,
                        "changed_paths": list(paths or ())[:1000],
                    },
                )
            if update.deleted or not start_workflows:
                continue  # as on GitHub: a deleted ref has no commit to run workflows at
            event = Event(
                name="push",
                ref=update.ref,
                sha=update.new,
                repository=project.name,
                actor=actor,
                before=update.old,
                changed_paths=paths,
                payload=push_payload(project, actor, update),
            )
            runs.extend(self._runs.trigger_event(project, event, trust=trust, fetch=False))
        for listener in self.push_listeners:
            listener(project, actor, updates, start_workflows)
        return runs


def push_payload(project: ProjectRecord, actor: str, update: RefUpdate) -> dict[str, object]:
    """`github.event` of a push, in GitHub's shape (the fields Shipline knows)."""
    return {
        "ref": update.ref,
        "before": update.old,
        "after": update.new,
        "created": update.created,
        "deleted": update.deleted,
        "base_ref": None,
        "head_commit": {"id": update.new},
        "repository": {
            "name": project.name,
            "full_name": project.name,
            "default_branch": project.default_branch,
        },
        "pusher": {"name": actor},
        "sender": {"login": actor},
    }
