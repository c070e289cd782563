"""Secrets of projects and environments: set, list, delete, deliver, rotate the key.

Values are sealed (AES-256-GCM, `security.sealing`) before they reach the store and opened
only to hand a claimed job the secrets it references (`for_job`). Nothing here returns a
value to a caller other than a runner's job, and no message contains one. Every change and
every delivery (or refusal to deliver) writes an audit record naming the secrets, never
their values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shipline.domain.clock import Clock
from shipline.domain.deployments import GateState
from shipline.domain.records import JobRecord, Role, RunRecord, SecretRecord, Trust
from shipline.engine.errors import Conflict, Invalid, NotFound
from shipline.engine.principal import Principal
from shipline.engine.projects import ProjectService
from shipline.plan.compile import PlannedJob
from shipline.security.sealing import Keyring, MasterKey, Sealed, associated_data
from shipline.spec.models import WorkflowSpec
from shipline.spec.secret_refs import JOB_TOKEN_NAMES, job_secret_references
from shipline.store.ports import SealedValue, Store, Transaction

__all__ = ["MIN_VALUE_LENGTH", "SecretInfo", "SecretService", "reseal_all"]

# Shorter values cannot be masked without turning ordinary words of a log into `***`
# (and a masked 3-letter value tells a reader which words it is not).
MIN_VALUE_LENGTH = 4
# Below this many characters a value is kept and masked, with a warning: a short value also
# matches ordinary output (which then shows `***`), and what is masked hints at the value.
WEAK_VALUE_LENGTH = 8
# Values that appear in ordinary output and are the first guesses anyway (compared without
# case): kept and masked, with a warning.
COMMON_VALUES = frozenset(
    (
        "admin", "administrator", "changeme", "default", "develop", "development", "guest",
        "letmein", "localhost", "master", "password", "passw0rd", "postgres", "production",
        "qwerty", "root", "secret", "staging", "testing", "welcome", "1234", "12345",
        "123456", "1234567", "12345678", "123456789", "0000", "true", "false", "null",
        "none", "main", "test", "user", "demo", "example",
    )
)  # fmt: skip
MAX_VALUE_BYTES = 48 * 1024  # GitHub's limit
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z", re.ASCII)
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,254}\Z", re.ASCII)
SYSTEM_ACTOR = "shipline"


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a secret: where it applies and who changed it when."""

    name: str
    environment: str
    updated_by: str
    created_at: datetime
    updated_at: datetime
    # Why the value just set masks poorly (`weak_value_warnings`); only when setting it.
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, record: SecretRecord, warnings: tuple[str, ...] = ()) -> SecretInfo:
        return cls(
            record.name,
            record.environment,
            record.updated_by,
            record.created_at,
            record.updated_at,
            warnings,
        )


def check_name(name: str) -> str:
    """The secret's name, upper-cased (names are case-insensitive, as on GitHub)."""
    if not _NAME.match(name):
        raise Invalid(
            "a secret name is letters, digits and '_', not starting with a digit "
            "(at most 255 characters)",
            field="name",
        )
    upper = name.upper()
    if upper.startswith(("GITHUB_", "SHIPLINE_")) or upper in JOB_TOKEN_NAMES:
        raise Invalid(
            f"secret names may not start with GITHUB_ or SHIPLINE_ ({name!r}): those "
            "variables are set by Shipline itself",
            field="name",
        )
    return upper


def check_environment(environment: str) -> str:
    if environment and not _ENVIRONMENT.match(environment):
        raise Invalid(
            "an environment name is letters, digits, '.', '_', '-' or spaces (at most 255)",
            field="environment",
        )
    return environment


def weak_value_warnings(value: str) -> tuple[str, ...]:
    """Why a value that is accepted still masks poorly (SECURITY-CASES case 14)."""
    stripped = value.strip()
    if stripped.lower() in COMMON_VALUES:
        return (
            "this value is a common word: it also appears in ordinary output, which will show "
            "*** in its place, and it is among the first an attacker guesses",
        )
    if len(stripped) < WEAK_VALUE_LENGTH:
        return (
            f"this value has fewer than {WEAK_VALUE_LENGTH} characters: it is masked, but "
            "it may also match ordinary output (shown as ***), and a short value is easily "
            "guessed",
        )
    return ()


def check_value(value: str) -> None:
    stripped = value.strip()
    if len(stripped) < MIN_VALUE_LENGTH:
        raise Invalid(
            f"a secret value must have at least {MIN_VALUE_LENGTH} characters (not counting "
            "surrounding whitespace): shorter values cannot be masked in logs without "
            "hiding ordinary text, and a short value is guessed anyway",
            field="value",
        )
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise Invalid(f"a secret value is at most {MAX_VALUE_BYTES} bytes", field="value")
    if "\0" in value:
        raise Invalid("a secret value cannot contain NUL characters", field="value")


