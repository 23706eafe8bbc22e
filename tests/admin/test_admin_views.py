"""The admin's pages: list, search, sort and edit users, items and tags, through the services.

Each write is checked where the API would see it (its endpoints, its tokens): the admin
keeps the API's rules because it calls the same service functions.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.admin.conftest import Admin
from tests.conftest import Account, MakeUser, sqlite_only

_ROW_IDS = re.compile(r'<input type="hidden" value="(\d+)">')
_LINKS = re.compile(r'\b(?:src|href|action)="([^"]*)"')
_CSS_URLS = re.compile(r"url\(\s*['\"]?([^'\")]+)")


def row_ids(html: str) -> list[int]:
    """The ids of a list page's rows, in page order."""
    return [int(found) for found in _ROW_IDS.findall(html)]


async def make_item(admin: Admin, owner: Account, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "price": 10, **fields}
    response = await admin.client.post("/items", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def api_item(admin: Admin, item_id: int) -> dict[str, Any]:
    response = await admin.client.get(f"/items/{item_id}")
    assert response.status_code == 200
    item: dict[str, Any] = response.json()
    return item


def item_form(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The edit form as the page submits it: every field, the changes applied."""
    form = {
        "name": item["name"],
        "description": item["description"] or "",
        "price": str(item["price"]),
        "tags": ", ".join(item["tags"]),
        "save": "Save",
    }
    if item["is_active"]:
        form["is_active"] = "y"
    return form | changes


# --- lists: search and sort ----------------------------------------------------------------


async def test_items_are_searched_by_name_like_the_apis_q(signed_in: Admin, user: Account) -> None:
    lamp = await make_item(signed_in, user, "Desk LAMP")
    apple = await make_item(signed_in, user, "Äpfel")
    percent = await make_item(signed_in, user, "100% cotton")
    await make_item(signed_in, user, "Chair")

    async def found(term: str) -> list[int]:
        page = await signed_in.get("/admin/item/list", params={"search": term})
        assert page.status_code == 200
        return row_ids(page.text)

    assert await found("lamp") == [lamp["id"]]
    assert await found("äPFEL") == [apple["id"]]  # case folded beyond ASCII
    assert await found("%") == [percent["id"]]  # wildcards are literal
    assert await found("\x00") == []  # no stored text holds NUL (PostgreSQL cannot)


async def test_items_sort_by_price_both_ways(signed_in: Admin, user: Account) -> None:
    cheap = await make_item(signed_in, user, "a", price=1)
    dear = await make_item(signed_in, user, "b", price=300)
    middle = await make_item(signed_in, user, "c", price=20)
    ascending = await signed_in.get("/admin/item/list", params={"sortBy": "price", "sort": "asc"})
    assert row_ids(ascending.text) == [cheap["id"], middle["id"], dear["id"]]
    descending = await signed_in.get("/admin/item/list", params={"sortBy": "price", "sort": "desc"})
    assert row_ids(descending.text) == [dear["id"], middle["id"], cheap["id"]]


async def test_users_are_searched_by_email_and_sorted(
    signed_in: Admin, superuser: Account, make_user: MakeUser
) -> None:
    zed = await make_user("zed@example.com", full_name="Zed")
    amy = await make_user("amy@example.com")
    page = await signed_in.get("/admin/user/list", params={"search": "ZED@"})
    assert row_ids(page.text) == [zed.id]
    page = await signed_in.get("/admin/user/list", params={"sortBy": "email", "sort": "asc"})
    assert row_ids(page.text) == [amy.id, superuser.id, zed.id]


async def test_an_unknown_sort_column_is_a_bad_request(signed_in: Admin) -> None:
    page = await signed_in.get("/admin/user/list", params={"sortBy": "hashed_password"})
    assert page.status_code == 400


async def test_no_page_shows_a_password_hash(signed_in: Admin, user: Account) -> None:
    for path in (f"/admin/user/details/{user.id}", f"/admin/user/edit/{user.id}"):
        page = await signed_in.get(path)
        assert page.status_code == 200
        assert "$argon2" not in page.text
        assert "hashed_password" not in page.text


@pytest.mark.parametrize("pk", ["abc", "0", "99999999999", "-1"])
async def test_ids_that_cannot_exist_are_404(signed_in: Admin, pk: str) -> None:
    assert (await signed_in.get(f"/admin/item/edit/{pk}")).status_code == 404
    assert (await signed_in.get(f"/admin/user/details/{pk}")).status_code == 404


@sqlite_only
async def test_pages_read_without_taking_the_write_lock(
    signed_in: Admin, user: Account, database_url: str
) -> None:
    """sqladmin reads in sessions of their own: on SQLite they must not begin a write
    transaction (the writers' lock, taken in turns through the unit of work)."""
    item = await make_item(signed_in, user, "Lamp")
    path = make_url(database_url).database
    assert path is not None
    with closing(sqlite3.connect(path, isolation_level=None)) as other_writer:
        other_writer.execute("BEGIN IMMEDIATE")
        try:
            for page in ("/admin/item/list", f"/admin/item/edit/{item['id']}", "/admin/tag/list"):
                assert (await signed_in.get(page)).status_code == 200, page
        finally:
            other_writer.execute("ROLLBACK")


# --- items ------------------------------------------------------------------------------------


async def test_the_edit_form_shows_the_item_and_its_tags(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user, "Lamp", price="12.5", tags=["red", "blue"])
    page = await signed_in.get(f"/admin/item/edit/{item['id']}")
    assert 'value="12.50"' in page.text
    assert 'value="blue, red"' in page.text


async def test_a_superuser_edits_anyones_item_through_the_service(
    signed_in: Admin, user: Account
) -> None:
    item = await make_item(signed_in, user, "Lamp", tags=["old"])
    assert item["updated_at"] is None
    form = item_form(item, price="42.10", tags=" Red , RED,green ,, ")
    response = await signed_in.post_form(f"/admin/item/edit/{item['id']}", form)
    assert response.status_code == 302
    after = await api_item(signed_in, item["id"])
    assert after["price"] == 42.1
    assert after["tags"] == ["green", "red"]  # normalized, deduplicated, sorted
    assert after["owner_id"] == user.id  # still the user's
    assert after["updated_at"] is not None  # set by the database
    tags = (await signed_in.client.get("/tags")).json()
    assert [tag["name"] for tag in tags] == ["green", "old", "red"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": "-1"}, "price"),
        ({"price": "1.234"}, "price"),
        ({"tags": "a/b"}, "tags"),
        ({"name": "x" * 201}, "name"),
    ],
)
async def test_the_apis_rules_refuse_bad_edits(
    signed_in: Admin,
    user: Account,
    changes: dict[str, str],
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item = await make_item(signed_in, user, "Lamp", tags=["keep"])
    response = await signed_in.post_form(
        f"/admin/item/edit/{item['id']}", item_form(item, **changes)
    )
    assert response.status_code == 400
    assert message in response.text
    assert await api_item(signed_in, item["id"]) == item  # nothing written
    assert [r for r in caplog.records if r.name.startswith("sqladmin")] == []  # not an error


async def test_deleting_an_item(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user, "Lamp")
    response = await signed_in.delete(f"/admin/item/delete?pks={item['id']}")
    assert response.status_code == 200
    assert (await signed_in.client.get(f"/items/{item['id']}")).status_code == 404


# --- users ------------------------------------------------------------------------------------


def user_form(**fields: Any) -> dict[str, Any]:
    return {"full_name": "", "is_active": "y", "save": "Save"} | fields


async def test_deactivating_a_user_locks_them_out_of_the_api(
    signed_in: Admin, user: Account
) -> None:
    response = await signed_in.post_form(f"/admin/user/edit/{user.id}", user_form(is_active=""))
    assert response.status_code == 302
    me = await signed_in.client.get("/users/me", headers=user.headers)
    assert me.status_code == 403
    login = await signed_in.client.post(
        "/auth/token", data={"username": user.email, "password": user.password}
    )
    assert login.status_code == 403


async def test_a_new_password_revokes_the_users_tokens(
    signed_in: Admin, user: Account, admin_http: httpx.AsyncClient
) -> None:
    form = user_form(full_name="Alice", password="brand-new-password")
    response = await signed_in.post_form(f"/admin/user/edit/{user.id}", form)
    assert response.status_code == 302
    assert (await admin_http.get("/users/me", headers=user.headers)).status_code == 401
    login = await admin_http.post(
        "/auth/token", data={"username": user.email, "password": "brand-new-password"}
    )
    assert login.status_code == 200
    me = await admin_http.get(
        "/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["full_name"] == "Alice"


async def test_a_short_password_is_refused(signed_in: Admin, user: Account) -> None:
    response = await signed_in.post_form(f"/admin/user/edit/{user.id}", user_form(password="short"))
    assert response.status_code == 400
    assert "password" in response.text
    assert (await signed_in.client.get("/users/me", headers=user.headers)).status_code == 200


async def test_promoting_a_user(signed_in: Admin, user: Account) -> None:
    form = user_form(is_superuser="y")
    assert (await signed_in.post_form(f"/admin/user/edit/{user.id}", form)).status_code == 302
    assert (await signed_in.client.get("/users", headers=user.headers)).status_code == 200


async def test_deleting_a_user_deletes_their_items(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user, "Lamp")
    assert (await signed_in.delete(f"/admin/user/delete?pks={user.id}")).status_code == 200
    assert (await signed_in.client.get(f"/items/{item['id']}")).status_code == 404


# --- tags -------------------------------------------------------------------------------------


async def tag_names(admin: Admin) -> list[str]:
    return [tag["name"] for tag in (await admin.client.get("/tags")).json()]


async def test_creating_renaming_and_deleting_tags(signed_in: Admin, user: Account) -> None:
    created = await signed_in.post_form("/admin/tag/create", {"name": "  New Tag ", "save": "Save"})
    assert created.status_code == 302
    assert await tag_names(signed_in) == ["new tag"]

    duplicate = await signed_in.post_form("/admin/tag/create", {"name": "NEW TAG", "save": "Save"})
    assert duplicate.status_code == 400
    assert "Tag already exists" in duplicate.text

    item = await make_item(signed_in, user, "Lamp", tags=["new tag", "other"])
    tag_id = next(
        t["id"] for t in (await signed_in.client.get("/tags")).json() if t["name"] == "new tag"
    )
    renamed = await signed_in.post_form(
        f"/admin/tag/edit/{tag_id}", {"name": "Renamed", "save": "Save"}
    )
    assert renamed.status_code == 302
    assert (await api_item(signed_in, item["id"]))["tags"] == ["other", "renamed"]

    taken = await signed_in.post_form(
        f"/admin/tag/edit/{tag_id}", {"name": "other", "save": "Save"}
    )
    assert taken.status_code == 400
    assert "Tag already exists" in taken.text

    assert (await signed_in.delete(f"/admin/tag/delete?pks={tag_id}")).status_code == 200
    assert (await api_item(signed_in, item["id"]))["tags"] == ["other"]


# --- assets and headers -----------------------------------------------------------------------


async def test_pages_reference_nothing_outside_the_service(signed_in: Admin, user: Account) -> None:
    item = await make_item(signed_in, user, "Lamp", tags=["red"])
    pages = [
        "/admin/",
        "/admin/item/list",
        f"/admin/item/edit/{item['id']}",
        f"/admin/item/details/{item['id']}",
        "/admin/user/list",
        f"/admin/user/edit/{user.id}",
        "/admin/tag/list",
        "/admin/tag/create",
    ]
    references: set[str] = set()
    for path in pages:
        page = await signed_in.get(path)
        assert page.status_code == 200, path
        references.update(_LINKS.findall(page.text))
    login = await signed_in.client.get("/admin/login")
    references.update(_LINKS.findall(login.text))

    external = {ref for ref in references if _is_external(ref)}
    assert external == set()
    # What they load exists, and the stylesheets load nothing from elsewhere either.
    assets = {ref for ref in references if "/statics/" in ref or "/assets/" in ref}
    assert len(assets) >= 10
    for ref in sorted(assets):
        response = await signed_in.client.get(ref)
        assert response.status_code == 200, ref
        if ref.endswith(".css"):
            css_urls = {u for u in _CSS_URLS.findall(response.text) if not u.startswith("data:")}
            assert {u for u in css_urls if _is_external(u)} == set(), ref


def _is_external(reference: str) -> bool:
    """A reference to anything but this service (scheme-relative URLs included)."""
    if reference.startswith("//"):
        return True
    if re.match(r"^[a-z][a-z0-9+.-]*:", reference, re.IGNORECASE):
        return not reference.startswith("http://test/")
    return False


async def test_the_index_lists_what_the_admin_manages(signed_in: Admin) -> None:
    page = await signed_in.get("/admin/")
    for identity in ("user", "item", "tag"):
        assert f'href="http://test/admin/{identity}/list"' in page.text


async def test_admin_pages_forbid_framing_and_foreign_sources(signed_in: Admin) -> None:
    page = await signed_in.get("/admin/item/list")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    api = await signed_in.client.get("/health")
    assert "content-security-policy" not in api.headers  # the API's answers are untouched


async def test_a_stale_edit_form_is_refused(signed_in: Admin, user: Account) -> None:
    """The form carries the version it was filled from: saving it after someone else
    changed the item is refused, as an API write with If-Match would be."""
    item = await make_item(signed_in, user, "Lamp")
    page = await signed_in.get(f"/admin/item/edit/{item['id']}")
    assert 'name="version" type="hidden" value="1"' in page.text
    changed = await signed_in.client.patch(
        f"/items/{item['id']}", json={"price": 99}, headers=user.headers
    )
    assert changed.status_code == 200

    stale = item_form(item, price="1.00", version="1")
    response = await signed_in.post_form(f"/admin/item/edit/{item['id']}", stale)
    assert response.status_code == 400  # the form again, with the reason
    assert "changed by someone else" in response.text
    assert (await api_item(signed_in, item["id"]))["price"] == 99  # the other edit stands
    current = item_form(item, price="1.00", version="2")
    assert (await signed_in.post_form(f"/admin/item/edit/{item['id']}", current)).status_code == 302
