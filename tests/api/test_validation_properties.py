"""Property-based validation: arbitrary input never makes the API fail with a 5xx.

Over HTTP (both databases): whatever JSON reaches POST /items, PATCH /items/{id} or
POST /tags, the answer is decided by an independent model of the contract
(`acceptable_item`): a 2xx whose body and row round-trip the normalized input, or a 422
that wrote nothing. Directly
(no HTTP): the price schema accepts exactly the decimals with at most two places in
[0, 10^10).

Tables are emptied per test, not per example, so each example compares row counts with
those it found before its request.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from catalog.schemas import ItemCreate, ItemUpdate, TagCreate
from tests.api.test_items import Fetch, counts, db_item
from tests.conftest import Account

HTTP_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
PRICE_LIMIT = Decimal(10) ** 10
CENT = Decimal("0.01")


def valid_price(value: Decimal) -> bool:
    """The contract: finite, 0 <= p < 10^10, and no digit below the cent."""
    if not value.is_finite() or not 0 <= value < PRICE_LIMIT:
        return False
    return value == value.quantize(CENT)


def valid_tag(raw: str) -> bool:
    """Whether a tag name may be accepted: 1..50 characters once stripped and lower-cased."""
    return 1 <= len(raw.strip().lower()) <= 50


def well_formed_tag(raw: str) -> bool:
    """Whether the API accepts a tag name: valid, and free of the characters a URL path
    cannot carry ('/' and non-printable ones could never be named in GET /tags/{name}/items).
    """
    name = raw.strip().lower()
    return valid_tag(raw) and "/" not in name and name.isprintable()


# --- an independent model of the contract: which bodies the API must accept -------------

ITEM_FIELDS = frozenset({"name", "description", "price", "is_active", "tags"})
LAX_TRUE = {"1", "on", "t", "true", "y", "yes"}
LAX_FALSE = {"0", "f", "false", "n", "no", "off"}
PRICE_TEXT = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")


def acceptable_name(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 200 and storable(value)


def acceptable_description(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= 2000 and storable(value))


def acceptable_price(value: Any) -> bool:
    """A JSON number (judged by the text the client wrote) or plain decimal text."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return PRICE_TEXT.fullmatch(value) is not None and valid_price(Decimal(value))
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, int | float) and valid_price(Decimal(str(value)))


def acceptable_flag(value: Any) -> bool:
    """JSON true/false, or the usual lax spellings (0/1, "yes", "off"...)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return value in (0, 1)
    return isinstance(value, str) and value.lower() in LAX_TRUE | LAX_FALSE


def flag_value(value: Any) -> bool:
    """The boolean an `acceptable_flag` value stands for."""
    if isinstance(value, str):
        return value.lower() in LAX_TRUE
    return bool(value)  # true/false, 0/1, 0.0/1.0


def acceptable_tags(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= 50
        and all(isinstance(t, str) and well_formed_tag(t) for t in value)
    )


FIELD_RULES = {
    "name": acceptable_name,
    "description": acceptable_description,
    "price": acceptable_price,
    "is_active": acceptable_flag,
    "tags": acceptable_tags,
}


def acceptable_item(payload: Any, *, partial: bool) -> bool:
    """Whether POST /items (or, `partial`, PATCH /items/{id}) must accept `payload`.

    A JSON object of known fields only; on POST `name` and `price` are required and `tags`
    may be null; on PATCH any subset, null only for `description`.
    """
    if not isinstance(payload, dict) or not set(payload) <= ITEM_FIELDS:
        return False
    if not partial and not {"name", "price"} <= set(payload):
        return False
    for key, value in payload.items():
        if value is None and (key == "description" or (key == "tags" and not partial)):
            continue
        if not FIELD_RULES[key](value):
            return False
    return True


async def post_json(
    client: httpx.AsyncClient, path: str, payload: Any, account: Account
) -> httpx.Response:
    """POST a body serialized here, so NaN/Infinity and odd numbers go out verbatim."""
    return await client.post(
        path,
        content=json.dumps(payload),
        headers=account.headers | {"Content-Type": "application/json"},
    )


def expected_item(payload: dict[str, Any]) -> dict[str, Any]:
    """What a 201 must echo for a valid POST /items body.

    Pydantic's lax mode also takes numeric strings for the price and "yes"/1 for
    is_active; those are compared by value, not by JSON type.
    """
    return {
        "name": payload["name"],
        "description": payload.get("description"),
        "tags": sorted({t.strip().lower() for t in payload.get("tags") or []}),
        "is_active": flag_value(payload.get("is_active", True)),
    }


async def check_create(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, payload: Any
) -> httpx.Response:
    """POST /items; assert 201 with the normalized item stored when the contract accepts
    the body, else 422 with nothing written."""
    before = await counts(fetch)
    response = await post_json(client, "/items", payload, user)
    assert response.status_code == (201 if acceptable_item(payload, partial=False) else 422), (
        response.text
    )
    event(f"POST /items -> {response.status_code}")  # shown by --hypothesis-show-statistics
    if response.status_code == 422:
        assert await counts(fetch) == before
        return response
    item = response.json()
    expected = expected_item(payload)
    assert {k: item[k] for k in expected} == expected
    assert item["owner_id"] == user.id
    assert isinstance(item["is_active"], bool)
    assert isinstance(item["price"], int | float)
    price = Decimal(str(payload["price"]).strip())
    assert Decimal(str(item["price"])) == price
    stored = await db_item(fetch, item["id"])
    assert stored is not None
    assert {k: stored[k] for k in ("name", "description", "tags", "is_active", "price")} == {
        "name": item["name"],
        "description": item["description"],
        "tags": item["tags"],
        "is_active": item["is_active"],
        "price": price,
    }
    return response


# --- over HTTP -------------------------------------------------------------------------


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Any code points at all: NUL, controls and lone surrogates (legal JSON escapes) too."""
    return st.text(st.characters(), max_size=max_size)


