"""Pull requests of hosted repositories: a request to merge branch `head` into `base`,
whose life raises `pull_request` events in GitHub's shape — `opened` when it is opened,
`synchronize` when its head branch is pushed to, `closed` when it is closed (or its head
branch deleted), `reopened` when it is opened again. Their runs are trusted: the head
branch lives in the same repository, where only developers and up may push
(`plan.trust`). Each event also raises `pull_request_target` at the base branch
(`engine.privileged`).

The hosted repository keeps `refs/pull/<n>/head` (the head commit) and
`refs/pull/<n>/merge` (a test merge of head into base, recomputed when either branch
moves; absent while they conflict, and the event's `pull_request.mergeable` is false).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, Role, RunRecord
from shipline.domain.source import HOSTED, PullRequestRecord, PullState
from shipline.engine.errors import Conflict, Invalid, NotFound
from shipline.engine.principal import Principal
from shipline.engine.privileged import trigger_target
from shipline.engine.projects import ProjectService
from shipline.engine.service import RunService
from shipline.plan.events import Event
from shipline.plan.protection import RefUpdate
from shipline.plan.trust import classify_pull_request
from shipline.store import ports
from shipline.store.ports import Page, Store

__all__ = ["PullRefWriter", "PullRequestService"]


class PullRefWriter(Protocol):
    """Writes `refs/pull/<n>/head` and `refs/pull/<n>/merge` in a hosted repository
    (`scm.hosted.PullRefs`)."""

    def write_pull_refs(
        self, project_id: int, number: int, head_sha: str, base_sha: str
    ) -> str | None:
        """The test merge commit's sha; None when head and base conflict."""
        ...


class PullRequestService:
    """Open, list, close and reopen hosted pull requests; follow pushes to their head and
    base branches. `refs`: where the pull refs are written (None: not written)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        projects: ProjectService,
        runs: RunService,
        refs: PullRefWriter | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._projects = projects
        self._runs = runs
        self._refs = refs

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

    def reopen(
        self, actor: Principal, name: str, number: int, *, request_id: str = ""
    ) -> tuple[PullRequestRecord, list[RunRecord]]:
        """Reopen a closed pull request (developers and up) at its head branch's current
        commit and start its `reopened` runs. `Conflict` when its head branch is gone or
        another pull request from the same head into the same base is open."""
        project = self._projects.authorize(
            actor, name, Role.DEVELOPER, action="pull.reopen", request_id=request_id
        )
        with self._store.transaction(write=False) as tx:
            found = tx.pulls.get(project.id, number)
        if found is None:
            raise NotFound(f"no pull request #{number}")
        if found.state is PullState.OPEN:
            return found, []
        repo = self._runs.repositories(project)
        try:
            repo.fetch()
            _, head_sha = repo.resolve(f"refs/heads/{found.head}")
        except ShiplineError as exc:
            raise Conflict(f"branch {found.head!r} is gone: push it again first") from exc
        now = self._clock.now()
        with self._store.transaction() as tx:
            pull = tx.pulls.get(project.id, number)
            if pull is None:
                raise NotFound(f"no pull request #{number}")
            if pull.state is PullState.OPEN:
                return pull, []
            if any(p.base == pull.base for p in tx.pulls.open_for_head(project.id, pull.head)):
                raise Conflict(f"a pull request from {pull.head} into {pull.base} is open already")
            pull = tx.pulls.update(pull.id, now=now, head_sha=head_sha, state=PullState.OPEN)
            tx.audit.append(
                actor=actor.user_name,
                action="pull.reopen",
                now=now,
                project_id=project.id,
                target=f"pull:{number}",
                request_id=request_id,
                data={"head_sha": head_sha},
            )
        return pull, self._raise(project, pull, "reopened", actor.user_name)

    def pushed(
        self,
        project: ProjectRecord,
        actor: str,
        updates: Sequence[RefUpdate],
        start_workflows: bool = True,
    ) -> None:
        """A push moved branches: the open pull requests whose head moved synchronize,
        those whose head branch was deleted close (`start_workflows` False, a push with a
        job token: their refs follow, no workflow starts)."""
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
                if start_workflows:
                    self._raise(project, pull, action, actor, before=update.old)
                else:
                    self._write_refs(project, pull)
            if not update.deleted:
                for pull in self._open_into(project, update.name):
                    self._write_refs(project, pull)  # the base moved: a new test merge

    def _open_into(self, project: ProjectRecord, base: str) -> list[PullRequestRecord]:
        found: list[PullRequestRecord] = []
        cursor: str | None = None
        with self._store.transaction(write=False) as tx:
            while True:
                page = tx.pulls.page(project.id, limit=100, cursor=cursor)
                found.extend(p for p in page.items if p.base == base and p.state is PullState.OPEN)
                if page.next_cursor is None:
                    return found
                cursor = page.next_cursor

    def _write_refs(self, project: ProjectRecord, pull: PullRequestRecord) -> str | None:
        """(Re)write the pull refs; the test merge's sha (None: conflict or no writer)."""
        if self._refs is None or pull.state is not PullState.OPEN:
            return None
        repo = self._runs.repositories(project)
        try:
            _, base_sha = repo.resolve(f"refs/heads/{pull.base}")
        except ShiplineError:
            return None
        return self._refs.write_pull_refs(project.id, pull.number, pull.head_sha, base_sha)

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
        merge_sha = self._write_refs(project, pull)
        if self._refs is not None:
            repo.fetch([f"refs/pull/{pull.number}/head"])
            repo.fetch_optional(f"refs/pull/{pull.number}/merge")
        merge_base = repo.merge_base(base_sha, pull.head_sha)
        payload = pull_payload(project, pull, action, actor, base_sha, before)
        details = payload["pull_request"]
        assert isinstance(details, dict)
        details["merge_commit_sha"] = merge_sha
        details["mergeable"] = merge_sha is not None if pull.state is PullState.OPEN else None
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
            payload=payload,
        )
        trust = classify_pull_request(from_fork=False, author_association="MEMBER").trust
        runs = self._runs.trigger_event(project, event, trust=trust, fetch=False)
        return runs + trigger_target(self._store, self._clock, self._runs, project, event, base_sha)


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
