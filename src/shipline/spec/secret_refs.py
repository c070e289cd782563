"""Which secrets a job's definition names: the only ones the server will deliver to it;
and whether it may reach its job token at all (`may_reach_job_token`).

Every string of the job (its steps' `run`, `env`, `with`, `if`, names, working
directories; the job's `env`, `outputs`, `if`; the workflow's `env`) is read as a template
and each expression's static references to the `secrets` context are collected. A
reference the analysis cannot name (`secrets[matrix.name]`, `toJSON(secrets)`) is reported
as dynamic: the server delivers nothing for it, so such a job only gets the secrets it
names literally.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from shipline.spec.expressions import (
    Expr,
    ExpressionError,
    parse_expression,
    parse_template,
    references,
)
from shipline.spec.models import JobSpec, WorkflowSpec

# GitHub provides this one to every job itself (the job token): not a stored secret.
JOB_TOKEN_NAMES = frozenset({"GITHUB_TOKEN"})


@dataclass(frozen=True, slots=True)
class SecretReferences:
    """The secret names a job uses literally (upper-cased), and whether it also indexes
    `secrets` in a way only known at run time."""

    names: frozenset[str] = frozenset()
    dynamic: bool = False


def _strings(value: object) -> list[str]:
    """Every string inside a spec value (dataclasses, tuples, lists, dicts)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        elif isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return found


T = TypeVar("T")
# Answers by the identity of the (immutable) workflow and job specs: a run's plan keeps its
# specs, so the jobs of a matrix are read once. Bounded; the oldest go first.
_ANSWERS: dict[tuple[str, int, int], tuple[WorkflowSpec, JobSpec, object]] = {}
_ANSWERS_SIZE = 4096
_ANSWERS_LOCK = threading.Lock()


def _remembered(what: str, workflow: WorkflowSpec, job: JobSpec, compute: Callable[[], T]) -> T:
    key = (what, id(workflow), id(job))
    with _ANSWERS_LOCK:
        known = _ANSWERS.get(key)
    if known is not None and known[0] is workflow and known[1] is job:
        return cast(T, known[2])
    answer = compute()
    with _ANSWERS_LOCK:
        if len(_ANSWERS) >= _ANSWERS_SIZE:
            del _ANSWERS[next(iter(_ANSWERS))]
        _ANSWERS[key] = (workflow, job, answer)
    return answer


def job_secret_references(workflow: WorkflowSpec, job: JobSpec) -> SecretReferences:
    """The secrets `job` of `workflow` references (see the module's docstring)."""
    return _remembered("secrets", workflow, job, lambda: _secret_references(workflow, job))


def _secret_references(workflow: WorkflowSpec, job: JobSpec) -> SecretReferences:
    names: set[str] = set()
    dynamic = False
    texts = _strings(workflow.env) + _strings(job)
    conditions = [job.if_, *(step.if_ for step in job.steps)]
    for text in texts:
        if "secrets" not in text.lower():
            continue
        exprs = _expressions(text, conditions)
        if exprs is None:
            continue  # lint reports it; the job fails when it evaluates it
        for expr in exprs:
            for ref in references(expr):
                if ref.context != "secrets":
                    continue
                if ref.path and ref.path[0] is not None:
                    names.add(ref.path[0].upper())
                else:
                    dynamic = True
    return SecretReferences(frozenset(names - JOB_TOKEN_NAMES), dynamic)


def _expressions(text: str, conditions: list[str | None]) -> list[Expr] | None:
    """The expressions of one string of a job (a bare `if:` is one); None when they do
    not parse."""
    try:
        if text in conditions and "${{" not in text:
            return [parse_expression(text)]
        return [p.expr for p in parse_template(text).parts if p.expr is not None]
    except ExpressionError:
        return None


def may_reach_job_token(workflow: WorkflowSpec, job: JobSpec) -> bool:
    """Whether `job`'s steps may see its job token: a `uses:` step (an action may take
    the token itself, as `shipline/deploy` does), or an expression that names
    `github.token` or `secrets.GITHUB_TOKEN`, or reads `github` or `secrets` whole or by
    a key known only at run time (`toJSON(github)`, `secrets[name]`). One that does not
    parse counts too. Where none of these is there, nothing of the job can read the token,
    and a runner that needs none for itself (the embedded one) need not issue it."""
    return _remembered("token", workflow, job, lambda: _reaches_token(workflow, job))


def _reaches_token(workflow: WorkflowSpec, job: JobSpec) -> bool:
    if any(step.uses is not None for step in job.steps):
        return True
    conditions = [job.if_, *(step.if_ for step in job.steps)]
    for text in _strings(workflow.env) + _strings(job):
        lowered = text.lower()
        if "github" not in lowered and "secrets" not in lowered:
            continue
        exprs = _expressions(text, conditions)
        if exprs is None:
            return True
        for expr in exprs:
            for ref in references(expr):
                if ref.context not in ("github", "secrets"):
                    continue
                if not ref.path or ref.path[0] is None or ref.path[0] == "*":
                    return True
                name = ref.path[0]
                if (ref.context, name) == ("github", "token") or name.upper() in JOB_TOKEN_NAMES:
                    return True
    return False
