"""Property-based checks of the served OpenAPI document: whatever schemathesis sends to
any operation, the server answers without a 5xx.

Bounded (25 examples per operation, derandomized, no example database) so that it stays well under a minute.
Each case gets a fresh admin token, so that a generated `DELETE /tokens/{id}` revoking an
earlier one does not turn the rest of the run into 401s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from shipline.domain.records import TokenKind
from shipline.engine.access import AccessService, Principal
from shipline.server.app import create_app
from tests.integration.api.conftest import build


class World:
    access: AccessService
    admin: Principal


WORLD = World()


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, source: Path
) -> Iterator[schemathesis.BaseSchema]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    context, store, access, token = build(tmp, source)
    context.log_stream_timeout = 0.3  # a followed log of a job that never ends
    app = create_app(context)
    with TestClient(app) as client:  # a project with a run, so that ids 1.. exist
        headers = {"Authorization": f"Bearer {token}"}
        made = client.post(
            "/api/v1/projects", json={"name": "app", "repository": str(source)}, headers=headers
        )
        assert made.status_code == 201
        run = client.post("/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=headers)
        assert run.status_code == 201
    with store.transaction() as tx:
        admin = tx.users.get("admin")
    assert admin is not None
    WORLD.access = access
    WORLD.admin = Principal(admin.id, admin.name, True, 0, TokenKind.USER)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def _in_seeded_project(case: schemathesis.Case) -> schemathesis.Case:
    """The case aimed at the seeded project (a random name is only ever a 404)."""
    case.path_parameters = {**(case.path_parameters or {}), "project": "app"}
    return case


def test_no_operation_answers_with_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # (`schema.parametrize` over `schemathesis.pytest.from_fixture` does not run on pytest 9:
    # each operation is driven by hypothesis here instead.)
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 18
    # Deletions last, so that the seeded project and its run serve the other operations.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    for operation in operations:
        strategy = operation.as_strategy()
        if operation.method.upper() != "DELETE" and "{project}" in operation.path:
            strategy = strategy.map(_in_seeded_project) | strategy

        @given(case=strategy)
        @settings(
            max_examples=25,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            token, _ = WORLD.access.create_token(WORLD.admin, "schemathesis", None)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
            )

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
