"""Job logs in the SQL store (`LogStore`): numbered chunks, appended idempotently.

A runner that resends a chunk after a lost reply (or a server restarted mid-stream) sends
the same `seq`; the insert is `ON CONFLICT DO NOTHING`, so the log never holds it twice.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, select

from shipline.domain.records import LogChunk
from shipline.store.sql._common import guarded, insert_new
from shipline.store.sql.schema import log_chunks

# Built once (per dialect, the append), and the reads.
_APPEND = insert_new(log_chunks, ("job_id", "seq"), log_chunks.c.id)
_LAST_SEQ = select(func.max(log_chunks.c.seq)).where(log_chunks.c.job_id == bindparam("job_id"))


class SqlLogStore:
    """Chunks of job logs, ordered and deduplicated by their sequence number."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(self, job_id: int, seq: int, data: bytes, step_index: int | None = None) -> bool:
        values = {"job_id": job_id, "seq": seq, "step_index": step_index, "data": data}
        query = _APPEND[self._conn.dialect.name]
        # A chunk stored already is skipped (ON CONFLICT); a job that is gone fails the
        # message's transaction, which no caller goes on with.
        with guarded(self._conn, f"log chunk {seq} of job {job_id}", savepoint=False):
            inserted = self._conn.execute(query, values).first()
        return inserted is not None

    def read(self, job_id: int, *, after_seq: int = -1, limit: int | None = None) -> list[LogChunk]:
        query = (
            select(log_chunks.c.seq, log_chunks.c.step_index, log_chunks.c.data)
            .where(log_chunks.c.job_id == job_id, log_chunks.c.seq > after_seq)
            .order_by(log_chunks.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [
            LogChunk(job_id, row.seq, row.step_index, bytes(row.data))
            for row in self._conn.execute(query)
        ]

    def last_seq(self, job_id: int) -> int:
        found = self._conn.execute(_LAST_SEQ, {"job_id": job_id}).scalar_one()
        return -1 if found is None else int(found)