def storable(text: str) -> bool:
    """Text both databases can hold: UTF-8 encodable (no lone surrogate) and without NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


# Any integer, also past 64 bits (a 422 echoes it). NaN and the infinities are sent as
# bare literals.
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts(30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(8), inner),
    max_leaves=10,
)
money = st.decimals(min_value=0, max_value=PRICE_LIMIT - CENT, places=2).map(float)
# Bodies near the schema: every field well-typed (often valid), odd, or anything at all.
fields = {
    "name": st.text(min_size=1, max_size=200) | texts(210) | json_values,
    "description": st.none() | texts(40) | json_values,
    "price": money | st.integers(-5, 10**11) | st.floats() | json_values,
    "is_active": st.booleans() | json_values,
    "tags": st.lists(st.text(max_size=55) | texts(55), max_size=5) | json_values,
}
well_typed_bodies = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=200), "price": money},
    optional={
        "description": st.none() | st.text(max_size=40),
        "is_active": st.booleans(),
        "tags": st.lists(st.text(max_size=55), max_size=5),
    },
)
item_bodies = (
    well_typed_bodies
    | st.fixed_dictionaries(
        {"name": fields["name"], "price": fields["price"]},
        optional={k: v for k, v in fields.items() if k not in {"name", "price"}},
    )
    | st.fixed_dictionaries({}, optional=fields | {"owner_id": json_values})
)


@HTTP_SETTINGS
@given(payload=item_bodies | json_values)
# Lax flags, which random bodies seldom spell: each stored as the boolean it stands for.
@example(payload={"name": "n", "price": 1, "is_active": "off"})
@example(payload={"name": "n", "price": 1, "is_active": "YES"})
@example(payload={"name": "n", "price": 1, "is_active": 0})
async def test_arbitrary_item_bodies_give_201_or_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, payload: Any
) -> None:
    await check_create(client, user, fetch, payload)


@HTTP_SETTINGS
@given(name=texts(210))
async def test_item_names_round_trip_or_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, name: str
) -> None:
    response = await check_create(client, user, fetch, {"name": name, "price": 1})
    assert (response.status_code == 201) == (1 <= len(name) <= 200 and storable(name))


update_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(min_size=1, max_size=200),
            "description": st.none() | st.text(max_size=40),
            "price": money,
            "is_active": st.booleans(),
            "tags": st.lists(st.text(max_size=55), max_size=5),
        },
    )
    | st.fixed_dictionaries({}, optional=dict.fromkeys(fields, st.none()))  # only description
    | st.fixed_dictionaries({}, optional=fields | {"owner_id": json_values})
)


@HTTP_SETTINGS
@given(payload=update_bodies | json_values)
@example(payload={"is_active": "off"})
@example(payload={"is_active": "t"})
@example(payload={"is_active": 1})
async def test_arbitrary_update_bodies_give_200_or_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, payload: Any
) -> None:
    """PATCH changes exactly the fields given (null only for description), or nothing."""
    base = {"name": "base", "description": "d", "price": 1, "tags": ["t"]}
    item_id = (await post_json(client, "/items", base, user)).json()["id"]
    before = await db_item(fetch, item_id)
    assert before is not None

    response = await client.patch(
        f"/items/{item_id}",
        content=json.dumps(payload),
        headers=user.headers | {"Content-Type": "application/json"},
    )

    assert response.status_code == (200 if acceptable_item(payload, partial=True) else 422), (
        response.text
    )
    event(f"PATCH /items -> {response.status_code}")
    after = await db_item(fetch, item_id)
    assert after is not None
    if response.status_code == 422:
        assert after == before
        return
    assert isinstance(payload, dict)
    expected = dict(before)
    for key, value in payload.items():
        if key == "price":
            expected[key] = Decimal(str(value).strip())
        elif key == "tags":
            expected[key] = sorted({t.strip().lower() for t in value})
        elif key == "is_active":
            expected[key] = flag_value(value)  # lax spellings too ("yes", 1, "off")
        else:
            expected[key] = value
    assert after == expected | {"fresh": False}
    item = response.json()
    assert isinstance(item["is_active"], bool)  # JSON true/false, not an echoed 1 or "yes"
    assert {k: item[k] for k in ("name", "description", "is_active", "tags")} == {
        k: after[k] for k in ("name", "description", "is_active", "tags")
    }
    assert Decimal(str(item["price"])) == after["price"]


prices = (
    st.integers(-(10**12), 10**12)
    | st.floats()
    | st.decimals(allow_nan=False, allow_infinity=False, places=2).map(float)
    | st.decimals(min_value=0, max_value=PRICE_LIMIT, places=2).map(float)
)


@HTTP_SETTINGS
@given(price=prices)
async def test_prices_round_trip_or_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, price: float
) -> None:
    response = await check_create(client, user, fetch, {"name": "p", "price": price})
    # What the server parses from the JSON text is exactly `price`.
    assert (response.status_code == 201) == valid_price(Decimal(str(price)))


@HTTP_SETTINGS
@given(raw=st.text(max_size=60) | texts(60))
# Valid lengths the service refuses for their characters, every run.
@example(raw="a/b")
@example(raw=" tab\tinside ")
@example(raw="bell\x07")
async def test_tag_names_are_normalized_or_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, raw: str
) -> None:
    name = raw.strip().lower()
    accepted = well_formed_tag(raw)
    # Only a well-formed name is looked up: the database could not even be asked about
    # one it cannot store (NUL, lone surrogates), and those are refused whatever exists.
    existed = accepted and bool(await fetch("SELECT 1 FROM tags WHERE name = :n", n=name))
    before = await counts(fetch)

    response = await post_json(client, "/tags", {"name": raw}, user)

    expected = 422 if not accepted else 409 if existed else 201
    assert response.status_code == expected, response.text
    event(f"POST /tags -> {response.status_code}")
    if expected != 201:
        assert await counts(fetch) == before
        return
    body = response.json()
    assert body == {"id": body["id"], "name": name, "item_count": 0}
    rows = await fetch("SELECT id FROM tags WHERE name = :n", n=name)
    assert [r.id for r in rows] == [body["id"]]


# --- the schemas, directly -------------------------------------------------------------

SCHEMA_SETTINGS = settings(max_examples=150, deadline=None)  # no I/O: cheap
decimals = (
    st.decimals()  # any exponent, NaN and infinities included
    | st.decimals(min_value=-1, max_value=PRICE_LIMIT + 1)
    | st.decimals(min_value=0, max_value=PRICE_LIMIT, places=2)
    | st.decimals(min_value=0, max_value=PRICE_LIMIT, places=3)
    | st.sampled_from(
        [Decimal("9999999999.99"), Decimal("1E+10"), Decimal("1.230"), Decimal("-0.00")]
    )
)


def accepted_price(model: type[ItemCreate | ItemUpdate], value: Any) -> Decimal | None:
    """The price the schema keeps, or None if it refuses the value."""
    fields: dict[str, Any] = {"price": value}
    if model is ItemCreate:
        fields["name"] = "n"
    try:
        price = model.model_validate(fields).price
    except ValidationError:
        return None
    assert price is not None
    return price


@pytest.mark.parametrize("model", [ItemCreate, ItemUpdate])
@SCHEMA_SETTINGS
@given(value=decimals)
def test_schema_accepts_exactly_two_place_prices_in_range(
    model: type[ItemCreate | ItemUpdate], value: Decimal
) -> None:
    price = accepted_price(model, value)
    if valid_price(value):
        assert price == value
    else:
        assert price is None


@SCHEMA_SETTINGS
@given(value=st.floats() | st.integers())
def test_schema_reads_json_numbers_exactly(value: float) -> None:
    """A float is judged by its shortest repr, the number the client wrote."""
    price = accepted_price(ItemCreate, value)
    exact = Decimal(str(value)) if not isinstance(value, float) or math.isfinite(value) else None
    if exact is not None and valid_price(exact):
        assert price == exact
    else:
        assert price is None


@SCHEMA_SETTINGS
@given(raw=st.text(max_size=60))
def test_schema_normalizes_tag_names(raw: str) -> None:
    try:
        name = TagCreate(name=raw).name
    except ValidationError:
        assert not well_formed_tag(raw)
        return
    assert well_formed_tag(raw)
    assert name == raw.strip().lower()
    assert TagCreate(name=name).name == name  # idempotent


# Printable, slash-free names with optional padding: mostly well formed, so little is filtered.
tag_names = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", " ", "\t", "  "]),
    st.text(
        st.characters(
            exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Z"], exclude_characters="/"
        ),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(["", " ", "\n"]),
).filter(well_formed_tag)


@SCHEMA_SETTINGS
@given(tags=st.lists(tag_names, max_size=8))
def test_schema_tag_lists_are_sorted_and_unique(tags: list[str]) -> None:
    item = ItemCreate(name="n", price=Decimal(1), tags=tags)
    assert item.tags == sorted({t.strip().lower() for t in tags})
