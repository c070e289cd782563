"""Registered remote runners: registration tokens, registration, credentials, and the
admin's view (list, pause, resume, remove).

An admin creates a registration token (`shp_g_...`-style kind `runner-registration`, valid
until it expires or is revoked); `shipline runner register` exchanges it for a runner
credential (kind `runner`) bound to a new runner record. Removing a runner revokes its
credential in the same transaction, so the runner is refused from its next request on.
Every change writes its audit record in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipline.domain.clock import Clock
from shipline.domain.records import TokenKind, TokenRecord
from shipline.domain.runners import AssignmentRecord, AssignmentState, RunnerRecord
from shipline.engine.access import AccessService
from shipline.engine.errors import Forbidden, Invalid, NotFound, Unauthenticated
from shipline.engine.principal import Principal
from shipline.security.tokens import new_token
from shipline.store.ports import Store, Transaction

# A runner is shown online when it asked for work or renewed a lease this recently.
ONLINE_WINDOW = timedelta(seconds=60)
# `last_seen_at` is written at most this often per runner (a poll is not a write).
SEEN_INTERVAL = timedelta(seconds=5)
DEFAULT_REGISTRATION_TTL = timedelta(days=1)
MAX_REGISTRATION_TTL = timedelta(days=365)
DEFAULT_LABELS = ("self-hosted", "linux", "x64")


@dataclass(frozen=True, slots=True)
class RunnerView:
    """A runner as the admin sees it: online or not, and the jobs it holds now."""

    runner: RunnerRecord
    online: bool
    jobs: tuple[AssignmentRecord, ...]


class RunnerService:
    """Runner registration, credentials and administration over a `Store`."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        access: AccessService,
        *,
        online_window: timedelta = ONLINE_WINDOW,
    ) -> None:
        self.store = store
        self.clock = clock
        self.access = access
        self.online_window = online_window

    # -- registration ----------------------------------------------------------------

    def create_registration_token(
        self, actor: Principal, name: str, expires_in: timedelta | None = None
    ) -> tuple[str, TokenRecord]:
        """A registration token (admins only): `(plaintext, record)`, shown once."""
        self._require_admin(actor, "runner.registration_token")
        ttl = expires_in if expires_in is not None else DEFAULT_REGISTRATION_TTL
        if not timedelta(0) < ttl <= MAX_REGISTRATION_TTL:
            raise Invalid("expiry must be in the future and within a year", field="expires_in")
        now = self.clock.now()
        plaintext, digest = new_token(TokenKind.RUNNER_REGISTRATION)
        with self.store.transaction() as tx:
            record = tx.tokens.create(
                TokenKind.RUNNER_REGISTRATION, name, digest, now=now, expires_at=now + ttl
            )
            tx.audit.append(
                actor=actor.user_name,
                action="runner.registration_token",
                now=now,
                target=f"token:{record.id}",
                data={"name": name, "expires_at": (now + ttl).isoformat()},
            )
        return plaintext, record

    def register(
        self, registration: str | None, name: str, labels: list[str], version: str, slots: int
    ) -> tuple[RunnerRecord, str]:
        """A new runner for a valid registration token: `(record, credential plaintext)`."""
        principal = self.access.authenticate(
            registration, allowed=frozenset({TokenKind.RUNNER_REGISTRATION})
        )
        now = self.clock.now()
        plaintext, digest = new_token(TokenKind.RUNNER)
        labels = _labels(labels) or list(DEFAULT_LABELS)
        with self.store.transaction() as tx:
            token = tx.tokens.create(TokenKind.RUNNER, f"runner {name}"[:255], digest, now=now)
            runner = tx.runners.create(name, labels, version, slots, token.id, now=now)
            tx.audit.append(
                actor=principal.user_name,
                action="runner.register",
                now=now,
                target=f"runner:{runner.id}",
                data={"name": name, "labels": labels, "version": version},
            )
        return runner, plaintext

    def authenticate(self, credential: str | None) -> RunnerRecord:
        """The runner a credential stands for; `Unauthenticated` when it is not a valid
        runner credential or the runner was removed."""
        # The credential's token and its runner are read in one statement.
        _, found = self.access.authenticate_token(credential, allowed=frozenset({TokenKind.RUNNER}))
        runner = found.runner
        if runner is None or runner.removed_at is not None:
            raise Unauthenticated("runner removed")
        return runner

    def seen(
        self, runner: RunnerRecord, *, version: str | None = None, slots: int | None = None
    ) -> RunnerRecord:
        """Note that the runner is alive (and what it now says of itself)."""
        now = self.clock.now()
        changed = (version is not None and version != runner.version) or (
            slots is not None and slots != runner.slots
        )
        last = runner.last_seen_at
        if not changed and last is not None and now - last < SEEN_INTERVAL:
            return runner
        with self.store.transaction() as tx:
            return tx.runners.update(runner.id, version=version, slots=slots, last_seen_at=now)

    def labels_for(self, runner: RunnerRecord, asked: list[str] | None) -> frozenset[str]:
        """The labels the runner claims jobs with now: those it asked for, which must be
        among its registered labels (a runner cannot widen the pool it was admitted to;
        SECURITY-CASES 25), or all of them."""
        if asked is None:
            return frozenset(runner.labels)
        extra = [label for label in _labels(asked) if label not in runner.labels]
        if extra:
            raise Forbidden(
                f"labels {', '.join(extra)} are not among this runner's registered labels "
                f"({', '.join(runner.labels)}); register it again with them",
                field="labels",
            )
        return frozenset(asked)

    # -- administration --------------------------------------------------------------

    def list_runners(self, actor: Principal) -> list[RunnerView]:
        """Every runner not removed, oldest first (admins only)."""
        self._require_admin(actor, "runner.list")
        with self.store.transaction(write=False) as tx:
            runners = tx.runners.all()
            running = tx.runners.assignments(state=AssignmentState.RUNNING)
        return [self._view(r, running) for r in runners]

    def get(self, actor: Principal, runner_id: int) -> RunnerView:
        self._require_admin(actor, "runner.read")
        with self.store.transaction(write=False) as tx:
            runner = self._get(tx, runner_id)
            running = tx.runners.assignments(runner_id=runner_id, state=AssignmentState.RUNNING)
        return self._view(runner, running)

    def set_paused(self, actor: Principal, runner_id: int, paused: bool) -> RunnerView:
        """A paused runner gets no new jobs; the ones it holds run to the end."""
        action = "runner.pause" if paused else "runner.resume"
        self._require_admin(actor, action)
        now = self.clock.now()
        with self.store.transaction() as tx:
            self._get(tx, runner_id)
            tx.runners.update(runner_id, paused=paused)
            tx.audit.append(
                actor=actor.user_name, action=action, now=now, target=f"runner:{runner_id}"
            )
        return self.get(actor, runner_id)

    def remove(self, actor: Principal, runner_id: int) -> None:
        """Remove a runner: its credential is revoked at once (its jobs' leases then run
        out and they are retried elsewhere)."""
        self._require_admin(actor, "runner.remove")
        now = self.clock.now()
        with self.store.transaction() as tx:
            runner = self._get(tx, runner_id)
            if runner.token_id is not None:
                tx.tokens.revoke(runner.token_id, now=now)
            tx.runners.update(runner_id, removed_at=now, paused=True)
            tx.audit.append(
                actor=actor.user_name,
                action="runner.remove",
                now=now,
                target=f"runner:{runner_id}",
                data={"name": runner.name},
            )

    # -- helpers -----------------------------------------------------------------------

    def online(self, runner: RunnerRecord, now: datetime | None = None) -> bool:
        last = runner.last_seen_at
        moment = now if now is not None else self.clock.now()
        return last is not None and moment - last <= self.online_window

    def _view(self, runner: RunnerRecord, running: list[AssignmentRecord]) -> RunnerView:
        mine = tuple(a for a in running if a.runner_id == runner.id)
        return RunnerView(runner, self.online(runner), mine)

    @staticmethod
    def _get(tx: Transaction, runner_id: int) -> RunnerRecord:
        runner = tx.runners.get(runner_id)
        if runner is None or runner.removed_at is not None:
            raise NotFound("no such runner")
        return runner

    def _require_admin(self, actor: Principal, action: str) -> None:
        if actor.is_admin:
            return
        with self.store.transaction() as tx:
            tx.audit.append(
                actor=actor.user_name,
                action=action,
                now=self.clock.now(),
                decision="denied",
                reason="not an admin",
            )
        raise Forbidden("only an admin may manage runners")


def _labels(labels: list[str] | None) -> list[str]:
    """Labels without duplicates, in the order given."""
    return list(dict.fromkeys(labels or []))
