"""Keyset cursors: opaque, signed tokens holding the sort key of the last row served.

The payload also names the endpoint, sort and filters a cursor was issued for (a
fingerprint of them), so a cursor replayed elsewhere is rejected; the HMAC makes it
tamper-proof. Sort values are encoded exactly (money and timestamps as text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from catalog.pagination import SortField, SortKey

CURSOR_VERSION = 1


class InvalidCursorError(ValueError):
    """The cursor is malformed, tampered with, or was issued for another query."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # one spelling per cursor: unused low bits must be zero
        raise ValueError("non-canonical base64")
    return data


def encode_value(value: Any) -> Any:
    """JSON-safe form of a sort value (exact for money and timestamps)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def decode_datetime(value: Any) -> datetime:
    """Inverse of `encode_value` for timestamps."""
    if not isinstance(value, str):
        raise TypeError("timestamp expected")
    return datetime.fromisoformat(value)


def decode_decimal(value: Any) -> Decimal:
    """Inverse of `encode_value` for money."""
    if not isinstance(value, str):
        raise TypeError("decimal expected")
    return Decimal(value)


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


class CursorCodec:
    """Signs and verifies cursor tokens bound to a query's scope (endpoint+sort+filters)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"catalog-cursor:" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(
        self, scope: str, sort: SortKey, allowed: Mapping[str, SortField], values: Sequence[Any]
    ) -> str:
        """A token for 'the rows after `values`' in this scope."""
        encoded = [
            allowed[name].encode(v) if v is not None else None
            for (name, _), v in zip(sort.fields, values, strict=True)
        ]
        payload = orjson.dumps({"v": CURSOR_VERSION, "s": _fingerprint(scope), "k": encoded})
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(
        self, token: str, scope: str, sort: SortKey, allowed: Mapping[str, SortField]
    ) -> list[Any]:
        """The sort key values in `token`; InvalidCursorError unless it is ours and fits."""
        try:
            body, mac = token.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                raise InvalidCursorError("cursor is invalid")
            data = orjson.loads(payload)
        except InvalidCursorError:
            raise
        except (ValueError, TypeError):
            raise InvalidCursorError("cursor is malformed") from None
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
            raise InvalidCursorError("cursor is from an unsupported version")
        if data.get("s") != _fingerprint(scope):
            raise InvalidCursorError("cursor was issued for another endpoint, sort or filter set")
        raw = data.get("k")
        if not isinstance(raw, list) or len(raw) != len(sort.fields):
            raise InvalidCursorError("cursor is malformed")
        try:
            return [
                None if v is None else allowed[name].decode(v)
                for (name, _), v in zip(sort.fields, raw, strict=True)
            ]
        except (ValueError, TypeError, ArithmeticError):
            raise InvalidCursorError("cursor is malformed") from None
