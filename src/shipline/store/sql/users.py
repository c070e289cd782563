"""Users, project memberships and API tokens in the SQL store.

Tokens are kept only as the hash of their secret; `find` looks one up by that hash and
returns it whatever its state (callers check `revoked_at` and `expires_at`), with its
user, its job's status or its runner read in the same statement: an authenticated
request's first read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, Row, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shipline.domain.records import MembershipRecord, Role, TokenKind, TokenRecord, UserRecord
from shipline.domain.status import Status
from shipline.store.ports import FoundToken, NotFound, Page
from shipline.store.sql._common import guarded, labelled, newest_first, strs, unlabelled
from shipline.store.sql.runners import runner_record
from shipline.store.sql.schema import jobs, memberships, runners, tokens, users

# The queries of every authenticated request, built once.
_USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
_CREATE_TOKEN = insert(tokens).returning(*tokens.c)
_REVOKE_FOR_JOB = update(tokens).where(
    tokens.c.job_id == bindparam("at_job"), tokens.c.revoked_at.is_(None)
)
# A token by its hash, with its user, its job's status and its runner (outer joins: a
# token has one of them at most).
_TOKEN_BY_HASH = (
    select(
        tokens,
        *labelled(users, "user__"),
        jobs.c.status.label("job_status"),
        *labelled(runners, "runner__"),
    )
    .select_from(
        tokens.outerjoin(users, users.c.id == tokens.c.user_id)
        .outerjoin(jobs, jobs.c.id == tokens.c.job_id)
        .outerjoin(runners, runners.c.token_id == tokens.c.id)
    )
    .where(tokens.c.secret_hash == bindparam("secret_hash"))
)
_ROLE = select(memberships.c.role).where(
    memberships.c.project_id == bindparam("project_id"),
    memberships.c.user_id == bindparam("user_id"),
)


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        name=row.name,
        password_hash=row.password_hash,
        is_admin=bool(row.is_admin),
        created_at=row.created_at,
    )


def _token(row: Row[Any]) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        kind=TokenKind(row.kind),
        name=row.name,
        secret_hash=row.secret_hash,
        user_id=row.user_id,
        job_id=row.job_id,
        scopes=strs(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class SqlUserStore:
    """User accounts, known by a unique name."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self, name: str, *, password_hash: str | None = None, is_admin: bool = False, now: datetime
    ) -> UserRecord:
        query = insert(users).values(
            name=name, password_hash=password_hash, is_admin=is_admin, created_at=now
        )
        with guarded(self._conn, f"user {name!r}"):
            user_id = self._conn.execute(query.returning(users.c.id)).scalar_one()
        found = self.get_by_id(user_id)
        assert found is not None
        return found

    def get(self, name: str) -> UserRecord | None:
        row = self._conn.execute(select(users).where(users.c.name == name)).first()
        return None if row is None else _user(row)

    def get_by_id(self, user_id: int) -> UserRecord | None:
        row = self._conn.execute(_USER_BY_ID, {"user_id": user_id}).first()
        return None if row is None else _user(row)

    def page(self, *, limit: int = 50, cursor: str | None = None) -> Page[UserRecord]:
        return newest_first(
            self._conn, select(users), users.c.id, _user, limit=limit, cursor=cursor
        )

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        result = self._conn.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )
        if result.rowcount != 1:
            raise NotFound(f"user {user_id} does not exist")

    def count(self) -> int:
        return int(self._conn.execute(select(func.count()).select_from(users)).scalar_one())


class SqlMembershipStore:
    """Users' roles in projects: at most one role per user and project."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def set_role(self, project_id: int, user_id: int, role: Role) -> MembershipRecord:
        values = {"project_id": project_id, "user_id": user_id, "role": role.value}
        keys = ["project_id", "user_id"]
        query: Insert
        if self._conn.dialect.name == "postgresql":
            pg = postgresql.insert(memberships).values(values)
            query = pg.on_conflict_do_update(index_elements=keys, set_={"role": role.value})
        else:
            lite = sqlite.insert(memberships).values(values)
            query = lite.on_conflict_do_update(index_elements=keys, set_={"role": role.value})
        with guarded(self._conn, f"membership of user {user_id} in project {project_id}"):
            self._conn.execute(query)
        return MembershipRecord(project_id, user_id, role)

    def role(self, project_id: int, user_id: int) -> Role | None:
        found = self._conn.execute(
            _ROLE, {"project_id": project_id, "user_id": user_id}
        ).scalar_one_or_none()
        return None if found is None else Role(found)

    def for_project(self, project_id: int) -> list[MembershipRecord]:
        query = (
            select(memberships)
            .where(memberships.c.project_id == project_id)
            .order_by(memberships.c.user_id)
        )
        return [
            MembershipRecord(row.project_id, row.user_id, Role(row.role))
            for row in self._conn.execute(query)
        ]

    def remove(self, project_id: int, user_id: int) -> None:
        self._conn.execute(
            delete(memberships).where(
                memberships.c.project_id == project_id, memberships.c.user_id == user_id
            )
        )


class SqlTokenStore:
    """API tokens of users, jobs and runners, stored as the hash of their secret."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self,
        kind: TokenKind,
        name: str,
        secret_hash: str,
        *,
        now: datetime,
        user_id: int | None = None,
        job_id: int | None = None,
        scopes: tuple[str, ...] = (),
        expires_at: datetime | None = None,
        last_used_at: datetime | None = None,
    ) -> TokenRecord:
        values = {
            "kind": kind.value,
            "name": name,
            "secret_hash": secret_hash,
            "user_id": user_id,
            "job_id": job_id,
            "scopes": list(scopes),
            "created_at": now,
            "expires_at": expires_at,
            "last_used_at": last_used_at,
        }
        # A job token is made by the server (its hash, of 256 random bits, cannot clash)
        # inside a claim that nothing recovers from a failure of: no savepoint for it.
        with guarded(self._conn, f"token {name!r}", savepoint=kind is not TokenKind.JOB):
            return _token(self._conn.execute(_CREATE_TOKEN, values).one())

    def find(self, secret_hash: str) -> FoundToken | None:
        row = self._conn.execute(_TOKEN_BY_HASH, {"secret_hash": secret_hash}).first()
        if row is None:
            return None
        user = unlabelled(row, users, "user__")
        runner = unlabelled(row, runners, "runner__")
        return FoundToken(
            token=_token(row),
            user=None if user is None else _user(user),
            job_status=None if row.job_status is None else Status(row.job_status),
            runner=None if runner is None else runner_record(runner),
        )

    def get(self, token_id: int) -> TokenRecord | None:
        row = self._conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def for_user(self, user_id: int) -> list[TokenRecord]:
        query = select(tokens).where(tokens.c.user_id == user_id).order_by(tokens.c.id)
        return [_token(row) for row in self._conn.execute(query)]

    def revoke(self, token_id: int, *, now: datetime) -> None:
        """Revoke a token (revoking it again keeps the first revocation's time)."""
        self._conn.execute(
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def revoke_for_job(self, job_id: int, *, now: datetime) -> int:
        done = self._conn.execute(_REVOKE_FOR_JOB, {"at_job": job_id, "revoked_at": now})
        return int(done.rowcount)

    def touch(self, token_id: int, *, now: datetime) -> None:
        self._conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))
