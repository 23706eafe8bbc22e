"""catalog.pagination without HTTP: sort parsing, keyset predicates, the cursor codec.

The property test runs `order_by` and `keyset_after` on a tiny SQLite table and compares
them with an independent Python model of the order (NULL larger than any value, text by
code point, ties broken by ascending id).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
)

from catalog.cursors import (
    CursorCodec,
    InvalidCursorError,
    decode_datetime,
    decode_decimal,
    encode_value,
)
from catalog.db.types import UTCDateTime
from catalog.pagination import (
    InvalidSortError,
    SortField,
    SortKey,
    keyset_after,
    order_by,
    parse_sort,
)
from catalog.services.item_listing import ITEM_SORT_FIELDS

# --- parse_sort ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ("id", (("id", False),)),
        ("-id", (("id", True),)),
        ("name", (("name", False), ("id", False))),
        ("-name", (("name", True), ("id", False))),
        ("-price,name", (("price", True), ("name", False), ("id", False))),
        ("updated_at,-created_at", (("updated_at", False), ("created_at", True), ("id", False))),
        (" name , -price ", (("name", False), ("price", True), ("id", False))),
        # id is unique: it ends the order wherever it appears, in either direction.
        ("name,id", (("name", False), ("id", False))),
        ("name,-id", (("name", False), ("id", True))),
        ("-price,id,name", (("price", True), ("id", False))),
    ],
)
def test_parse_sort(raw: str, fields: tuple[tuple[str, bool], ...]) -> None:
    assert parse_sort(raw, ITEM_SORT_FIELDS).fields == fields


def test_every_field_sorts_both_ways() -> None:
    for name in ("id", "name", "price", "created_at", "updated_at"):
        assert parse_sort(name, ITEM_SORT_FIELDS).fields[0] == (name, False)
        assert parse_sort(f"-{name}", ITEM_SORT_FIELDS).fields[0] == (name, True)


def test_canonical_is_normalized() -> None:
    assert parse_sort(" -price , name ", ITEM_SORT_FIELDS).canonical == "-price,name,id"
    assert parse_sort("name,id,price", ITEM_SORT_FIELDS).canonical == "name,id"
    assert parse_sort("-id", ITEM_SORT_FIELDS).canonical == "-id"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "-",
        ",",
        "name,",
        ",name",
        "--name",
        "+name",
        "Name",
        "NAME",
        "owner_id",
        "description",
        "tags",
        "is_active",
        "name desc",
        "name;drop table items",
        "items.name",
        "price,price",
        "price,-price",
        "-name,name",
    ],
)
def test_parse_sort_rejects(raw: str) -> None:
    with pytest.raises(InvalidSortError):
        parse_sort(raw, ITEM_SORT_FIELDS)


@pytest.mark.parametrize("raw", ["id,bogus", "id,id", "-id,name;drop"])
def test_parse_sort_checks_fields_after_id(raw: str) -> None:
    with pytest.raises(InvalidSortError):
        parse_sort(raw, ITEM_SORT_FIELDS)


# --- CursorCodec --------------------------------------------------------------------------

SCOPE = "items|-updated_at,price,created_at,name,id|{}"
WIDE_SORT = parse_sort("-updated_at,price,created_at,name", ITEM_SORT_FIELDS)
codec = CursorCodec("unit-test-secret")


def test_cursor_round_trips_every_value_type_exactly() -> None:
    values: list[Any] = [
        None,
        Decimal("12.30"),
        datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        'Émile \\ % _ "quoted" ☃',
        2_147_483_647,
    ]
    token = codec.encode(SCOPE, WIDE_SORT, ITEM_SORT_FIELDS, values)
    decoded = codec.decode(token, SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)
    assert decoded == values
    # Exact types: money stays Decimal with its scale, timestamps stay aware.
    assert isinstance(decoded[1], Decimal)
    assert decoded[1].as_tuple() == Decimal("12.30").as_tuple()
    assert decoded[2].tzinfo is not None
    assert decoded[2].utcoffset() == timedelta(0)


def test_cursor_keeps_timestamps_of_other_offsets_and_nonnull_updated_at() -> None:
    plus_two = timezone(timedelta(hours=2))
    values: list[Any] = [
        datetime(2026, 1, 1, 0, 0, tzinfo=plus_two),
        Decimal("0"),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "",
        1,
    ]
    token = codec.encode(SCOPE, WIDE_SORT, ITEM_SORT_FIELDS, values)
    decoded = codec.decode(token, SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)
    assert decoded == values  # aware datetimes compare by instant
    assert decoded[0].utcoffset() == timedelta(hours=2)


def test_cursor_is_url_safe() -> None:
    token = codec.encode(SCOPE, WIDE_SORT, ITEM_SORT_FIELDS, [None, Decimal(1), _T0, "é?&=#/+", 3])
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _token() -> str:
    return codec.encode(SCOPE, WIDE_SORT, ITEM_SORT_FIELDS, [None, Decimal("5.00"), _T0, "n", 9])


def _replace(text: str, index: int) -> str:
    """`text` with the character at `index` swapped for another base64url character."""
    new = "B" if text[index] == "A" else "A"
    return text[:index] + new + text[index + 1 :]


def test_flipping_a_payload_character_is_rejected() -> None:
    body, mac = _token().split(".")
    for index in range(len(body) - 1):  # the last one may carry only padding bits
        with pytest.raises(InvalidCursorError):
            codec.decode(f"{_replace(body, index)}.{mac}", SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)


def test_flipping_a_signature_character_is_rejected() -> None:
    body, mac = _token().split(".")
    for index in range(len(mac) - 1):
        with pytest.raises(InvalidCursorError):
            codec.decode(f"{body}.{_replace(mac, index)}", SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_a_cursor_is_accepted_only_as_issued() -> None:
    body, mac = _token().split(".")
    last = _B64URL.index(mac[-1])
    # A 16-byte signature is 22 characters; the last one carries 2 bits, the rest padding.
    twin = _B64URL[last ^ 0b0001]
    with pytest.raises(InvalidCursorError):
        codec.decode(f"{body}.{mac[:-1]}{twin}", SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "garbage",
        "a.b.c",
        "not base64!.x",
        "é.é",
        "eyJ2IjoxfQ",  # a payload without a signature
        "eyJ2IjoxfQ.",
        ".AAAAAAAAAAAAAAAAAAAAAA",
        "\x00.\x00",
    ],
)
def test_garbage_is_rejected(token: str) -> None:
    with pytest.raises(InvalidCursorError):
        codec.decode(token, SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)


def test_truncated_and_extended_tokens_are_rejected() -> None:
    token = _token()
    for bad in (token[:-1], token[1:], token + "A", "A" + token, token.replace(".", "")):
        with pytest.raises(InvalidCursorError):
            codec.decode(bad, SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)


def test_another_scope_is_rejected() -> None:
    token = _token()
    for scope in (SCOPE + " ", "users/1|" + SCOPE, SCOPE.replace("{}", '{"q":"a"}')):
        with pytest.raises(InvalidCursorError):
            codec.decode(token, scope, WIDE_SORT, ITEM_SORT_FIELDS)


def test_another_secret_is_rejected() -> None:
    with pytest.raises(InvalidCursorError):
        CursorCodec("another-secret").decode(_token(), SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)


def test_same_secret_in_another_codec_is_accepted() -> None:
    # Positive control for the test above: the key, not the codec instance, decides.
    decoded = CursorCodec("unit-test-secret").decode(_token(), SCOPE, WIDE_SORT, ITEM_SORT_FIELDS)
    assert decoded == [None, Decimal("5.00"), _T0, "n", 9]


def test_values_that_do_not_fit_the_sort_are_rejected() -> None:
    # Same scope string, different sort: the codec still checks the key's length and types.
    token = codec.encode("s", parse_sort("price", ITEM_SORT_FIELDS), ITEM_SORT_FIELDS, ["1", 2])
    for sort in ("id", "created_at", "-updated_at,price"):
        with pytest.raises(InvalidCursorError):
            codec.decode(token, "s", parse_sort(sort, ITEM_SORT_FIELDS), ITEM_SORT_FIELDS)


# --- order_by + keyset_after against a Python model, on SQLite ------------------------------

_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_metadata = MetaData()
_things = Table(
    "things",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(20), nullable=False),
    Column("price", Numeric(12, 2), nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
)
FIELDS: dict[str, SortField] = {
    "id": SortField(_things.c.id),
    "name": SortField(_things.c.name),
    "price": SortField(_things.c.price, decode=decode_decimal, encode=encode_value),
    "updated_at": SortField(
        _things.c.updated_at, nullable=True, decode=decode_datetime, encode=encode_value
    ),
}
# Few distinct values so that ties (and tied NULLs) are common.
NAMES = ["Zeta", "alpha", "Émile", "beta", "éclair", "a", "B"]
PRICES = [Decimal("0.00"), Decimal("1.50"), Decimal("2.00"), Decimal("10.00")]
STAMPS = [None, _T0, _T0 + timedelta(microseconds=1), _T0 + timedelta(days=400)]
Thing = dict[str, Any]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """An in-memory SQLite database holding the `things` table."""
    eng = create_engine("sqlite://")
    _metadata.create_all(eng)
    yield eng
    eng.dispose()


def _compare(a: Mapping[str, Any], b: Mapping[str, Any], sort: SortKey) -> int:
    """The order the API promises, written independently of the code under test."""
    for name, desc in sort.fields:
        x, y = a[name], b[name]
        if x == y:
            continue
        if x is None:  # NULL is larger than any value
            result = 1
        elif y is None:
            result = -1
        else:
            result = -1 if x < y else 1  # str: code point order
        return -result if desc else result
    return 0


def _select_ids(engine: Engine, sort: SortKey, after: Sequence[Any] | None) -> list[int]:
    statement = select(_things.c.id).order_by(*order_by(sort, FIELDS))
    if after is not None:
        statement = statement.where(keyset_after(sort, FIELDS, after))
    with engine.connect() as connection:
        return list(connection.scalars(statement))


@st.composite
def _things_strategy(draw: st.DrawFn) -> list[Thing]:
    ids = draw(st.lists(st.integers(1, 60), unique=True, max_size=12))
    return [
        {
            "id": id_,
            "name": draw(st.sampled_from(NAMES)),
            "price": draw(st.sampled_from(PRICES)),
            "updated_at": draw(st.sampled_from(STAMPS)),
        }
        for id_ in ids
    ]


@st.composite
def _sort_strategy(draw: st.DrawFn) -> SortKey:
    names = draw(st.permutations(list(FIELDS)))[: draw(st.integers(1, len(FIELDS)))]
    raw = ",".join(("-" if draw(st.booleans()) else "") + name for name in names)
    return parse_sort(raw, FIELDS)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=_things_strategy(), sort=_sort_strategy(), probes=_things_strategy())
def test_keyset_reproduces_the_model_order(
    engine: Engine, rows: list[Thing], sort: SortKey, probes: list[Thing]
) -> None:
    with engine.begin() as connection:
        connection.execute(delete(_things))
        if rows:
            connection.execute(insert(_things), rows)

    def by_sort(a: Thing, b: Thing) -> int:
        return _compare(a, b, sort)

    expected = sorted(rows, key=functools.cmp_to_key(by_sort))

    assert _select_ids(engine, sort, None) == [r["id"] for r in expected]

    # "After" a stored row, and after rows that are not (or no longer) stored: a cursor
    # must keep working when the row it was issued at has been deleted.
    for probe in [*rows, *probes]:
        values = [probe[name] for name, _ in sort.fields]
        token = codec.encode("scope", sort, FIELDS, values)
        after = codec.decode(token, "scope", sort, FIELDS)
        want = [r["id"] for r in expected if _compare(r, probe, sort) > 0]
        assert _select_ids(engine, sort, after) == want, (sort.canonical, probe)


def test_ascending_non_null_sort_is_one_row_value_comparison() -> None:
    # A single (name, id) > (?, ?) lets an index on (name, id) serve deep pages as a range.
    sort = parse_sort("name", FIELDS)
    sql = str(keyset_after(sort, FIELDS, ["x", 1]).compile(compile_kwargs={"literal_binds": True}))
    assert sql == "(things.name, things.id) > ('x', 1)"


def test_order_by_places_nulls_last_ascending_and_first_descending() -> None:
    ascending = [str(c) for c in order_by(parse_sort("updated_at", FIELDS), FIELDS)]
    descending = [str(c) for c in order_by(parse_sort("-updated_at", FIELDS), FIELDS)]
    assert ascending == ["things.updated_at ASC NULLS LAST", "things.id ASC"]
    assert descending == ["things.updated_at DESC NULLS FIRST", "things.id ASC"]