def _aad(record: SecretRecord) -> bytes:
    return associated_data(record.project_id, record.environment, record.name)


def _sealed(record: SecretRecord) -> Sealed:
    return Sealed(record.key_id, record.nonce, record.ciphertext)


def _value(sealed: Sealed) -> SealedValue:
    return SealedValue(sealed.key_id, sealed.nonce, sealed.ciphertext)


class SecretService:
    """Secrets over a `Store`; `keyring` gives the master keys (read again on each use,
    so that a key rotated by `shipline secrets rotate-key` is picked up)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        keyring: Callable[[], Keyring] | None,
        projects: ProjectService,
    ) -> None:
        self._store = store
        self._clock = clock
        self._keyring = keyring
        self._projects = projects

    def _keys(self) -> Keyring:
        if self._keyring is None:
            raise Conflict("this server has no master key for secrets, so it keeps none")
        return self._keyring()

    # -- managing --------------------------------------------------------------------

    def set(
        self,
        actor: Principal,
        project_name: str,
        name: str,
        value: str,
        *,
        environment: str = "",
        request_id: str = "",
    ) -> tuple[SecretInfo, bool]:
        """Create or replace a secret (maintainer and up); True when it was created."""
        project = self._projects.authorize(
            actor, project_name, Role.MAINTAINER, action="secret.set", request_id=request_id
        )
        name = check_name(name)
        environment = check_environment(environment)
        check_value(value)
        warnings = weak_value_warnings(value)
        sealed = self._keys().seal(value, associated_data(project.id, environment, name))
        now = self._clock.now()
        with self._store.transaction() as tx:
            record, created = tx.secrets.put(
                project.id, environment, name, _value(sealed), actor=actor.user_name, now=now
            )
            tx.audit.append(
                actor=actor.user_name,
                action="secret.set",
                now=now,
                project_id=project.id,
                target=_target(name, environment),
                request_id=request_id,
                data={
                    "name": name,
                    "environment": environment,
                    "created": created,
                    "weak": bool(warnings),
                },
            )
        return SecretInfo.of(record, warnings), created

    def list(
        self, actor: Principal, project_name: str, *, request_id: str = ""
    ) -> list[SecretInfo]:
        """The project's secrets (developer and up): names and scopes, never values."""
        project = self._projects.authorize(
            actor, project_name, Role.DEVELOPER, action="secret.list", request_id=request_id
        )
        with self._store.transaction(write=False) as tx:
            records = tx.secrets.for_project(project.id)
        return [SecretInfo.of(r) for r in records]

    def remove(
        self,
        actor: Principal,
        project_name: str,
        name: str,
        *,
        environment: str = "",
        request_id: str = "",
    ) -> None:
        """Delete a secret (maintainer and up); `NotFound` when there is none."""
        project = self._projects.authorize(
            actor, project_name, Role.MAINTAINER, action="secret.delete", request_id=request_id
        )
        name = check_name(name)
        environment = check_environment(environment)
        with self._store.transaction() as tx:
            if not tx.secrets.delete(project.id, environment, name):
                raise NotFound(f"no secret {_target(name, environment)}", field="name")
            tx.audit.append(
                actor=actor.user_name,
                action="secret.delete",
                now=self._clock.now(),
                project_id=project.id,
                target=_target(name, environment),
                request_id=request_id,
                data={"name": name, "environment": environment},
            )

    # -- delivery --------------------------------------------------------------------

    def for_job(
        self, run: RunRecord, job: JobRecord, planned: PlannedJob, workflow: WorkflowSpec
    ) -> dict[str, str]:
        """The values a claimed job may receive: the secrets its definition names, of its
        project and (when the job targets one) its environment — none for an untrusted
        run. The delivery, or the refusal, is audited with the names only."""
        refs = job_secret_references(workflow, planned.spec)
        if not refs.names:
            return {}
        environment = _environment(planned)
        now = self._clock.now()
        target = f"job:{job.id}"
        with self._store.transaction() as tx:
            if run.trust is not Trust.TRUSTED:
                _refuse(
                    tx,
                    now,
                    run.project_id,
                    target,
                    f"run {run.id} is {run.trust}: untrusted runs receive no secrets",
                    {"run": run.id, "job": planned.key, "names": sorted(refs.names)},
                )
                return {}
            records = tx.secrets.for_project(run.project_id)
            if environment and planned.spec.unsafe_execute_untrusted_code:
                # The job runs a pull request's code on purpose: never an environment's
                # secrets (SECURITY-CASES 3).
                _refuse(
                    tx,
                    now,
                    run.project_id,
                    target,
                    f"job {planned.key} sets unsafe_execute_untrusted_code",
                    {"run": run.id, "job": planned.key, "environment": environment},
                )
                environment = ""
            if environment and not _approved(tx, job.id):
                # Environment secrets only once the environment's gate approved the job
                # (SECURITY-CASES 18); its project secrets are delivered as usual.
                _refuse(
                    tx,
                    now,
                    run.project_id,
                    target,
                    f"job {job.id} has no approval for environment {environment}",
                    {"run": run.id, "job": planned.key, "environment": environment},
                )
                environment = ""
            chosen: dict[str, SecretRecord] = {}
            for record in records:  # project scope first, the environment's wins
                if record.name in refs.names and record.environment == "":
                    chosen[record.name] = record
            for record in records:
                if record.name in refs.names and environment and record.environment == environment:
                    chosen[record.name] = record
            keyring = self._keys()
            values = {name: keyring.open(_sealed(r), _aad(r)) for name, r in chosen.items()}
            tx.audit.append(
                actor=SYSTEM_ACTOR,
                action="secret.deliver",
                now=now,
                project_id=run.project_id,
                target=target,
                data={
                    "run": run.id,
                    "job": planned.key,
                    "names": sorted(values),
                    "environment": environment,
                    "missing": sorted(refs.names - set(values)),
                },
            )
        return values

    def values_for_masking(self, project_id: int) -> tuple[str, ...]:
        """Every value of the project's secrets (all environments), for the server's own
        masker of what runners send (`engine.joblog.JobMaskers`): they stay in this
        process, so this is not a delivery and is not audited as one."""
        if self._keyring is None:
            return ()
        with self._store.transaction(write=False) as tx:
            records = tx.secrets.for_project(project_id)
        keyring = self._keys()
        return tuple(keyring.open(_sealed(r), _aad(r)) for r in records)

    def for_deployment(
        self, project_id: int, environment: str, deployment_id: int
    ) -> dict[str, str]:
        """The values of an environment's own secrets for the instances of a deployment
        that passed its gates and verification (the deployment worker calls this just
        before the rollout); none when the deployment comes from an untrusted run.
        Audited with the names only."""
        now = self._clock.now()
        with self._store.transaction() as tx:
            records = [
                r for r in tx.secrets.for_project(project_id) if r.environment == environment
            ]
            if not records:
                return {}
            deployment = tx.deployments.get(deployment_id)
            run = tx.runs.get(deployment.run_id) if deployment and deployment.run_id else None
            if run is not None and run.trust is not Trust.TRUSTED:
                # An environment may let untrusted runs deploy (allow_untrusted); their
                # instances still get none of its secrets, as their jobs get none.
                _refuse(
                    tx,
                    now,
                    project_id,
                    f"deployment:{deployment_id}",
                    f"run {run.id} is {run.trust}: untrusted runs receive no secrets",
                    {"environment": environment, "names": sorted(r.name for r in records)},
                )
                return {}
            keyring = self._keys()
            values = {r.name: keyring.open(_sealed(r), _aad(r)) for r in records}
            tx.audit.append(
                actor=SYSTEM_ACTOR,
                action="secret.deliver",
                now=now,
                project_id=project_id,
                target=f"deployment:{deployment_id}",
                data={"names": sorted(values), "environment": environment},
            )
        return values


