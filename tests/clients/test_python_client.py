"""The generated Python client (clients/python/catalog_client) drives a whole flow.

Register, log in, create an item with an Idempotency-Key and retry it, page through a
list by cursor, update with If-Match, and get 412 for a stale version: what a consumer
of the published OpenAPI document does, through the code generated from it.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import unquote

# clients/python is on pytest's `pythonpath` (pyproject.toml) and mypy's `mypy_path`.
from catalog_client import AuthenticatedClient, Client
from catalog_client.api.auth import login
from catalog_client.api.items import create_item, list_items, patch_item, read_item
from catalog_client.api.users import read_me, register
from catalog_client.models import (
    BodyLogin,
    ItemCreate,
    ItemRead,
    ItemUpdate,
    Token,
    UserCreate,
    UserRead,
)
from catalog_client.types import UNSET
from clients.generate import CLIENTS

NEXT = re.compile(r'<([^>]*)>;\s*rel="next"')


def _next_cursor(link: str | None) -> str | None:
    """The `cursor` of the Link header's rel="next" target, if there is one."""
    match = NEXT.search(link or "")
    if match is None:
        return None
    found = re.search(r"[?&]cursor=([^&]+)", match.group(1))
    assert found is not None, f"a next link without a cursor: {link}"
    return unquote(found.group(1))


def test_python_client_flow(served: str) -> None:
    email, password = f"client-{uuid.uuid4().hex[:8]}@example.com", "a long passphrase 1"
    anonymous = Client(base_url=served, raise_on_unexpected_status=True)

    registered = register.sync_detailed(
        client=anonymous, body=UserCreate(email=email, password=password)
    )
    assert registered.status_code == 201
    assert isinstance(registered.parsed, UserRead)

    token = login.sync(client=anonymous, body=BodyLogin(username=email, password=password))
    assert isinstance(token, Token)
    client = AuthenticatedClient(base_url=served, token=token.access_token)
    me = read_me.sync(client=client)
    assert isinstance(me, UserRead)
    assert me.email == email

    key = uuid.uuid4().hex
    body = ItemCreate(name="lamp", price="12.50", tags=["client-flow"])
    first = create_item.sync_detailed(client=client, body=body, idempotency_key=key)
    retry = create_item.sync_detailed(client=client, body=body, idempotency_key=key)
    assert first.status_code == retry.status_code == 201
    assert isinstance(first.parsed, ItemRead)
    assert isinstance(retry.parsed, ItemRead)
    assert retry.parsed.id == first.parsed.id
    assert retry.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers

    created = [first.parsed.id]
    for n in range(4):
        more = create_item.sync(client=client, body=ItemCreate(name=f"item {n}", price="1"))
        assert isinstance(more, ItemRead)
        created.append(more.id)

    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):  # 5 items, 2 a page: 3 pages, then no next link
        page = list_items.sync_detailed(
            client=anonymous, owner_id=me.id, limit=2, cursor=cursor or UNSET
        )
        assert page.status_code == 200
        assert isinstance(page.parsed, list)
        seen += [item.id for item in page.parsed]
        cursor = _next_cursor(page.headers.get("link"))
        if cursor is None:
            break
    assert seen == sorted(created)

    etag = first.headers["etag"]
    changed = patch_item.sync_detailed(
        first.parsed.id, client=client, body=ItemUpdate(name="brighter lamp"), if_match=etag
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    stale = patch_item.sync_detailed(
        first.parsed.id, client=client, body=ItemUpdate(name="lost update"), if_match=etag
    )
    assert stale.status_code == 412
    current = read_item.sync(first.parsed.id, client=anonymous)
    assert isinstance(current, ItemRead)
    assert current.name == "brighter lamp"


def test_generated_package_is_the_committed_one() -> None:
    import catalog_client

    assert Path(catalog_client.__file__).parent == CLIENTS / "python" / "catalog_client"
