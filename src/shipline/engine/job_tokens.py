"""Per-job tokens: a runner's credential for one job, which dies with the job.

A job token (`shp_j_...`) is bound to one job record, and so to one attempt of a run (a
re-run creates new job records). It expires at the latest at `expires`, is revoked when the
job completes or is cancelled, and `AccessService.authenticate` also refuses it once the job
is completed, should a revocation have been missed (SECURITY-CASES 20).

These functions take the caller's transaction, so that the run service can revoke a job's
tokens in the same transaction that completes the job.
"""

from __future__ import annotations

from datetime import datetime

from shipline.domain.records import TokenKind
from shipline.domain.status import Status
from shipline.engine.errors import Invalid, NotFound
from shipline.engine.principal import job_project, utc
from shipline.security.tokens import new_token
from shipline.store.ports import Transaction

SYSTEM_ACTOR = "system"


def issue_job_token(tx: Transaction, job_id: int, expires: datetime, *, now: datetime) -> str:
    """A new token for job `job_id`, valid until `expires`; returns its plaintext (hand it
    to the runner that holds the job, never store or log it)."""
    if utc(expires) <= now:
        raise Invalid("a job token must expire in the future", field="expires")
    job = tx.jobs.get(job_id)
    if job is None:
        raise NotFound("no such job")
    if job.status is Status.COMPLETED:
        raise Invalid("the job has completed", field="job_id")
    plaintext, digest = new_token(TokenKind.JOB)
    record = tx.tokens.create(
        TokenKind.JOB, f"job-{job_id}", digest, now=now, job_id=job_id, expires_at=expires
    )
    tx.audit.append(
        actor=SYSTEM_ACTOR,
        action="token.issue_job",
        now=now,
        project_id=job_project(tx, job_id),
        target=f"job:{job_id}",
        data={"token_id": record.id},
    )
    return plaintext


def revoke_job_tokens(tx: Transaction, job_id: int, *, now: datetime) -> None:
    """Revoke every token of job `job_id`; from then on they are refused."""
    tx.tokens.revoke_for_job(job_id, now=now)
    tx.audit.append(
        actor=SYSTEM_ACTOR,
        action="token.revoke_job",
        now=now,
        project_id=job_project(tx, job_id),
        target=f"job:{job_id}",
    )
