"""Per-job tokens: a runner's credential for one job, which dies with the job.

A job token (`shp_j_...`) is bound to one job record, and so to one attempt of a run (a
re-run creates new job records). It expires at the latest at `expires`, is revoked when the
job completes or is cancelled, and `AccessService.authenticate` also refuses it once the job
is completed, should a revocation have been missed (SECURITY-CASES 20).

A job token carries the job's effective `permissions:` as scopes (`contents:read`, ...;
`spec.permissions`): the endpoints a job token may call check them (`AccessService`,
SECURITY-CASES 22). `scopes_for` computes them from the workflow and the run's trust class.

These functions take the caller's transaction, so that the run service can revoke a job's
tokens in the same transaction that completes the job.
"""

from __future__ import annotations

from datetime import datetime

from shipline.domain.records import JobRecord, TokenKind, TokenRecord, Trust
from shipline.domain.status import Status
from shipline.engine.errors import Invalid, NotFound
from shipline.engine.principal import job_project, utc
from shipline.security.tokens import new_token
from shipline.spec.models import JobSpec, WorkflowSpec
from shipline.spec.permissions import effective_permissions, token_scopes
from shipline.store.ports import Transaction

SYSTEM_ACTOR = "system"
# A token that may take no action `permissions:` govern.
NO_SCOPES = token_scopes({})


def scopes_for(workflow: WorkflowSpec, job: JobSpec | None, trust: Trust) -> tuple[str, ...]:
    """The scopes of a job's token: its `permissions:` (or the workflow's), capped at
    read for a run that is not trusted."""
    return token_scopes(
        effective_permissions(
            workflow.permissions,
            job.permissions if job is not None else None,
            trusted=trust is Trust.TRUSTED,
        )
    )


def issue_job_token(
    tx: Transaction,
    job_id: int,
    expires: datetime,
    *,
    now: datetime,
    scopes: tuple[str, ...] = (),
) -> str:
    """A new token for job `job_id`, valid until `expires`, with `scopes` (`scopes_for`;
    none given: the defaults); returns its plaintext (hand it to the runner that holds
    the job, never store or log it)."""
    job = tx.jobs.get(job_id)
    if job is None:
        raise NotFound("no such job")
    return issue_for(tx, job, job_project(tx, job_id), expires, now=now, scopes=scopes)[0]


def issue_for(
    tx: Transaction,
    job: JobRecord,
    project_id: int | None,
    expires: datetime,
    *,
    now: datetime,
    scopes: tuple[str, ...] = (),
    handed_out: bool = False,
) -> tuple[str, TokenRecord]:
    """`issue_job_token` for a job the caller has read (with its project): the plaintext
    and the token's record. `handed_out`: the token leaves the server now (to a remote
    runner), which counts as its first use."""
    if utc(expires) <= now:
        raise Invalid("a job token must expire in the future", field="expires")
    if job.status is Status.COMPLETED:
        raise Invalid("the job has completed", field="job_id")
    plaintext, digest = new_token(TokenKind.JOB)
    record = tx.tokens.create(
        TokenKind.JOB,
        f"job-{job.id}",
        digest,
        now=now,
        job_id=job.id,
        scopes=scopes,
        expires_at=expires,
        last_used_at=now if handed_out else None,
    )
    granted = [s for s in scopes if not s.endswith(":none")]
    tx.audit.append(
        actor=SYSTEM_ACTOR,
        action="token.issue_job",
        now=now,
        project_id=project_id,
        target=f"job:{job.id}",
        data={"token_id": record.id, "scopes": granted if scopes else "default"},
    )
    return plaintext, record


def revoke_job_tokens(
    tx: Transaction, job_id: int, *, now: datetime, project_id: int | None = None
) -> None:
    """Revoke every token of job `job_id`; from then on they are refused. `project_id`:
    the job's project, when the caller knows it (else it is read). Audited when there was
    one to revoke (the embedded runner issues none to a job that cannot reach it)."""
    if not tx.tokens.revoke_for_job(job_id, now=now):
        return
    tx.audit.append(
        actor=SYSTEM_ACTOR,
        action="token.revoke_job",
        now=now,
        project_id=job_project(tx, job_id) if project_id is None else project_id,
        target=f"job:{job_id}",
    )
