"""No request, however malformed, produces a 500: schemathesis generates requests from the
app's own OpenAPI (valid and invalid ones) and each is sent signed out, and signed in by a
bearer token as an observer and as an admin, on SQLite and on PostgreSQL."""

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from sqlmodel import Session

from app.accounts import service as accounts
from tests.helpers import World

EXAMPLES_PER_OPERATION = 10


def _tokens(session: Session, world: World) -> dict[str, str]:
    headers = {"signed out": ""}
    for name, user in (("observer", world.observer), ("admin", world.admin)):
        raw, _token = accounts.create_token(session=session, user=user, name="fuzz")
        headers[name] = f"Bearer {raw}"
    session.commit()
    return headers


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_makes_a_server_error(
    app: FastAPI, ready: World, session: Session, mode: GenerationMode
) -> None:
    tokens = _tokens(session, ready)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path != "/logout":  # would end the sign-in of nobody; tested by hand
            operations.append(operation)
    assert len(operations) > 60
    failures: list[str] = []

    def send(case: schemathesis.Case) -> None:
        for who, authorization in tokens.items():
            headers = {"Authorization": authorization} if authorization else {}
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{who}: {case.method} {case.formatted_path} query={case.query} "
                    f"body={str(case.body)[:200]} -> {response.status_code}"
                )

    for operation in operations:
        run = settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )(given(case=operation.as_strategy(generation_mode=mode))(send))
        try:
            run()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE  # nothing in this operation can be invalid
    assert not failures, "\n".join(sorted(set(failures))[:40])
