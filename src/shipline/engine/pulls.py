"""Pull requests of hosted repositories: a request to merge branch `head` into `base`,
whose life raises `pull_request` events in GitHub's shape — `opened` when it is opened,
`synchronize` when its head branch is pushed to, `closed` when it is closed (or its head
branch deleted). Their runs are trusted: the head branch lives in the same repository,
where only developers and up may push (`plan.trust`).
"""

from __future__ import annotations

from collections.abc import Sequence

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, Role, RunRecord
from shipline.domain.source import HOSTED, PullRequestRecord, PullState
from shipline.engine.errors import Conflict, Invalid, NotFound
from shipline.engine.principal import Principal
from shipline.engine.projects import ProjectService
from shipline.engine.service import RunService
from shipline.plan.events import Event
from shipline.plan.protection import RefUpdate
from shipline.plan.trust import classify_pull_request
from shipline.store import ports
from shipline.store.ports import Page, Store

__all__ = ["PullRequestService"]


class PullRequestService:
    """Open, list and close hosted pull requests; follow pushes to their head branches."""

    def __init__(
        self, store: Store, clock: Clock, projects: ProjectService, runs: RunService
    ) -> None:
        self._store = store
        self._clock = clock
        self._projects = projects
        self._runs = runs

    def open(
        self,
        actor: Principal,
        name: str,
        head: str,
        base: str | None,
        title: str | None,
        body: str = "",
        *,
        request_id: str = "",
    ) -> tuple[PullRequestRecord, list[RunRecord]]:
        """Open a pull request (developers and up) and start its `opened` runs."""
        project = self._projects.authorize(
            actor, name, Role.DEVELOPER, action="pull.open", request_id=request_id
        )
        if project.repository != HOSTED:
            raise Invalid("pull requests are for hosted repositories", field="head")
        base = base or project.default_branch
        if head == base:
            raise Invalid("head and base are the same branch", field="head")
        repo = self._runs.repositories(project)
        try:
            repo.fetch()
            _, head_sha = repo.resolve(f"refs/heads/{head}")
        except ShiplineError as exc:
            raise Invalid(f"no branch {head!r} in the repository", field="head") from exc
        try:
            _, base_sha = repo.resolve(f"refs/heads/{base}")
        except ShiplineError as exc:
            raise Invalid(f"no branch {base!r} in the repository", field="base") from exc
        now = self._clock.now()
        with self._store.transaction() as tx:
            if any(p.base == base for p in tx.pulls.open_for_head(project.id, head)):
                raise Conflict(f"a pull request from {head} into {base} is open already")
            try:
                pull = tx.pulls.create(
                    project.id,
                    title=title or head,
                    body=body,
                    author=actor.user_name,
                    head=head,
                    base=base,
                    head_sha=head_sha,
                    base_sha=base_sha,
                    now=now,
                )
            except ports.Conflict as exc:
                raise Conflict("another pull request was opened at the same moment") from exc
            tx.audit.append(
                actor=actor.user_name,
                action="pull.open",
                now=now,
                project_id=project.id,
                target=f"pull:{pull.number}",
                request_id=request_id,
                data={"head": head, "base": base, "head_sha": head_sha},
            )
        return pull, self._raise(project, pull, "opened", actor.user_name)

    def page(
        self, actor: Principal, name: str, *, limit: int, cursor: str | None
    ) -> Page[PullRequestRecord]:
        project = self._projects.authorize(actor, name, Role.VIEWER, action="pull.list")
        with self._store.transaction(write=False) as tx:
            try:
                return tx.pulls.page(project.id, limit=limit, cursor=cursor)
            except ValueError as exc:
                raise Invalid("invalid cursor", field="cursor") from exc

    def get(self, actor: Principal, name: str, number: int) -> PullRequestRecord:
        project = self._projects.authorize(actor, name, Role.VIEWER, action="pull.read")
        with self._store.transaction(write=False) as tx:
            pull = tx.pulls.get(project.id, number)
        if pull is None:
            raise NotFound(f"no pull request #{number}")
        return pull

    def close(
        self, actor: Principal, name: str, number: int, *, request_id: str = ""
    ) -> tuple[PullRequestRecord, list[RunRecord]]:
        """Close a pull request (developers and up) and start its `closed` runs."""
        project = self._projects.authorize(
            actor, name, Role.DEVELOPER, action="pull.close", request_id=request_id
        )
        now = self._clock.now()
        with self._store.transaction() as tx:
            pull = tx.pulls.get(project.id, number)
            if pull is None:
                raise NotFound(f"no pull request #{number}")
            if pull.state is PullState.CLOSED:
                return pull, []
            pull = tx.pulls.update(pull.id, now=now, state=PullState.CLOSED)
            tx.audit.append(
                actor=actor.user_name,
                action="pull.close",
                now=now,
                project_id=project.id,
                target=f"pull:{number}",
                request_id=request_id,
            )
        return pull, self._raise(project, pull, "closed", actor.user_name)

    def pushed(self, project: ProjectRecord, actor: str, updates: Sequence[RefUpdate]) -> None:
        """A push moved branches: the open pull requests whose head moved synchronize,
        those whose head branch was deleted close."""
        now = self._clock.now()
        for update in updates:
            if update.kind != "branch":
                continue
            with self._store.transaction() as tx:
                pulls = tx.pulls.open_for_head(project.id, update.name)
                changed = [
                    tx.pulls.update(
                        p.id,
                        now=now,
                        head_sha=None if update.deleted else update.new,
                        state=PullState.CLOSED if update.deleted else None,
                    )
                    for p in pulls
                ]
            for pull in changed:
                action = "closed" if update.deleted else "synchronize"
                self._raise(project, pull, action, actor, before=update.old)

    def _raise(
        self,
        project: ProjectRecord,
        pull: PullRequestRecord,
        action: str,
        actor: str,
        *,
        before: str | None = None,
    ) -> list[RunRecord]:
        repo = self._runs.repositories(project)
        repo.fetch()
        if not repo.has_commit(pull.head_sha):
            return []  # a closed pull request whose head branch is gone
        try:
            _, base_sha = repo.resolve(f"refs/heads/{pull.base}")
        except ShiplineError:
            base_sha = pull.base_sha
        merge_base = repo.merge_base(base_sha, pull.head_sha)
        event = Event(
            name="pull_request",
            ref=f"refs/pull/{pull.number}/head",
            sha=pull.head_sha,
            repository=project.name,
            actor=actor,
            before=before,
            base_ref=pull.base,
            head_ref=pull.head,
            action=action,
            changed_paths=repo.changed_paths(merge_base, pull.head_sha),
            payload=pull_payload(project, pull, action, actor, base_sha, before),
        )
        trust = classify_pull_request(from_fork=False, author_association="MEMBER").trust
        return self._runs.trigger_event(project, event, trust=trust, fetch=False)


def pull_payload(
    project: ProjectRecord,
    pull: PullRequestRecord,
    action: str,
    actor: str,
    base_sha: str,
    before: str | None,
) -> dict[str, object]:
    """`github.event` of a hosted pull request, in GitHub's shape."""
    repository = {
        "name": project.name,
        "full_name": project.name,
        "default_branch": project.default_branch,
    }
    payload: dict[str, object] = {
        "action": action,
        "number": pull.number,
        "pull_request": {
            "number": pull.number,
            "title": pull.title,
            "body": pull.body,
            "state": str(pull.state),
            "user": {"login": pull.author},
            "author_association": "MEMBER",
            "head": {"ref": pull.head, "sha": pull.head_sha, "repo": repository},
            "base": {"ref": pull.base, "sha": base_sha, "repo": repository},
            "merged": False,
        },
        "repository": repository,
        "sender": {"login": actor},
    }
    if before is not None:
        payload["before"] = before
        payload["after"] = pull.head_sha
    return payload