def reseal_all(store: Store, clock: Clock, old: Keyring, new: MasterKey) -> int:
    """Re-seal every secret under `new` in one transaction (writers of secrets wait);
    returns how many secrets there are. A value `old` cannot open raises `SealError` and
    nothing changes."""
    target = Keyring(new)
    with store.transaction() as tx:
        records = tx.secrets.all(lock=True)
        for record in records:
            if record.key_id == new.id:
                continue
            value = old.open(_sealed(record), _aad(record))
            tx.secrets.reseal(record.id, _value(target.seal(value, _aad(record))))
        tx.audit.append(
            actor=SYSTEM_ACTOR,
            action="secret.rotate_key",
            now=clock.now(),
            target=f"key:{new.id}",
            data={"secrets": len(records), "from": old.current.id, "to": new.id},
        )
    return len(records)


def _approved(tx: Transaction, job_id: int) -> bool:
    gate = tx.gates.for_job(job_id)
    return gate is not None and gate.state is GateState.APPROVED


def _target(name: str, environment: str) -> str:
    return f"{name}@{environment}" if environment else name


def _environment(planned: PlannedJob) -> str:
    """The environment the job targets, when it is named literally (an expression in the
    name gets no environment secrets)."""
    env = planned.spec.environment
    if env is None or "${{" in env.name:
        return ""
    return env.name


def _refuse(
    tx: Transaction,
    now: datetime,
    project_id: int,
    target: str,
    reason: str,
    data: dict[str, object],
) -> None:
    """Audit a refused delivery: what was refused to whom and why, with names only."""
    tx.audit.append(
        actor=SYSTEM_ACTOR,
        action="secret.deliver",
        now=now,
        decision="denied",
        project_id=project_id,
        target=target,
        reason=reason,
        data=data,
    )
