"""Who a request acts as (`Principal`), and the rules `AccessService` applies: what a
token record stands for, whether a principal may act in a project, valid names and
passwords.

Kept apart from `engine.access` so that other services (runs, artifacts) can name a
`Principal` without the user and token machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from shipline.domain.records import Role, TokenKind
from shipline.domain.status import Status
from shipline.engine.errors import Invalid, Unauthenticated
from shipline.spec.permissions import allows, from_token_scopes
from shipline.store.ports import FoundToken, Transaction

# A job token reads its own project (logs, artifacts of its run) and nothing more, unless
# an action names the scope of `permissions:` that governs it (below).
JOB_ROLE = Role.VIEWER
# Actions a job token may take, with the scope of the workflow's `permissions:` each needs:
# `read` of it to view (role viewer), `write` to change (any higher role) (SECURITY-CASES 22).
JOB_ACTION_SCOPES: dict[str, str] = {
    "git.fetch": "contents",
    "git.push": "contents",
    "deployment.read": "deployments",
    "deployment.request": "deployments",
}
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", re.ASCII)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as, established from a verified token.

    `user_id`/`user_name` name the user of a user token; job and runner tokens have no
    user (`user_id` None) and a `user_name` such as `job:42` for the audit trail.
    """

    user_id: int | None
    user_name: str
    is_admin: bool
    token_id: int
    kind: TokenKind
    job_id: int | None = None
    # A job token's scopes (`contents:read`, ...; `spec.permissions.token_scopes`).
    scopes: tuple[str, ...] = ()


def job_project(tx: Transaction, job_id: int) -> int | None:
    """The project of job `job_id`, None when there is no such job."""
    job = tx.jobs.get(job_id)
    run = tx.runs.get(job.run_id) if job is not None else None
    return run.project_id if run is not None else None


def run_over(tx: Transaction, job_id: int) -> bool:
    """Whether the run of job `job_id` has completed (cancelled while the job still runs):
    its job token then acts on nothing but the job's own end (SECURITY-CASES 20)."""
    job = tx.jobs.get(job_id)
    run = tx.runs.get(job.run_id) if job is not None else None
    return run is None or run.status is Status.COMPLETED


def check_password(password: str) -> None:
    """`Invalid` unless the password has a sensible length."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise Invalid(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password"
        )


def utc(when: datetime) -> datetime:
    """Stores may hand back naive datetimes (SQLite); they are UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def check_user_name(name: str) -> None:
    """`Invalid` unless `name` is 1-64 ASCII letters, digits, '.', '_' or '-', starting
    with a letter or digit (so no user can be named like `job:42`)."""
    if not _USER_NAME.match(name):
        raise Invalid(
            "a user name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="name",
        )


def principal_for(found: FoundToken) -> Principal:
    """The principal a verified token stands for; `Unauthenticated` when its user is gone
    or its job has completed."""
    record = found.token
    if record.kind is TokenKind.USER:
        user = found.user
        if user is None:
            raise Unauthenticated("no such user")
        return Principal(user.id, user.name, user.is_admin, record.id, record.kind)
    if record.kind is TokenKind.JOB:
        if record.job_id is None or found.job_status in (None, Status.COMPLETED):
            raise Unauthenticated("job finished")
        name = f"job:{record.job_id}"
        return Principal(None, name, False, record.id, record.kind, record.job_id, record.scopes)
    return Principal(None, f"{record.kind}:{record.name}", False, record.id, record.kind)


def denial_reason(
    tx: Transaction, principal: Principal, project_id: int, role: Role, action: str = ""
) -> str | None:
    """Why `principal` may not act with `role` in the project, or None when it may.

    A user needs a membership whose role allows `role`; a job token acts on its own
    project only: an action of `JOB_ACTION_SCOPES` needs its scope at `read` (role
    viewer) or `write` (above), any other action the viewer role (`JOB_ROLE`), and
    nothing once the job's run has ended (cancelled); runner tokens act on jobs, never on
    projects. (Admins are let through before this is
    asked.)"""
    if principal.kind is TokenKind.USER and principal.user_id is not None:
        have = tx.members.role(project_id, principal.user_id)
        if have is None:
            return "not a member"
        return None if have.allows(role) else f"role {have} does not allow {role}"
    if principal.kind is TokenKind.JOB and principal.job_id is not None:
        if job_project(tx, principal.job_id) != project_id:
            return "job token of another project"
        if run_over(tx, principal.job_id):
            return "the job's run has ended (cancelled)"
        if action in JOB_ACTION_SCOPES:
            return job_scope_denial(principal, action, "read" if role is Role.VIEWER else "write")
        return None if JOB_ROLE.allows(role) else f"a job token does not allow {role}"
    return f"a {principal.kind} token has no project access"


def job_scope_denial(principal: Principal, action: str, level: str) -> str | None:
    """Why a job token's `permissions:` do not allow `action` at `level`, or None."""
    scope = JOB_ACTION_SCOPES.get(action)
    if scope is None:
        return None
    levels = from_token_scopes(principal.scopes)
    if allows(levels, scope, level):
        return None
    return (
        f"the job token has {scope}: {levels.get(scope, 'none')}; {action} needs {scope}: {level}"
    )
