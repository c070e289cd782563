"""Webhook deliveries from GitHub, GitLab and Gitea: verified, stored once, turned into
runs with the trust their event earns.

Order matters: the project and its secret are found from the URL, the raw body is
verified (`scm.webhooks.verify`, constant time) and only then parsed. An unverified
delivery starts nothing and leaves an audit record (never the body or a secret). A
verified one is stored under its delivery id first, so a replay or a forge's retry is
answered from the stored outcome and starts nothing new. The server then fetches the
commit itself from the project's clone URL and checks that the ref still points where the
delivery says (an old delivery replayed after a force-push starts nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, Role, RunRecord
from shipline.domain.source import DeliveryRecord, Forge
from shipline.engine.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from shipline.engine.principal import Principal
from shipline.engine.privileged import trigger_target
from shipline.engine.projects import ProjectService
from shipline.engine.service import RunService, SourceRepository
from shipline.plan.events import Event
from shipline.plan.trust import classify_pull_request, classify_push
from shipline.scm import webhooks
from shipline.scm.webhooks import ForgeEvent
from shipline.security.webhook_keys import derive_secret, new_salt
from shipline.store import ports
from shipline.store.ports import Page, Store

__all__ = ["Received", "WebhookService"]

ANONYMOUS = "webhook"


@dataclass(frozen=True, slots=True)
class Received:
    """What became of a delivery; `duplicate`: it had been received before."""

    delivery: DeliveryRecord
    duplicate: bool = False


class WebhookService:
    """Webhook secrets, deliveries and their processing."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        projects: ProjectService,
        runs: RunService,
        key: Callable[[], bytes],
    ) -> None:
        self._store = store
        self._clock = clock
        self._projects = projects
        self._runs = runs
        self._key = key

    # -- secrets -------------------------------------------------------------------------

    def rotate_secret(self, actor: Principal, name: str, *, request_id: str = "") -> str:
        """A new webhook secret for the project (maintainers and up), shown once; the
        previous one stops working."""
        project = self._projects.authorize(
            actor, name, Role.MAINTAINER, action="webhook.secret", request_id=request_id
        )
        salt = new_salt()
        now = self._clock.now()
        with self._store.transaction() as tx:
            tx.webhooks.set_salt(project.id, salt, now=now)
            tx.audit.append(
                actor=actor.user_name,
                action="webhook.secret",
                now=now,
                project_id=project.id,
                target=name,
                request_id=request_id,
            )
        return derive_secret(self._key(), salt)

    # -- receiving -----------------------------------------------------------------------

    def refuse(self, forge: Forge, name: str, reason: str, *, request_id: str = "") -> None:
        """Audit a delivery refused before verification (too large, ...)."""
        self._deny(forge, name, None, reason, request_id)

    def receive(
        self,
        forge: Forge,
        name: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        request_id: str = "",
    ) -> Received:
        """Verify, store once, then act on a delivery. `Unauthenticated` (audited) for a
        project without a secret, an unknown project or a bad signature alike.

        One read transaction finds the project, its secret and (by the delivery id the
        headers name) a delivery received before: a verified replay is answered from it
        without writing. A new delivery whose outcome needs no repository (a ping, an
        event Shipline ignores, a malformed body) is stored with its outcome in one
        write transaction."""
        delivery_id = webhooks.delivery_id(forge, headers, body)
        with self._store.transaction(write=False) as tx:
            project = tx.projects.get(name)
            salt = tx.webhooks.salt(project.id) if project is not None else None
            known = (
                tx.deliveries.find(project.id, forge, delivery_id)
                if project is not None and salt is not None
                else None
            )
        if project is None or salt is None:
            self._deny(forge, name, None, "no webhook secret for this project", request_id)
            raise Unauthenticated("no secret", "the delivery could not be verified")
        if not webhooks.verify(forge, derive_secret(self._key(), salt), headers, body):
            self._deny(forge, name, project.id, "bad signature", request_id)
            raise Unauthenticated("bad signature", "the delivery could not be verified")
        if known is not None:  # only now: the replay is verified
            return Received(known, duplicate=True)
        event = webhooks.event_name(forge, headers)
        parsed, decided = _parse(forge, event, body)
        now = self._clock.now()
        try:
            with self._store.transaction() as tx:
                delivery = tx.deliveries.create(
                    project.id, forge, delivery_id, event, body, now=now
                )
                if decided is not None:
                    delivery = tx.deliveries.set_outcome(delivery.id, *decided)
                if decided is not None and decided[0] == "ignored":
                    # e.g. a comment `/deploy prod`: nothing starts, and the trail says so
                    # (SECURITY-CASES 8)
                    tx.audit.append(
                        actor=ANONYMOUS,
                        action="webhook.receive",
                        now=now,
                        decision="denied",
                        project_id=project.id,
                        target=f"{forge}:{name}:delivery:{delivery.id}"[:200],
                        reason=decided[1][:500],
                        request_id=request_id,
                    )
        except ports.Conflict:  # the same delivery, received by another request meanwhile
            with self._store.transaction(write=False) as tx:
                stored = tx.deliveries.find(project.id, forge, delivery_id)
            assert stored is not None
            return Received(stored, duplicate=True)
        if decided is not None:
            return Received(delivery)
        return Received(self._process(project, delivery, body, parsed=parsed))

    def redeliver(
        self, actor: Principal, name: str, delivery: int, *, request_id: str = ""
    ) -> DeliveryRecord:
        """Process a stored delivery again (admins of the project): its runs start anew."""
        project = self._projects.authorize(
            actor, name, Role.ADMIN, action="webhook.redeliver", request_id=request_id
        )
        with self._store.transaction(write=False) as tx:
            record = tx.deliveries.get(delivery)
            if record is None or record.project_id != project.id:
                raise NotFound(f"no delivery {delivery}", field="delivery")
            body = tx.deliveries.body(delivery)
        with self._store.transaction() as tx:
            tx.audit.append(
                actor=actor.user_name,
                action="webhook.redeliver",
                now=self._clock.now(),
                project_id=project.id,
                target=f"delivery:{delivery}",
                request_id=request_id,
            )
        return self._process(project, record, body, redelivered=True)

    def deliveries(
        self, actor: Principal, name: str, *, limit: int, cursor: str | None
    ) -> Page[DeliveryRecord]:
        """A project's deliveries, newest first (maintainers and up)."""
        project = self._projects.authorize(actor, name, Role.MAINTAINER, action="webhook.list")
        with self._store.transaction(write=False) as tx:
            try:
                return tx.deliveries.page(project.id, limit=limit, cursor=cursor)
            except ValueError as exc:
                raise Invalid("invalid cursor", field="cursor") from exc

    def approve(
        self, actor: Principal, run_id: int, *, sha: str | None = None, request_id: str = ""
    ) -> tuple[RunRecord, str]:
        """Let a run that waits for approval start: maintainers and up, never the change's
        author (SECURITY-CASES 4). The approval holds for that run's commit only; with
        `sha`, only if the run is for that commit. Returns the run and its project's name."""
        run = self._projects.authorize_run(
            actor, run_id, Role.MAINTAINER, action="run.approve", request_id=request_id
        )
        refusal = ""
        if actor.user_name == run.actor:
            refusal = "the author of a change cannot approve its runs"
        elif sha is not None and sha != run.sha:
            refusal = f"run {run_id} is for commit {run.sha[:12]}, not {sha[:12]}"
        if refusal:
            with self._store.transaction() as tx:
                tx.audit.append(
                    actor=actor.user_name,
                    action="run.approve",
                    now=self._clock.now(),
                    decision="denied",
                    project_id=run.project_id,
                    target=f"run:{run_id}",
                    reason=refusal,
                    request_id=request_id,
                    data={"sha": run.sha},
                )
            if sha is not None and sha != run.sha and actor.user_name != run.actor:
                raise Conflict(refusal + ": review the new commit")
            raise Forbidden(refusal)
        with self._store.transaction(write=False) as tx:
            project = tx.projects.get_by_id(run.project_id)
        name = project.name if project is not None else ""
        return self._runs.approve(run_id, actor=actor.user_name), name

    # -- processing ----------------------------------------------------------------------

    def _process(
        self,
        project: ProjectRecord,
        delivery: DeliveryRecord,
        body: bytes,
        *,
        redelivered: bool = False,
        parsed: ForgeEvent | None = None,
    ) -> DeliveryRecord:
        outcome, detail = "processed", ""
        runs: list[RunRecord] = []
        try:
            event = parsed or webhooks.parse(delivery.forge, delivery.event, body)
            if event.kind == "ping":
                detail = "pong"
            else:
                outcome, detail, runs = self._act(project, event)
        except webhooks.Ignored as exc:
            outcome, detail = "ignored", str(exc)
        except webhooks.MalformedPayload as exc:
            outcome, detail = "failed", f"malformed payload: {exc}"
        except ShiplineError as exc:  # the repository could not be fetched or read
            outcome, detail = "failed", str(exc)
        with self._store.transaction() as tx:
            return tx.deliveries.set_outcome(
                delivery.id,
                outcome,
                detail[:2000],
                tuple(r.id for r in runs),
                redelivered=redelivered,
            )

    def _act(self, project: ProjectRecord, event: ForgeEvent) -> tuple[str, str, list[RunRecord]]:
        repo = self._runs.repositories(project)
        if event.kind == "push":
            if event.deleted:
                return "processed", f"{event.ref} deleted: nothing to run", []
            repo.fetch()
            stale = _moved(repo, event.ref, event.after)
            if stale:
                return "ignored", stale, []
            created = set(event.before) == {"0"}
            paths = None
            if event.ref.startswith("refs/heads/"):
                paths = repo.changed_paths(None if created else event.before, event.after)
            run_event = Event(
                name="push",
                ref=event.ref,
                sha=event.after,
                repository=project.name,
                actor=event.sender or ANONYMOUS,
                before=event.before,
                changed_paths=paths,
                payload=event.payload,
            )
            trust = classify_push().trust
            runs = self._runs.trigger_event(project, run_event, trust=trust, fetch=False)
            return "processed", f"{len(runs)} run(s), {trust}", runs
        repo.fetch([event.fetch_ref])
        stale = _moved(repo, event.fetch_ref, event.head_sha)
        if stale:
            return "ignored", stale, []
        # The forge's test merge, when it publishes one (none while the change conflicts):
        # a privileged job that opts in may check it out from the mirror.
        repo.fetch_optional(event.fetch_ref.rsplit("/", 1)[0] + "/merge")
        base_sha = event.base_sha or repo.resolve(f"refs/heads/{event.base_ref}")[1]
        merge_base = repo.merge_base(base_sha, event.head_sha)
        classification = classify_pull_request(
            from_fork=event.from_fork, author_association=event.author_association
        )
        run_event = Event(
            name="pull_request",
            ref=event.ref,
            sha=event.head_sha,
            repository=project.name,
            actor=event.sender or ANONYMOUS,
            base_ref=event.base_ref,
            head_ref=event.head_ref,
            action=event.action,
            changed_paths=repo.changed_paths(merge_base, event.head_sha),
            payload=event.payload,
        )
        hold = classification.reason if classification.needs_approval else None
        runs = self._runs.trigger_event(
            project, run_event, trust=classification.trust, fetch=False, hold=hold
        )
        outcome = "waiting" if hold is not None and runs else "processed"
        # pull_request_target: the base branch's workflows as they are now, never the
        # commit the delivery names.
        try:
            _, target_sha = repo.resolve(f"refs/heads/{event.base_ref}")
        except ShiplineError:
            target_sha = ""  # the base branch is gone: no pull_request_target
        runs += trigger_target(self._store, self._clock, self._runs, project, run_event, target_sha)
        detail = f"{len(runs)} run(s), {classification.trust}: {classification.reason}"
        return outcome, detail, runs

    def _deny(
        self, forge: Forge, name: str, project_id: int | None, reason: str, request_id: str
    ) -> None:
        with self._store.transaction() as tx:
            tx.audit.append(
                actor=ANONYMOUS,
                action="webhook.receive",
                now=self._clock.now(),
                decision="denied",
                project_id=project_id,
                target=f"{forge}:{name}"[:200],
                reason=reason,
                request_id=request_id,
            )


def _parse(
    forge: Forge, event: str, body: bytes
) -> tuple[ForgeEvent | None, tuple[str, str] | None]:
    """The verified delivery parsed, or the outcome it gets without a repository."""
    try:
        parsed = webhooks.parse(forge, event, body)
    except webhooks.Ignored as exc:
        return None, ("ignored", str(exc)[:2000])
    except webhooks.MalformedPayload as exc:
        return None, ("failed", f"malformed payload: {exc}"[:2000])
    if parsed.kind == "ping":
        return None, ("processed", "pong")
    return parsed, None


def _moved(repo: SourceRepository, ref: str, sha: str) -> str:
    """Why the delivery is stale ("" when `ref` still points at `sha`)."""
    if not repo.has_commit(sha):
        raise NotFound(f"commit {sha} is not in the project's repository")
    try:
        _, current = repo.resolve(ref)
    except ShiplineError:
        return f"{ref} is gone from the repository"
    if current != sha:
        return f"{ref} has moved on to {current[:12]}: this delivery is stale"
    return ""
