"""LOGIN_FAILURE_WINDOW_SECONDS and LOGIN_LOCKOUT_MAX_SECONDS at non-default values, over HTTP.

Time passes by moving the recorded failures into the past (as tests/api/test_accounts.py
does), never by sleeping.
"""

from __future__ import annotations

import pytest

from catalog.api.app import create_app
from catalog.db.database import Database
from tests.api import age_login_failures, asgi_client, login
from tests.conftest import Account, make_settings

WINDOW = 60  # LOGIN_FAILURE_WINDOW_SECONDS here; the default is 900
LOCKOUT_MAX = 8  # LOGIN_LOCKOUT_MAX_SECONDS here; the default is 900


@pytest.mark.parametrize(
    ("idle", "statuses"),
    [
        (WINDOW + 1, [401, 401, 200]),  # forgotten: two more free failures, then in
        (WINDOW - 1, [401, 429, 429]),  # still counted: the fifth failure starts a block
    ],
)
async def test_failures_are_forgotten_after_the_configured_window(
    database_url: str, database: Database, user: Account, idle: int, statuses: list[int]
) -> None:
    app = create_app(make_settings(database_url, login_failure_window_seconds=WINDOW), database)
    async with asgi_client(app) as client:
        for n in range(4):  # one short of LOGIN_MAX_FAILURES (5)
            assert (await login(client, user.email, f"wrong-{n}")).status_code == 401
        await age_login_failures(database, idle)
        seen = [(await login(client, user.email, f"again-{n}")).status_code for n in range(2)]
        seen.append((await login(client, user.email, user.password)).status_code)
    # With the default window (900 s) both cases would be the second one.
    assert seen == statuses


async def test_the_back_off_stops_doubling_at_the_configured_cap(
    database_url: str, database: Database, user: Account
) -> None:
    app = create_app(make_settings(database_url, login_lockout_max_seconds=LOCKOUT_MAX), database)
    waits: list[int] = []
    async with asgi_client(app) as client:
        for _ in range(30):  # 5 free failures, then one failure and one 429 per block
            response = await login(client, user.email, "wrong")
            if response.status_code == 429:
                waits.append(int(response.headers["Retry-After"]))
                if len(waits) == 6:
                    break
                await age_login_failures(database, waits[-1])  # the block is over: fail again
    # Uncapped (or capped at the default 900 s) the fifth and sixth would be 16 and 32.
    assert waits == [1, 2, 4, LOCKOUT_MAX, LOCKOUT_MAX, LOCKOUT_MAX]
