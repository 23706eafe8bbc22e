"""schemathesis against the running app, on SQLite and PostgreSQL (issue 7, section 4).

The app is served in-process (schemathesis' ASGI transport: its own event loop thread, the
app's own lifespan and database) over a throwaway database with a superuser, whose token
every request carries, so the authenticated paths are explored too. Two runs per backend:
- stateless: every operation with generated valid and invalid requests;
- stateful: sequences linked by the responses (ids created by one call used by the next).
Every check schemathesis has must pass (no 5xx, no status the document does not list, no
body, header or content type outside it, schema-invalid data refused, ...) but one:
"schema-valid data accepted". JSON Schema cannot say what the service checks beyond it
(a cursor is a signed token, a tag name is printable text without "/", text holds no NUL
or lone surrogate, `password` needs `current_password`), so schema-valid requests can
rightly be refused with a documented 422.

Deterministic: Hypothesis derandomized with a fixed seed and a bounded number of examples,
no deadline (the shared machine's speed varies); its example database is off, so a run
does not depend on the one before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from sqlalchemy import delete, insert, text, update

from catalog.api.app import create_app
from catalog.db.database import SyncDatabase
from catalog.migrations.runner import upgrade
from catalog.models import User
from catalog.security import create_access_token, credential_stamp, hash_password
from tests.conftest import SECRET, make_settings, throwaway_database

SEED = 20261125
# Examples per operation (stateless) and state machine runs (stateful): a few minutes in
# total for both backends on 2 cores.
STATELESS_EXAMPLES = 100
STATEFUL_EXAMPLES = 100
SETTINGS = hypothesis.settings(
    derandomize=True,
    # No shrinking: replaying against a database that earlier steps changed is not a
    # replay; a failure is reported as found, with its curl command.
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all"},
        "checks": {"positive_data_acceptance": {"enabled": False}},  # see the docstring
        # Stateful runs follow links, so they send valid data: invalid data rarely gets past
        # the first step, and schemathesis reports a query string of `q=false` (its negative
        # example "array [false]", serialised) as invalid data accepted. The stateless
        # run checks the rejection of invalid data, operation by operation.
        "phases": {"stateful": {"max-steps": 8, "generation": {"mode": "positive"}}},
    }
)


@dataclass
class Api:
    """The loaded schema, the headers of its superuser, and a way to start afresh."""

    schema: Any
    headers: dict[str, str]
    database: SyncDatabase
    root: dict[str, Any]

    def reset(self) -> None:
        """Back to one superuser and nothing else, ids counting from 2 again: each
        stateful run starts from the same state, so the same choices replay the same."""
        with self.database.session_scope() as session:
            for table in ("item_tags", "items", "tags", "login_failures", "idempotency_keys"):
                session.execute(text(f"DELETE FROM {table}"))
            session.execute(delete(User).where(User.id != self.root["id"]))
            session.execute(update(User).where(User.id == self.root["id"]).values(self.root))
            session.execute(text(RESTART_IDS[self.database.engine.dialect.name]))


RESTART_IDS = {
    "sqlite": "UPDATE sqlite_sequence SET seq = CASE name WHEN 'users' THEN 1 ELSE 0 END",
    "postgresql": "SELECT setval('users_id_seq', 1), setval('items_id_seq', 1, false), "
    "setval('tags_id_seq', 1, false)",
}


@pytest.fixture(scope="module")
def api(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp: Path = tmp_path_factory.mktemp(f"schemathesis-{backend}")
    with throwaway_database(backend, tmp) as url:
        settings = make_settings(url)
        upgrade(settings)
        hashed = hash_password("root-password")
        root = {
            "id": 1,
            "email": "root@example.com",
            "hashed_password": hashed,
            "full_name": None,
            "is_active": True,
            "is_superuser": True,
            "version": 1,
        }
        database = SyncDatabase.from_settings(settings)
        try:
            with database.session_scope() as session:
                session.execute(insert(User).values(root))
            token = create_access_token(1, SECRET, 60, stamp=credential_stamp(hashed, SECRET))
            # No database passed: the app's lifespan opens its own, in schemathesis' loop.
            app = create_app(settings)
            schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
            yield Api(schema, {"Authorization": f"Bearer {token}"}, database, root)
        finally:
            database.dispose()


def test_stateless(api: Api) -> None:
    failures: list[str] = []
    sent: list[str] = []
    for result in api.schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.seed(SEED)
        @hypothesis.settings(SETTINGS, max_examples=STATELESS_EXAMPLES)
        def run(case: Any) -> None:
            sent.append(case.operation.label)
            case.call_and_validate(headers=api.headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as error:  # every operation, then report
            failures.append(f"{operation.label}: {error}")
    assert failures == [], "\n\n".join(failures)
    print(f"stateless: {len(sent)} requests")


def test_stateful(api: Api) -> None:
    machine = api.schema.as_state_machine()
    headers = api.headers
    calls: list[str] = []

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            api.reset()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            calls.append(case.operation.label)
            return {"headers": headers}

    hypothesis.seed(SEED)(Workflow.TestCase)
    schemathesis.generation.stateful.run_state_machine_as_test(
        Workflow,
        settings=hypothesis.settings(
            SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=8
        ),
    )

    # Not vacuous: links were followed (ids from one response used by the next call).
    assert {"DELETE /items/{item_id}", "PATCH /users/{user_id}"} <= set(calls), calls
    assert len(calls) > STATEFUL_EXAMPLES * 2
    print(f"stateful: {len(calls)} requests")
