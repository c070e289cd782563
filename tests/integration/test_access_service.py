"""AccessService on SQLite: bootstrap, tokens, roles, login throttle, job tokens.

SECURITY-CASES 20 (a job token dies with its job), 21 (a job token of project A is refused
in project B) and 23 (a token of one kind is refused where another is expected).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shipline.domain.records import Role, TokenKind
from shipline.domain.status import Conclusion, Status
from shipline.engine.access import AccessService, Principal
from shipline.engine.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from shipline.security.tokens import new_token
from shipline.store.ports import NewJob, NewRun
from shipline.store.sql import SqlStore
from shipline.testing import FrozenClock

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    db = SqlStore("sqlite:///" + str(tmp_path / "db.sqlite"))
    yield db
    db.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def access(store: SqlStore, clock: FrozenClock) -> AccessService:
    return AccessService(store, clock)


@pytest.fixture
def admin(access: AccessService) -> Principal:
    token = access.bootstrap_admin(None)
    assert token is not None
    return access.authenticate(token)


def project(store: SqlStore, name: str) -> int:
    with store.transaction() as tx:
        return tx.projects.create(name, f"/srv/{name}").id


def job(store: SqlStore, clock: FrozenClock, project_id: int) -> int:
    run = NewRun(
        project_id=project_id,
        workflow_file=".shipline/workflows/ci.yml",
        workflow_name="ci",
        workflow_text="on: push\njobs: {build: {runs-on: x, steps: [{run: 'true'}]}}\n",
        event="push",
        ref="refs/heads/main",
        sha="0" * 40,
        actor="ann",
    )
    with store.transaction() as tx:
        record = tx.runs.create(run, now=clock.now())
        (created,) = tx.jobs.create(
            record.id, 1, [NewJob(key="build", job_id="build", name="build")], now=clock.now()
        )
        return created.id


def complete(store: SqlStore, clock: FrozenClock, job_id: int) -> None:
    with store.transaction() as tx:
        tx.jobs.set_status(job_id, Status.IN_PROGRESS, now=clock.now())
        tx.jobs.set_status(job_id, Status.COMPLETED, Conclusion.SUCCESS, now=clock.now())


def audit(store: SqlStore, action: str) -> list[tuple[str, str, str, int | None]]:
    with store.transaction() as tx:
        return [
            (r.actor, r.decision, r.reason, r.project_id)
            for r in tx.audit.iterate()
            if r.action == action
        ]


def user_token(access: AccessService, admin: Principal, name: str) -> Principal:
    access.create_user(admin, name, PASSWORD, is_admin=False)
    token, _ = access.login(name, PASSWORD, "10.0.0.1")
    return access.authenticate(token)


# -- bootstrap ------------------------------------------------------------------------


def test_bootstrap_creates_the_admin_once(access: AccessService, store: SqlStore) -> None:
    token = access.bootstrap_admin(None)
    assert token is not None and token.startswith("shp_u_")
    principal = access.authenticate(token)
    assert principal.user_name == "admin" and principal.is_admin
    assert access.bootstrap_admin(None) is None
    assert access.bootstrap_admin(new_token(TokenKind.USER)[0]) is None
    assert [a[:2] for a in audit(store, "user.bootstrap")] == [("system", "allowed")]


def test_bootstrap_takes_a_given_token_and_checks_its_format(access: AccessService) -> None:
    with pytest.raises(Invalid) as err:
        access.bootstrap_admin("hunter2")
    assert err.value.field == "SHIPLINE_ADMIN_TOKEN"
    with pytest.raises(Invalid):
        access.bootstrap_admin(new_token(TokenKind.JOB)[0])
    given, _ = new_token(TokenKind.USER)
    assert access.bootstrap_admin(given) == given
    assert access.authenticate(given).is_admin


# -- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, "", "Bearer x", "shp_u_short", "shp_u_" + "A" * 43])
def test_missing_malformed_and_unknown_tokens_are_refused(
    access: AccessService, admin: Principal, bad: str | None
) -> None:
    with pytest.raises(Unauthenticated) as err:
        access.authenticate(bad)
    assert err.value.code == "unauthenticated"


def test_every_failed_authentication_is_audited_by_the_service(
    access: AccessService, store: SqlStore, admin: Principal
) -> None:
    forged = "shp_u_" + "A" * 43
    for bad in (None, "shp_u_short", forged):
        with pytest.raises(Unauthenticated):
            access.authenticate(bad, request_id="req-1", target="GET /api/v1/runs/7")
    with store.transaction(write=False) as tx:
        denied = [a for a in tx.audit.iterate() if a.action == "authenticate"]
    assert [(a.actor, a.decision, a.reason) for a in denied] == [
        ("anonymous", "denied", "missing"),
        ("anonymous", "denied", "malformed"),
        ("anonymous", "denied", "unknown"),
    ]
    assert {(a.target, a.request_id) for a in denied} == {("GET /api/v1/runs/7", "req-1")}
    assert all(forged not in str(a) for a in denied)  # never the token


def test_revoked_token_is_refused(access: AccessService, admin: Principal) -> None:
    plaintext, record = access.create_token(admin, "ci", None)
    assert access.authenticate(plaintext).token_id == record.id
    access.revoke_token(admin, record.id)
    with pytest.raises(Unauthenticated) as err:
        access.authenticate(plaintext)
    assert err.value.reason == "revoked"


def test_expired_token_is_refused(
    access: AccessService, admin: Principal, clock: FrozenClock
) -> None:
    plaintext, _ = access.create_token(admin, "short", timedelta(hours=1))
    clock.advance(minutes=59)
    access.authenticate(plaintext)
    clock.advance(minutes=1)
    with pytest.raises(Unauthenticated) as err:
        access.authenticate(plaintext)
    assert err.value.reason == "expired"


def test_a_token_of_another_kind_is_refused(
    access: AccessService, admin: Principal, store: SqlStore, clock: FrozenClock
) -> None:
    job_token = access.issue_job_token(
        job(store, clock, project(store, "a")), clock.now() + timedelta(hours=1)
    )
    with pytest.raises(Unauthenticated) as err:
        access.authenticate(job_token)  # a job token where a user token is expected
    assert err.value.reason == "wrong kind"
    user_plaintext, _ = access.create_token(admin, "mine", None)
    with pytest.raises(Unauthenticated):
        access.authenticate(user_plaintext, allowed=frozenset({TokenKind.JOB}))
    assert access.authenticate(job_token, allowed=frozenset({TokenKind.JOB})).kind is TokenKind.JOB


def test_last_used_is_written_at_most_once_a_minute(
    access: AccessService, admin: Principal, store: SqlStore, clock: FrozenClock
) -> None:
    plaintext, record = access.create_token(admin, "ci", None)

    def last_used() -> object:
        with store.transaction() as tx:
            token = tx.tokens.get(record.id)
            assert token is not None
            return token.last_used_at

    access.authenticate(plaintext)
    first = last_used()
    assert first is not None
    clock.advance(30)
    access.authenticate(plaintext)
    assert last_used() == first
    clock.advance(30)
    access.authenticate(plaintext)
    assert last_used() != first


# -- roles ----------------------------------------------------------------------------


def test_roles_include_the_rights_of_those_below(
    access: AccessService, admin: Principal, store: SqlStore
) -> None:
    pid = project(store, "app")
    ann = user_token(access, admin, "ann")
    access.set_role(admin, pid, "ann", Role.DEVELOPER)
    access.require(ann, pid, Role.VIEWER, action="run.list")
    access.require(ann, pid, Role.DEVELOPER, action="run.create")
    with pytest.raises(Forbidden):
        access.require(ann, pid, Role.MAINTAINER, action="secret.write")
    access.require(admin, pid, Role.ADMIN, action="project.delete")  # admins: anything


def test_every_denial_is_audited(access: AccessService, admin: Principal, store: SqlStore) -> None:
    pid, other = project(store, "app"), project(store, "other")
    ann = user_token(access, admin, "ann")
    access.set_role(admin, pid, "ann", Role.VIEWER)
    with pytest.raises(Forbidden) as err:
        access.require(ann, pid, Role.DEVELOPER, action="run.create")
    assert err.value.code == "forbidden"
    with pytest.raises(Forbidden):
        access.require(ann, other, Role.VIEWER, action="run.list")
    with pytest.raises(Forbidden):
        access.set_role(ann, pid, "ann", Role.ADMIN)
    with pytest.raises(Forbidden):
        access.create_user(ann, "mallory", None, is_admin=True)
    assert audit(store, "run.create") == [
        ("ann", "denied", "role viewer does not allow developer", pid)
    ]
    assert audit(store, "run.list") == [("ann", "denied", "not a member", other)]
    assert audit(store, "member.set_role")[-1] == (
        "ann",
        "denied",
        "role viewer does not allow admin",
        pid,
    )
    assert audit(store, "user.create")[-1] == ("ann", "denied", "not an admin", None)


def test_set_role_needs_an_existing_project_and_user(
    access: AccessService, admin: Principal, store: SqlStore
) -> None:
    pid = project(store, "app")
    with pytest.raises(NotFound):
        access.set_role(admin, pid, "nobody", Role.VIEWER)
    with pytest.raises(NotFound):
        access.set_role(admin, pid + 100, "admin", Role.VIEWER)


def test_user_names_passwords_and_duplicates(access: AccessService, admin: Principal) -> None:
    with pytest.raises(Invalid):
        access.create_user(admin, "job:1", None, is_admin=False)
    with pytest.raises(Invalid) as err:
        access.create_user(admin, "bob", "short", is_admin=False)
    assert err.value.field == "password"
    access.create_user(admin, "bob", None, is_admin=False)
    with pytest.raises(Conflict) as conflict:
        access.create_user(admin, "bob", None, is_admin=False)
    assert conflict.value.code == "conflict"


# -- login ----------------------------------------------------------------------------


def test_login_gives_an_expiring_session(
    access: AccessService, admin: Principal, clock: FrozenClock
) -> None:
    access.create_user(admin, "ann", PASSWORD, is_admin=False)
    token, expires = access.login("ann", PASSWORD, "10.0.0.1")
    assert expires == clock.now() + timedelta(hours=12)
    assert access.authenticate(token).user_name == "ann"
    clock.advance(hours=12)
    with pytest.raises(Unauthenticated):
        access.authenticate(token)


def test_failed_logins_are_throttled_and_audited(
    access: AccessService, admin: Principal, store: SqlStore, clock: FrozenClock
) -> None:
    access.create_user(admin, "ann", PASSWORD, is_admin=False)
    for guess in ["a", "b", "c", "d", "e"]:
        with pytest.raises(Unauthenticated):
            access.login("ann", guess, "10.0.0.9")
    with pytest.raises(RateLimited) as err:
        access.login("ann", PASSWORD, "10.0.0.9")  # refused even with the right password
    assert err.value.retry_after == timedelta(seconds=30)
    access.login("ann", PASSWORD, "10.0.0.1")  # another client is not slowed down
    clock.advance(30)
    access.login("ann", PASSWORD, "10.0.0.9")
    reasons = [a[2] for a in audit(store, "user.login") if a[1] == "denied"]
    assert reasons == ["bad credentials"] * 5 + ["throttled"]


def test_unknown_user_fails_like_a_wrong_password(access: AccessService, admin: Principal) -> None:
    with pytest.raises(Unauthenticated) as unknown:
        access.login("ghost", PASSWORD, "10.0.0.1")
    with pytest.raises(Unauthenticated) as no_password:
        access.login("admin", PASSWORD, "10.0.0.1")  # the bootstrap admin has none
    assert str(unknown.value) == str(no_password.value) == "wrong user name or password"


# -- tokens ---------------------------------------------------------------------------


def test_users_list_and_revoke_their_own_tokens_only(
    access: AccessService, admin: Principal, store: SqlStore
) -> None:
    ann = user_token(access, admin, "ann")
    bob = user_token(access, admin, "bob")
    _, anns = access.create_token(ann, "laptop", timedelta(days=30))
    assert "laptop" in [t.name for t in access.list_tokens(ann)]
    assert "laptop" not in [t.name for t in access.list_tokens(bob)]
    with pytest.raises(NotFound):
        access.revoke_token(bob, anns.id)
    assert audit(store, "token.revoke") == [("bob", "denied", "not the owner", None)]
    access.revoke_token(admin, anns.id)  # admins may revoke any
    with pytest.raises(NotFound):
        access.revoke_token(ann, 10_000)


def test_token_input_is_checked(access: AccessService, admin: Principal) -> None:
    with pytest.raises(Invalid):
        access.create_token(admin, "", None)
    with pytest.raises(Invalid):
        access.create_token(admin, "x", timedelta(0))


# -- job tokens (cases 20, 21) ----------------------------------------------------------


def test_job_token_acts_on_its_job_and_project_only(
    access: AccessService, admin: Principal, store: SqlStore, clock: FrozenClock
) -> None:
    a, b = project(store, "a"), project(store, "b")
    job_a, job_b = job(store, clock, a), job(store, clock, b)
    token = access.issue_job_token(job_a, clock.now() + timedelta(hours=1))
    principal = access.authenticate(token, allowed=frozenset({TokenKind.JOB}))
    assert principal.job_id == job_a and principal.user_id is None and not principal.is_admin
    access.require_job(principal, job_a, action="log.append")
    access.require(principal, a, Role.VIEWER, action="artifact.read")
    with pytest.raises(Forbidden):
        access.require_job(principal, job_b, action="log.append")
    with pytest.raises(Forbidden):
        access.require(principal, b, Role.VIEWER, action="artifact.read")
    with pytest.raises(Forbidden):
        access.require(principal, a, Role.DEVELOPER, action="run.create")
    with pytest.raises(Forbidden):
        access.create_token(principal, "escalate", None)
    assert (f"job:{job_a}", "denied", "job token of another project", b) in audit(
        store, "artifact.read"
    )


def test_job_token_is_refused_once_the_job_ends(
    access: AccessService, store: SqlStore, clock: FrozenClock
) -> None:
    job_id = job(store, clock, project(store, "a"))
    token = access.issue_job_token(job_id, clock.now() + timedelta(hours=1))
    jobs_only = frozenset({TokenKind.JOB})
    access.authenticate(token, allowed=jobs_only)
    complete(store, clock, job_id)
    access.revoke_job_tokens(job_id)
    clock.advance(60)  # reused a minute after the job ended
    with pytest.raises(Unauthenticated) as err:
        access.authenticate(token, allowed=jobs_only)
    assert err.value.reason == "revoked"
    with pytest.raises(Invalid):
        access.issue_job_token(job_id, clock.now() + timedelta(hours=1))
    assert [a[:2] for a in audit(store, "token.revoke_job")] == [("system", "allowed")]


def test_job_token_of_a_completed_job_is_refused_even_unrevoked(
    access: AccessService, store: SqlStore, clock: FrozenClock
) -> None:
    job_id = job(store, clock, project(store, "a"))
    token = access.issue_job_token(job_id, clock.now() + timedelta(hours=1))
    complete(store, clock, job_id)
    with pytest.raises(Unauthenticated) as err:
        access.authenticate(token, allowed=frozenset({TokenKind.JOB}))
    assert err.value.reason == "job finished"


def test_job_token_acts_on_nothing_but_its_own_end_once_its_run_is_cancelled(
    access: AccessService, store: SqlStore, clock: FrozenClock
) -> None:
    """A cancelled run's job still runs until its runner stops it: its token may report
    the job's end, and nothing else (SECURITY-CASES 20)."""
    a = project(store, "a")
    job_id = job(store, clock, a)
    with store.transaction() as tx:
        tx.jobs.set_status(job_id, Status.IN_PROGRESS, now=clock.now())
        run_id = tx.jobs.get(job_id).run_id  # type: ignore[union-attr]
    token = access.issue_job_token(job_id, clock.now() + timedelta(hours=1))
    principal = access.authenticate(token, allowed=frozenset({TokenKind.JOB}))
    access.require(principal, a, Role.VIEWER, action="git.fetch")
    with store.transaction() as tx:
        tx.runs.set_status(run_id, Status.IN_PROGRESS, now=clock.now())
        tx.runs.set_status(run_id, Status.COMPLETED, Conclusion.CANCELLED, now=clock.now())
    with pytest.raises(Forbidden):
        access.require(principal, a, Role.VIEWER, action="git.fetch")
    with pytest.raises(Forbidden):
        access.require_job(principal, job_id, action="deployment.request")
    access.require_job(principal, job_id, action="job.finish")  # its own end: still
    reasons = [r[2] for r in audit(store, "git.fetch") + audit(store, "deployment.request")]
    assert reasons == ["the job's run has ended (cancelled)"] * 2


def test_job_token_needs_a_job(access: AccessService, clock: FrozenClock) -> None:
    with pytest.raises(NotFound):
        access.issue_job_token(12345, clock.now() + timedelta(hours=1))
