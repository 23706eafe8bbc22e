"""The OpenAPI document tells the truth (issue 7, section 4).

Statuses are documented where the service can answer them, with the error body schema;
operation ids are stable; constraints use standard JSON Schema keywords; `null` appears
only where it is accepted. The exhaustive check is schemathesis (test_schemathesis.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from catalog.api.openapi import CATALOGUE, EVERY_OPERATION
from tests.conftest import Account

OPERATION_IDS = {
    ("get", "/items"): "list_items",
    ("post", "/items"): "create_item",
    ("get", "/items/{item_id}"): "read_item",
    ("put", "/items/{item_id}"): "update_item",
    ("patch", "/items/{item_id}"): "patch_item",
    ("delete", "/items/{item_id}"): "delete_item",
    ("get", "/tags"): "list_tags",
    ("post", "/tags"): "create_tag",
    ("get", "/tags/{name}/items"): "list_tag_items",
    ("delete", "/tags/{name}"): "delete_tag",
    ("post", "/users"): "register",
    ("get", "/users"): "list_users",
    ("get", "/users/me"): "read_me",
    ("patch", "/users/me"): "update_me",
    ("get", "/users/{user_id}"): "read_user",
    ("patch", "/users/{user_id}"): "update_user",
    ("delete", "/users/{user_id}"): "delete_user",
    ("get", "/users/{user_id}/items"): "list_user_items",
    ("post", "/auth/token"): "login",
    ("get", "/health"): "health",
    ("get", "/health/ready"): "ready",
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from catalog.api.app import create_app
    from tests.conftest import make_settings

    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'unused.db'}"
    app: FastAPI = create_app(make_settings(url))
    return app.openapi()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_operation_ids_are_stable(document: dict[str, Any]) -> None:
    found = {key: op["operationId"] for key, op in _operations(document).items()}
    assert found == OPERATION_IDS


def test_every_operation_documents_the_common_errors(document: dict[str, Any]) -> None:
    for key, operation in _operations(document).items():
        documented = {int(status) for status in operation["responses"]}
        assert set(EVERY_OPERATION) <= documented, key


def test_every_operation_that_reaches_the_database_documents_503(
    document: dict[str, Any],
) -> None:
    for key, operation in _operations(document).items():
        if key == ("get", "/health"):  # the process only: no database
            continue
        assert "Retry-After" in operation["responses"]["503"]["headers"], key


@pytest.mark.parametrize("path", ["/items/{item_id}", "/users/me", "/users/{user_id}"])
def test_conditional_reads_document_if_none_match_and_304(
    document: dict[str, Any], path: str
) -> None:
    # The endpoints read the header themselves (cheaper than a Header parameter): it must
    # stay documented as one, after the path parameters, with its 304.
    operation = _operations(document)[("get", path)]
    *_, last = operation["parameters"]
    assert last["name"] == "If-None-Match"
    assert (last["in"], last["required"]) == ("header", False)
    assert last["schema"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert "ETag" in operation["responses"]["304"]["headers"]
    assert "ETag" in operation["responses"]["200"]["headers"]


# What schemathesis found undocumented before (issue 7), and where the service answers it.
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("post", "/users"): {400, 409, 413, 422, 503},
    ("post", "/items"): {400, 401, 403, 413},
    ("get", "/users"): {401, 403},
    ("get", "/users/me"): {401, 403},
    ("patch", "/users/me"): {400, 401, 403, 413, 429, 503},
    ("get", "/users/{user_id}"): {401, 403, 404},
    ("patch", "/users/{user_id}"): {401, 403, 404, 409},
    ("delete", "/users/{user_id}"): {401, 403, 404, 409},
    ("delete", "/tags/{name}"): {401, 403, 404},
    ("post", "/auth/token"): {400, 401, 403, 413, 429, 503},
    ("get", "/items"): {414, 422},
}


@pytest.mark.parametrize(("key", "statuses"), EXPECTED.items(), ids=lambda v: str(v))
def test_statuses_the_service_answers_are_documented(
    document: dict[str, Any], key: tuple[str, str], statuses: set[int]
) -> None:
    documented = {int(status) for status in _operations(document)[key]["responses"]}
    assert statuses <= documented


def test_error_responses_have_the_error_body_schema(document: dict[str, Any]) -> None:
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) not in CATALOGUE:
                continue
            schema = response["content"]["application/json"]["schema"]
            expected = "ValidationErrorBody" if status == "422" else "ErrorBody"
            assert schema == {"$ref": f"#/components/schemas/{expected}"}, (key, status)
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["detail"]
    issue = schemas["ValidationIssue"]
    assert set(issue["required"]) == {"loc", "msg", "type"}


def test_throttling_and_busy_answers_document_retry_after(document: dict[str, Any]) -> None:
    login = _operations(document)[("post", "/auth/token")]["responses"]
    assert "Retry-After" in login["429"]["headers"]
    assert "Retry-After" in login["503"]["headers"]


def test_price_limits_use_standard_keywords(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("ItemCreate", "ItemUpdate"):
        price = schemas[name]["properties"]["price"]
        number = next(option for option in price["anyOf"] if option["type"] == "number")
        assert number == {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 10**10,
            "multipleOf": 0.01,
        }
        assert not {"ge", "lt", "decimal_places"} & set(str(price))


def test_null_is_documented_only_where_accepted(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    nullable = {
        name: {
            field
            for field, schema in schemas[name]["properties"].items()
            if {"type": "null"} in schema.get("anyOf", [])
        }
        for name in ("ItemUpdate", "UserUpdate", "UserUpdateMe")
    }
    assert nullable == {
        "ItemUpdate": {"description"},
        "UserUpdate": {"full_name"},
        "UserUpdateMe": {"full_name"},
    }


@pytest.mark.parametrize("field", ["is_active", "name", "price", "tags"])
async def test_null_where_undocumented_is_refused(
    client: httpx.AsyncClient, user: Account, field: str
) -> None:
    created = await client.post("/items", json={"name": "x", "price": 1}, headers=user.headers)
    response = await client.patch(
        f"/items/{created.json()['id']}", json={field: None}, headers=user.headers
    )
    assert response.status_code == 422


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-1", "1e3"])
@pytest.mark.parametrize("name", ["created_before", "created_after"])
async def test_timestamps_must_be_iso_8601(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    # Before: 0.5 was taken as a Unix time though the documentation says ISO 8601.
    response = await client.get("/items", params={name: value})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


@pytest.mark.parametrize("value", ["2026-01-01", "2026-01-01T03:00:00Z", "2026-01-01 03:00"])
async def test_iso_8601_timestamps_are_accepted(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/items", params={"created_before": value})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("price", ["9.99", "0", "9999999999.99"])
async def test_documented_price_text_is_accepted(
    client: httpx.AsyncClient, user: Account, price: str
) -> None:
    response = await client.post("/items", json={"name": "x", "price": price}, headers=user.headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("price", ["1e2", " 9.99", "9.999", "-1", "0x10", "1_000"])
async def test_undocumented_price_text_is_refused(
    client: httpx.AsyncClient, user: Account, price: str
) -> None:
    response = await client.post("/items", json={"name": "x", "price": price}, headers=user.headers)
    assert response.status_code == 422


async def test_invalid_utf8_is_a_documented_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users", content=b'{"email": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)
