"""CSRF: every state-changing admin request needs the session's token, login included.

A forged request carries the victim's cookie but cannot read the token out of the admin's
pages; each test below sends one and checks it is refused (403) with nothing changed,
next to the same request with the token, which goes through.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from catalog.admin.middleware import CSRF_FIELD, CSRF_HEADER, MAX_BODY_BYTES, REFUSED
from tests.admin.conftest import Admin
from tests.conftest import Account

ITEM_FORM = {"name": "Lamp", "price": "99.00", "is_active": "y", "tags": "", "save": "Save"}


async def make_item(admin: Admin, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Lamp", "price": 10, **fields}
    response = await admin.client.post("/items", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def read_item(admin: Admin, item_id: int) -> dict[str, Any]:
    item: dict[str, Any] = (await admin.client.get(f"/items/{item_id}")).json()
    return item


async def price_of(admin: Admin, item_id: int) -> Decimal:
    return Decimal(str((await read_item(admin, item_id))["price"]))


async def test_login_without_the_token_is_refused(admin: Admin, superuser: Account) -> None:
    await admin.get("/admin/login")
    credentials = {"username": superuser.email, "password": superuser.password}
    response = await admin.post_form("/admin/login", credentials, with_token=False)
    assert response.status_code == 403
    assert response.text == REFUSED
    assert (await admin.get("/admin/user/list")).status_code == 302  # not signed in


async def test_login_without_a_session_is_refused(admin: Admin, superuser: Account) -> None:
    """A forged login (login CSRF) from a page that never loaded the form has no token."""
    credentials = {"username": superuser.email, "password": superuser.password}
    response = await admin.client.post("/admin/login", data={**credentials, CSRF_FIELD: "x"})
    assert response.status_code == 403


async def test_an_edit_without_the_token_is_refused(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user)
    edit = f"/admin/item/edit/{item['id']}"
    await signed_in.get(edit)

    forged = await signed_in.post_form(edit, ITEM_FORM, with_token=False)
    assert forged.status_code == 403
    assert await price_of(signed_in, item["id"]) == Decimal(10)

    for wrong in ("not-the-token", "tökén", signed_in.token[:-1]):
        response = await signed_in.client.post(edit, data={**ITEM_FORM, CSRF_FIELD: wrong})
        assert response.status_code == 403, wrong
        # Read back now: the genuine edit below sets the same 99.
        assert await price_of(signed_in, item["id"]) == Decimal(10), wrong

    genuine = await signed_in.post_form(edit, ITEM_FORM)
    assert genuine.status_code == 302
    assert await price_of(signed_in, item["id"]) == Decimal("99.00")


async def test_the_token_may_come_in_the_header(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user)
    response = await signed_in.client.post(
        f"/admin/item/edit/{item['id']}", data=ITEM_FORM, headers={CSRF_HEADER: signed_in.token}
    )
    assert response.status_code == 302
    assert await price_of(signed_in, item["id"]) == Decimal("99.00")  # the edit landed


async def test_a_multipart_form_carries_the_token_too(signed_in: Admin, user: Account) -> None:
    """sqladmin's edit forms are multipart/form-data."""
    item = await make_item(signed_in, user)
    path = f"/admin/item/edit/{item['id']}"
    parts = {name: (None, value) for name, value in ITEM_FORM.items()}
    forged = await signed_in.client.post(path, files=parts)
    assert forged.status_code == 403
    assert await price_of(signed_in, item["id"]) == Decimal(10)  # nothing changed
    genuine = await signed_in.client.post(
        path, files={**parts, CSRF_FIELD: (None, signed_in.token)}
    )
    assert genuine.status_code == 302
    assert await price_of(signed_in, item["id"]) == Decimal("99.00")


async def test_a_delete_without_the_header_is_refused(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user)
    path = f"/admin/item/delete?pks={item['id']}"
    assert (await signed_in.delete(path, with_token=False)).status_code == 403
    assert (await signed_in.client.get(f"/items/{item['id']}")).status_code == 200
    assert (await signed_in.delete(path)).status_code == 200
    assert (await signed_in.client.get(f"/items/{item['id']}")).status_code == 404


async def test_logout_needs_the_token(signed_in: Admin) -> None:
    """A forged logout link (an <img src=...>, say) does not end the session."""
    assert (await signed_in.get("/admin/logout")).status_code == 403
    assert (await signed_in.get("/admin/user/list")).status_code == 200


async def test_logout_without_a_session_goes_to_the_login_page(admin: Admin) -> None:
    """A stale page's logout link after the session expired: nothing to end, no error."""
    response = await admin.client.get("/admin/logout")
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login"


async def test_the_token_changes_at_login(admin: Admin, superuser: Account, fetch: Any) -> None:
    """A token seen before signing in (e.g. planted by an attacker) is worthless after."""
    await admin.get("/admin/login")
    before = admin.token
    await admin.sign_in(superuser.email, superuser.password)
    assert admin.token != before
    response = await admin.client.post(
        "/admin/tag/create", data={"name": "x", "save": "Save", CSRF_FIELD: before}
    )
    assert response.status_code == 403
    assert await fetch("SELECT name FROM tags") == []


async def test_a_huge_body_is_refused_before_it_is_parsed(signed_in: Admin, fetch: Any) -> None:
    # A valid form made huge by a field the form ignores: parsed, it would create tag "x".
    form = {"name": "x", "save": "Save"}
    response = await signed_in.post_form(
        "/admin/tag/create", form | {"padding": "x" * MAX_BODY_BYTES}
    )
    assert response.status_code == 413
    assert await fetch("SELECT name FROM tags") == []

    small = await signed_in.post_form("/admin/tag/create", form | {"padding": "x"})
    assert small.status_code == 302  # the same form under the limit goes through
    assert await fetch("SELECT name FROM tags") == [("x",)]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_every_unsafe_method_is_checked(signed_in: Admin, method: str) -> None:
    response = await signed_in.client.request(method, "/admin/tag/create")
    assert response.status_code == 403
