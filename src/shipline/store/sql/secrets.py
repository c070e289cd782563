"""Sealed secrets in the SQL store (`SecretStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, text, update

from shipline.domain.records import SecretRecord
from shipline.store.ports import SealedValue
from shipline.store.sql._common import guarded, utc
from shipline.store.sql.schema import sealed_secrets

_T = sealed_secrets


def _record(row: Row[Any]) -> SecretRecord:
    return SecretRecord(
        id=row.id,
        project_id=row.project_id,
        environment=row.environment,
        name=row.name,
        key_id=row.key_id,
        nonce=bytes(row.nonce),
        ciphertext=bytes(row.ciphertext),
        updated_by=row.updated_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlSecretStore:
    """Secrets, unique by (project, environment, name); values only ever sealed."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(
        self,
        project_id: int,
        environment: str,
        name: str,
        sealed: SealedValue,
        *,
        actor: str,
        now: datetime,
    ) -> tuple[SecretRecord, bool]:
        values = {
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
            "updated_by": actor,
            "updated_at": utc(now),
        }
        where = (
            (_T.c.project_id == project_id)
            & (_T.c.environment == environment)
            & (_T.c.name == name)
        )
        changed = self._conn.execute(update(_T).where(where).values(**values)).rowcount
        created = False
        if not changed:
            with guarded(self._conn, f"secret {name!r}"):
                self._conn.execute(
                    insert(_T).values(
                        project_id=project_id,
                        environment=environment,
                        name=name,
                        created_at=utc(now),
                        **values,
                    )
                )
            created = True
        found = self.get(project_id, environment, name)
        assert found is not None
        return found, created

    def get(self, project_id: int, environment: str, name: str) -> SecretRecord | None:
        row = self._conn.execute(
            select(_T).where(
                (_T.c.project_id == project_id)
                & (_T.c.environment == environment)
                & (_T.c.name == name)
            )
        ).first()
        return None if row is None else _record(row)

    def for_project(self, project_id: int) -> list[SecretRecord]:
        rows = self._conn.execute(
            select(_T).where(_T.c.project_id == project_id).order_by(_T.c.environment, _T.c.name)
        )
        return [_record(row) for row in rows]

    def delete(self, project_id: int, environment: str, name: str) -> bool:
        result = self._conn.execute(
            delete(_T).where(
                (_T.c.project_id == project_id)
                & (_T.c.environment == environment)
                & (_T.c.name == name)
            )
        )
        return bool(result.rowcount)

    def all(self, *, lock: bool = False) -> list[SecretRecord]:
        if lock and self._conn.dialect.name == "postgresql":
            # Writers of secrets wait until the rotation commits (readers do not).
            self._conn.execute(text("LOCK TABLE secrets IN EXCLUSIVE MODE"))
        rows = self._conn.execute(select(_T).order_by(_T.c.id))
        return [_record(row) for row in rows]

    def reseal(self, secret_id: int, sealed: SealedValue) -> None:
        self._conn.execute(
            update(_T)
            .where(_T.c.id == secret_id)
            .values(key_id=sealed.key_id, nonce=sealed.nonce, ciphertext=sealed.ciphertext)
        )
