"""Conditional requests (RFC 9110 section 13): ETag, If-Match, If-None-Match.

An item's or a user's ETag is `"<id>.<version>"`: strong, the same on every database,
and bound to the resource (a tag copied from another item never matches). `If-Match` on
PUT/PATCH/DELETE becomes the versions the write's own WHERE requires (412 when the row
moved on); `If-None-Match` on GET answers 304 while the client's copy is current. With
REQUIRE_IF_MATCH, writes without `If-Match` are refused with 428.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from starlette.responses import Response

from catalog.api.responses import json_response
from catalog.errors import PreconditionRequiredError
from catalog.services.versions import MAX_EXPECTED_VERSIONS, Expected, Versioned

T = TypeVar("T")
_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
# The most entity tags of one If-Match / If-None-Match list that are looked at. A client
# names the one or two copies it holds; a list of millions (20 MB took 1.7 s of the event
# loop) is read no further than this, so parsing a header is linear and short.
MAX_LIST_TAGS = 32


def etag(resource_id: int, version: int) -> str:
    """The strong entity tag of a resource at a version."""
    return f'"{resource_id}.{version}"'


def _is_decimal(text: str) -> bool:
    """Whether `text` is ASCII digits only (`str.isdigit` is true for '²', which `int`
    refuses)."""
    return text.isascii() and text.isdigit()


def _tags(header: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque tag) pairs of a comma-separated list, its first MAX_LIST_TAGS only;
    None if malformed before that."""
    found: list[tuple[bool, str]] = []
    position = 0
    while position < len(header) and len(found) < MAX_LIST_TAGS:
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            return None
        found.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    return found


def expected_versions(header: str | None, resource_id: int) -> Expected:
    """The versions `If-Match` allows for this resource: None when absent or `*`.

    If-Match compares strongly, so weak tags, tags of other resources and malformed
    values never match (an empty tuple: the write fails its precondition).
    """
    if header is None or header.strip() == "*":
        return None
    versions: list[int] = []
    for weak, tag in _tags(header) or ():
        owner, _, version = tag.partition(".")
        if not weak and owner == str(resource_id) and _is_decimal(version) and len(version) < 10:
            versions.append(int(version))
    return tuple(sorted(set(versions))[:MAX_EXPECTED_VERSIONS])


def is_current(header: str | None, resource_id: int, version: int) -> bool:
    """Whether `If-None-Match` names the current representation (weak comparison)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    current = etag(resource_id, version).strip('"')
    return any(tag == current for _, tag in _tags(header) or ())


_IF_NONE_MATCH_DESCRIPTION = (
    "An ETag from an earlier response: 304 Not Modified while it is current"
)


def if_none_match(request: Request) -> str | None:
    """The If-None-Match header (its first value, as a `Header` parameter gives it).

    Read by the endpoint rather than declared as a `Header` parameter: FastAPI's handling
    of that one optional parameter (alias lookup, sequence checks, validation of a
    `str | None`) cost ~25 µs of a `GET /items/{id}`'s ~550. `documents_if_none_match`
    keeps the OpenAPI document as it was.
    """
    return request.headers.get("if-none-match")


def documents_if_none_match() -> dict[str, Any]:
    """`openapi_extra=` for a route reading `if_none_match`: the parameter exactly as
    FastAPI documents a `Header(alias="If-None-Match")` of type `str | None`."""
    schema = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": _IF_NONE_MATCH_DESCRIPTION,
        "title": "If-None-Match",
    }
    parameter = {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "schema": schema,
        "description": _IF_NONE_MATCH_DESCRIPTION,
    }
    return {"parameters": [parameter]}


async def if_match(
    request: Request,
    header: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="The ETag the change is based on: 412 if the resource changed since",
        ),
    ] = None,
) -> str | None:
    """The If-Match header; 428 when the server requires one and it is missing."""
    if header is None and request.app.state.settings.require_if_match:
        raise PreconditionRequiredError
    return header


IfMatch = Annotated[str | None, Depends(if_match)]


def versioned_response(
    resource: Versioned[Any],
    resource_id: int,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The resource as JSON with its ETag (and `headers`)."""
    return json_response(
        resource.value,
        status_code=status_code,
        headers={"ETag": etag(resource_id, resource.version), **(headers or {})},
    )


def not_modified(resource_id: int, version: int) -> Response:
    """304: the client's copy is current (no body; the ETag again)."""
    return Response(status_code=304, headers={"ETag": etag(resource_id, version)})
