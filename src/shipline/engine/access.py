"""Who is calling and what they may do: users, API tokens, logins and roles per project.

`AccessService` turns a bearer token into a `Principal` (`authenticate`, 401 otherwise) and
decides whether that principal may act on a project (`require`, 403 otherwise, every
denial audited). It also manages users, their API tokens and login sessions, and the
per-job tokens runners use: a job token acts on its own job only and dies with it
(SECURITY-CASES 20, 21). Each token kind is accepted only where the endpoint says so
(case 23). Every state change writes its audit record in the same transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from shipline.domain.clock import Clock
from shipline.domain.records import Role, TokenKind, TokenRecord, UserRecord
from shipline.engine import job_tokens
from shipline.engine.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from shipline.engine.principal import (
    JOB_ACTION_SCOPES,
    Principal,
    check_password,
    check_user_name,
    denial_reason,
    job_project,
    job_scope_denial,
    principal_for,
    run_over,
    utc,
)
from shipline.security.passwords import hash_password, needs_rehash, verify_password
from shipline.security.throttle import LoginThrottle
from shipline.security.tokens import hash_secret, matches, new_token, parse_kind
from shipline.store import ports
from shipline.store.ports import Store, Transaction

__all__ = ["AccessService", "Principal"]

USER_TOKENS = frozenset({TokenKind.USER})
ADMIN_NAME = "admin"
SYSTEM_ACTOR = job_tokens.SYSTEM_ACTOR
DEFAULT_SESSION_TTL = timedelta(hours=12)
# `last_used_at` is written at most this often per token, to spare a write per request.
TOUCH_INTERVAL = timedelta(minutes=1)
MAX_TOKEN_NAME = 100


class AccessService:
    """Authentication, authorisation, users and tokens over a `Store`."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        throttle: LoginThrottle | None = None,
        session_ttl: timedelta = DEFAULT_SESSION_TTL,
    ) -> None:
        self._store = store
        self._clock = clock
        self._throttle = throttle if throttle is not None else LoginThrottle(clock)
        self._session_ttl = session_ttl
        # Checked when the user is unknown or has no password, so that a wrong name costs
        # the same time as a wrong password. Made at the first login, not here.
        self._dummy_hash: str | None = None

    # -- first start -----------------------------------------------------------------

    def bootstrap_admin(self, token: str | None) -> str | None:
        """On first start (no users yet) create the `admin` user and an admin API token.

        `token` is `SHIPLINE_ADMIN_TOKEN` when set (it must be a well-formed user token,
        `shp_u_...`); otherwise one is generated. Returns the token's plaintext, to be
        shown once (a caller that passed `token` knows it already and should not print
        it), or None when users exist: later starts change nothing.
        """
        if token is not None and parse_kind(token) is not TokenKind.USER:
            raise Invalid(
                "SHIPLINE_ADMIN_TOKEN is not a Shipline user token (shp_u_ and 43 base64url "
                "characters); create one with a fresh server or leave it unset",
                field="SHIPLINE_ADMIN_TOKEN",
            )
        plaintext, digest = new_token(TokenKind.USER)
        if token is not None:
            plaintext, digest = token, hash_secret(token)
        now = self._clock.now()
        try:
            with self._store.transaction() as tx:
                if tx.users.count() > 0:
                    return None
                user = tx.users.create(ADMIN_NAME, is_admin=True, now=now)
                record = tx.tokens.create(
                    TokenKind.USER, "bootstrap", digest, now=now, user_id=user.id
                )
                tx.audit.append(
                    actor=SYSTEM_ACTOR,
                    action="user.bootstrap",
                    now=now,
                    target=ADMIN_NAME,
                    data={"token_id": record.id, "token_given": token is not None},
                )
        except ports.Conflict:  # another server bootstrapped at the same moment
            return None
        return plaintext

    # -- authentication --------------------------------------------------------------

    def authenticate(
        self,
        plaintext: str | None,
        *,
        allowed: frozenset[TokenKind] = USER_TOKENS,
        request_id: str = "",
        target: str = "",
    ) -> Principal:
        """The principal a bearer token stands for, or `Unauthenticated` when it is
        missing, malformed, unknown, revoked, expired, of a kind this endpoint does not
        accept, or bound to a user or job that is gone.

        Every failure is audited (actor `anonymous`, the reason, `target` — what was
        asked for, e.g. `GET /api/v1/runs/7` — and the request id; never the token)."""
        return self.authenticate_token(
            plaintext, allowed=allowed, request_id=request_id, target=target
        )[0]

    def authenticate_token(
        self,
        plaintext: str | None,
        *,
        allowed: frozenset[TokenKind] = USER_TOKENS,
        request_id: str = "",
        target: str = "",
    ) -> tuple[Principal, ports.FoundToken]:
        """`authenticate`, with the token and what it is bound to (a runner credential's
        runner), read in the same statement."""
        try:
            return self._authenticate(plaintext, allowed)
        except Unauthenticated as exc:
            self.record_denied(exc.reason, request_id=request_id, target=target)
            raise

    def record_denied(self, reason: str, *, request_id: str = "", target: str = "") -> None:
        """Audit a failed authentication (here, or of a credential another service checks:
        runner credentials, registration tokens): actor `anonymous`, never the token."""
        with self._store.transaction() as tx:
            tx.audit.append(
                actor="anonymous",
                action="authenticate",
                now=self._clock.now(),
                decision="denied",
                target=target[:200],
                reason=reason,
                request_id=request_id,
            )

    def _authenticate(
        self, plaintext: str | None, allowed: frozenset[TokenKind]
    ) -> tuple[Principal, ports.FoundToken]:
        if not plaintext:
            raise Unauthenticated("missing", "authentication required")
        kind = parse_kind(plaintext)
        if kind is None:
            raise Unauthenticated("malformed")
        if kind not in allowed:
            raise Unauthenticated("wrong kind")
        now = self._clock.now()
        # Read only: the token's `last_used_at` is written, in its own transaction, at most
        # once a minute — most requests then take no write lock at all.
        with self._store.transaction(write=False) as tx:
            found = tx.tokens.find(hash_secret(plaintext))
        if found is None or not matches(plaintext, found.token.secret_hash):
            raise Unauthenticated("unknown")
        record = found.token
        if record.kind is not kind:
            raise Unauthenticated("wrong kind")
        if record.revoked_at is not None:
            raise Unauthenticated("revoked")
        if record.expires_at is not None and now >= utc(record.expires_at):
            raise Unauthenticated("expired")
        principal = principal_for(found)
        last = record.last_used_at
        if last is None or now - utc(last) >= TOUCH_INTERVAL:
            with self._store.transaction() as tx:
                tx.tokens.touch(record.id, now=now)
        return principal, found

    # -- authorisation ---------------------------------------------------------------

    def require(
        self,
        principal: Principal,
        project_id: int,
        role: Role,
        *,
        action: str,
        request_id: str = "",
    ) -> None:
        """Allow `principal` to do `action` on the project when it needs `role` there, or
        raise `Forbidden` and audit the denial.

        Admins may do anything; a user may do what their membership role allows; a job
        token may read its own project (`JOB_ROLE`), and take the actions its
        `permissions:` allow (`JOB_ACTION_SCOPES`); runner tokens act on jobs, never on
        projects."""
        if principal.is_admin:
            return
        with self._store.transaction(write=False) as tx:
            reason = denial_reason(tx, principal, project_id, role, action)
        if reason is None:
            return
        with self._store.transaction() as tx:  # only a denial writes (its audit record)
            self._audit_denial(tx, principal.user_name, action, reason, project_id, request_id)
        raise Forbidden(f"not allowed to {action} in this project (needs {role})")

    def allows(self, principal: Principal, project_id: int, role: Role) -> bool:
        """Whether `principal` has `role` in the project, asked without auditing: for
        deciding what to offer (a dashboard's buttons). Acting still goes through
        `require`, which audits a denial."""
        if principal.is_admin:
            return True
        with self._store.transaction(write=False) as tx:
            return denial_reason(tx, principal, project_id, role) is None

    def require_job(
        self, principal: Principal, job_id: int, *, action: str, request_id: str = ""
    ) -> None:
        """Allow a job token to do `action` on its own job only, when its `permissions:`
        give the action's scope `write` (`JOB_ACTION_SCOPES`, refused too once the job's
        run was cancelled; other actions — the job's own reports — need none);
        `Forbidden` (audited) for any other job or any other kind of token."""
        reason = f"token is not for job {job_id}"
        if principal.kind is TokenKind.JOB and principal.job_id == job_id:
            denied = job_scope_denial(principal, action, "write")
            if denied is None and action in JOB_ACTION_SCOPES:
                # Acting beyond the job's own reports: not once its run was cancelled.
                with self._store.transaction(write=False) as tx:
                    if run_over(tx, job_id):
                        denied = "the job's run has ended (cancelled)"
            if denied is None:
                return
            reason = denied
        with self._store.transaction() as tx:
            project_id = job_project(tx, job_id)
            self._audit_denial(tx, principal.user_name, action, reason, project_id, request_id)
        raise Forbidden(f"not allowed to {action} on this job: {reason}")

    # -- users -------------------------------------------------------------------------

    def create_user(
        self, actor: Principal, name: str, password: str | None, is_admin: bool
    ) -> UserRecord:
        """A new user (admins only); without a password the user signs in by token only."""
        self._require_admin(actor, "user.create")
        check_user_name(name)
        password_hash = None
        if password is not None:
            check_password(password)
            password_hash = hash_password(password)
        now = self._clock.now()
        try:
            with self._store.transaction() as tx:
                user = tx.users.create(
                    name, password_hash=password_hash, is_admin=is_admin, now=now
                )
                tx.audit.append(
                    actor=actor.user_name,
                    action="user.create",
                    now=now,
                    target=name,
                    data={"is_admin": is_admin, "password": password is not None},
                )
        except ports.Conflict as exc:
            raise Conflict(f"a user named {name!r} exists already", field="name") from exc
        return user

    def set_role(self, actor: Principal, project_id: int, user_name: str, role: Role) -> None:
        """Give `user_name` `role` in the project (needs the admin role there)."""
        self.require(actor, project_id, Role.ADMIN, action="member.set_role")
        now = self._clock.now()
        with self._store.transaction() as tx:
            if tx.projects.get_by_id(project_id) is None:
                raise NotFound("no such project")
            user = tx.users.get(user_name)
            if user is None:
                raise NotFound(f"no user named {user_name!r}", field="user")
            tx.members.set_role(project_id, user.id, role)
            tx.audit.append(
                actor=actor.user_name,
                action="member.set_role",
                now=now,
                project_id=project_id,
                target=user_name,
                data={"role": str(role)},
            )

    def login(self, name: str, password: str, client: str) -> tuple[str, datetime]:
        """A session token for a user name and password: `(plaintext, expires_at)`.

        Repeated failures for one (name, client) are slowed down (`RateLimited`); a wrong
        password and an unknown name fail alike and take the same time."""
        wait = self._throttle.attempt(name, client)
        if wait is not None:
            self._deny_login(name, client, "throttled")
            raise RateLimited("too many failed sign-ins; try again later", retry_after=wait)
        if self._dummy_hash is None:  # before the lookup: the first login of each kind alike
            self._dummy_hash = hash_password(secrets.token_urlsafe(16))
        with self._store.transaction() as tx:
            user = tx.users.get(name)
        stored = user.password_hash if user is not None else None
        right = verify_password(stored or self._dummy_hash, password)
        if user is None or stored is None or not right:
            self._deny_login(name, client, "bad credentials")
            raise Unauthenticated("bad credentials", "wrong user name or password")
        self._throttle.succeeded(name, client)
        rehashed = hash_password(password) if needs_rehash(stored) else None
        plaintext, digest = new_token(TokenKind.USER)
        now = self._clock.now()
        expires = now + self._session_ttl
        with self._store.transaction() as tx:
            if rehashed is not None:
                tx.users.set_password_hash(user.id, rehashed)
            record = tx.tokens.create(
                TokenKind.USER, "session", digest, now=now, user_id=user.id, expires_at=expires
            )
            tx.audit.append(
                actor=name,
                action="user.login",
                now=now,
                target=name,
                data={"client": client, "token_id": record.id},
            )
        return plaintext, expires

    def _deny_login(self, name: str, client: str, reason: str) -> None:
        with self._store.transaction() as tx:
            tx.audit.append(
                actor=name,
                action="user.login",
                now=self._clock.now(),
                decision="denied",
                target=name,
                reason=reason,
                data={"client": client},
            )

    # -- tokens ------------------------------------------------------------------------

    def create_token(
        self, actor: Principal, name: str, expires_in: timedelta | None
    ) -> tuple[str, TokenRecord]:
        """A new API token of the actor's user: `(plaintext, record)`; the plaintext is
        shown once and never stored. `expires_in` None: valid until revoked."""
        user_id = self._require_user(actor, "token.create")
        if not name.strip() or len(name) > MAX_TOKEN_NAME or not name.isprintable():
            raise Invalid(f"a token name is 1-{MAX_TOKEN_NAME} printable characters", field="name")
        if expires_in is not None and expires_in <= timedelta(0):
            raise Invalid("expiry must be in the future", field="expires_in")
        now = self._clock.now()
        expires = now + expires_in if expires_in is not None else None
        plaintext, digest = new_token(TokenKind.USER)
        with self._store.transaction() as tx:
            record = tx.tokens.create(
                TokenKind.USER, name, digest, now=now, user_id=user_id, expires_at=expires
            )
            tx.audit.append(
                actor=actor.user_name,
                action="token.create",
                now=now,
                target=f"token:{record.id}",
                data={"name": name, "expires_at": expires.isoformat() if expires else None},
            )
        return plaintext, record

    def list_tokens(self, actor: Principal) -> list[TokenRecord]:
        """The actor's own tokens, revoked and expired ones included (for display; the
        records hold only hashes)."""
        user_id = self._require_user(actor, "token.list")
        with self._store.transaction() as tx:
            return tx.tokens.for_user(user_id)

    def revoke_token(self, actor: Principal, token_id: int) -> None:
        """Revoke one of the actor's tokens (admins: anyone's). Someone else's token is
        `NotFound` (and the attempt audited), as is a job or runner token."""
        user_id = self._require_user(actor, "token.revoke")
        now = self._clock.now()
        with self._store.transaction() as tx:
            record = tx.tokens.get(token_id)
            mine = record is not None and record.user_id == user_id
            visible = record is not None and record.kind is TokenKind.USER
            if record is not None and visible and (mine or actor.is_admin):
                if record.revoked_at is None:
                    tx.tokens.revoke(token_id, now=now)
                    tx.audit.append(
                        actor=actor.user_name,
                        action="token.revoke",
                        now=now,
                        target=f"token:{token_id}",
                    )
                return
            if record is not None:
                self._audit_denial(tx, actor.user_name, "token.revoke", "not the owner", None)
        raise NotFound("no such token")

    def issue_job_token(self, job_id: int, expires: datetime) -> str:
        """A token for the runner of job `job_id`, valid until `expires` or until the job
        completes, whichever comes first. (Inside another transaction, call
        `engine.job_tokens.issue_job_token` with it.)"""
        with self._store.transaction() as tx:
            return job_tokens.issue_job_token(tx, job_id, expires, now=self._clock.now())

    def revoke_job_tokens(self, job_id: int) -> None:
        """Revoke every token of job `job_id` (at completion or cancel): from then on they
        are refused. The run service should rather call `engine.job_tokens.revoke_job_tokens`
        in the transaction that completes the job."""
        with self._store.transaction() as tx:
            job_tokens.revoke_job_tokens(tx, job_id, now=self._clock.now())

    # -- helpers -----------------------------------------------------------------------

    def _require_user(self, actor: Principal, action: str) -> int:
        if actor.kind is TokenKind.USER and actor.user_id is not None:
            return actor.user_id
        with self._store.transaction() as tx:
            self._audit_denial(tx, actor.user_name, action, f"a {actor.kind} token", None)
        raise Forbidden("only a user token may do this")

    def _require_admin(self, actor: Principal, action: str) -> None:
        if actor.is_admin:
            return
        with self._store.transaction() as tx:
            self._audit_denial(tx, actor.user_name, action, "not an admin", None)
        raise Forbidden("only an admin may do this")

    def _audit_denial(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        reason: str,
        project_id: int | None,
        request_id: str = "",
    ) -> None:
        tx.audit.append(
            actor=actor,
            action=action,
            now=self._clock.now(),
            decision="denied",
            project_id=project_id,
            reason=reason,
            request_id=request_id,
        )
