"""The error responses the OpenAPI document promises: one catalogue, applied to every route.

Every status an operation can answer is documented, with its body schema and headers:
- `EVERY_OPERATION`: what any request can get (a bad Host, a query string too long or
  with too many parameters);
- derived from the route itself: a request body adds 400 (not JSON / not UTF-8) and 413;
  parameters or a body add 422; the bearer-token dependency adds 401 and 403;
- declared by the route for what only its service knows: `responses=errors(404, 409)`,
  with a specific description where useful: `errors((404, "Item not found"))`.

- derived from the dependencies the route takes (`Documented`): the unit of work adds 503
  (the database is unavailable, or the request ran past its deadline), If-Match adds 412
  and 428, If-None-Match adds 304, Idempotency-Key adds its 409 and 422 and the
  `Idempotent-Replayed` header; a versioned resource's success carries its `ETag`.

To document a new status everywhere, add it to `CATALOGUE` and `EVERY_OPERATION`; for some
routes only, name it in their `errors(...)`. Operation ids are the route names (stable:
generated clients name methods after them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """Every error but 422: a human-readable `detail`."""

    detail: str


class ValidationIssue(BaseModel):
    """One reason a request was refused: where (`loc`), what (`type`), why (`msg`)."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None  # the offending value, cut short; absent when it is not one value
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """422: the list of validation issues (at most 20 listed, then a count of the rest)."""

    detail: list[ValidationIssue]


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


@dataclass(frozen=True)
class ErrorDoc:
    """How one error status is documented."""

    description: str
    model: type[BaseModel] = ErrorBody
    headers: dict[str, Any] = field(default_factory=dict)

    def response(self, description: str | None = None) -> dict[str, Any]:
        """The `responses=` entry: the body schema by reference (see `install_openapi`)."""
        schema = {"$ref": f"#/components/schemas/{self.model.__name__}"}
        entry: dict[str, Any] = {
            "description": description or self.description,
            "content": {"application/json": {"schema": schema}},
        }
        if self.headers:
            entry["headers"] = self.headers
        return entry


RETRY_AFTER = {"Retry-After": _header("Seconds to wait before retrying")}
CATALOGUE: dict[int, ErrorDoc] = {
    400: ErrorDoc("Malformed request: a body that is not UTF-8 JSON, or a Host not allowed"),
    401: ErrorDoc(
        "Not authenticated: the bearer token is missing, invalid, expired or revoked",
        headers={"WWW-Authenticate": _header("`Bearer`")},
    ),
    403: ErrorDoc("Not allowed: the account is inactive or lacks the permission"),
    404: ErrorDoc("Not found"),
    409: ErrorDoc("Conflict with existing data"),
    413: ErrorDoc("Request body too large"),
    414: ErrorDoc("Query string too long"),
    422: ErrorDoc("Invalid parameters or body", model=ValidationErrorBody),
    412: ErrorDoc("The resource changed since the ETag given in If-Match: read it again"),
    428: ErrorDoc("The server requires If-Match on this write (REQUIRE_IF_MATCH)"),
    429: ErrorDoc("Too many failed attempts: retry after the given delay", headers=RETRY_AFTER),
    503: ErrorDoc("Busy: retry after the given delay", headers=RETRY_AFTER),
}
UNAVAILABLE = "the database is unavailable, or the request ran past its deadline"
IDEMPOTENCY = {
    409: "a request with this Idempotency-Key is still in progress",
    422: "an Idempotency-Key used for a different request",
}
ETAG = {"ETag": _header('The version of the resource, `"<id>.<version>"`')}
CONSISTENCY_TOKEN = {
    "X-Catalog-LSN": _header(
        "The primary's WAL position after this write: send it back as X-Catalog-LSN on "
        "reads to never read older data from a replica"
    )
}
REPLAYED = {
    "Idempotent-Replayed": _header(
        "`true` when this is the stored response of an earlier request with the same "
        "Idempotency-Key"
    )
}


@dataclass(frozen=True)
class Documented:
    """The dependencies whose presence in a route adds statuses and headers."""

    authentication: Callable[..., Any]
    database: Callable[..., Any]  # the writing unit of work (commits)
    reading: Callable[..., Any]  # the reading one (GETs): reaches the database too
    if_match: Callable[..., Any]
    idempotency_key: Callable[..., Any]
    if_none_match_header: str = "if-none-match"
    replicas: bool = False  # DATABASE_REPLICA_URLS: writes answer with X-Catalog-LSN


EVERY_OPERATION: tuple[int, ...] = (400, 414, 422)
WITH_BODY: tuple[int, ...] = (400, 413, 422)
AUTHENTICATED: tuple[int, ...] = (401, 403)


def errors(*statuses: int | tuple[int, str]) -> Responses:
    """`responses=` for these statuses, each optionally with its own description."""
    found: Responses = {}
    for status in statuses:
        code, description = status if isinstance(status, tuple) else (status, None)
        found[code] = CATALOGUE[code].response(description)
    return found


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute of the app, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)


def operation_id(route: APIRoute) -> str:
    """A route's unique id: its name (`generate_unique_id_function` of every router).

    It names the operation and the models FastAPI makes for it (a form body is
    `Body_<id>`): generated clients name their methods and types after them.
    """
    return route.name


def install_openapi(app: FastAPI, documented: Documented) -> None:
    """Document the errors of every route (`document_errors`) and publish their schemas."""
    document_errors(app, documented)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in (ErrorBody, ValidationErrorBody):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add(route: APIRoute, status: int, description: str) -> None:
    """Document `status` on `route`, or add `description` to what is already there."""
    found = route.responses.get(status)
    if found is None:
        route.responses[status] = CATALOGUE[status].response(
            description[0].upper() + description[1:]
        )
    elif description not in found.get("description", ""):
        found["description"] = f"{found.get('description', '')}; or {description}"


def _success_headers(route: APIRoute, headers: dict[str, Any]) -> None:
    success = route.status_code or 200
    entry = route.responses.setdefault(success, {})
    entry["headers"] = {**entry.get("headers", {}), **headers}


def document_errors(app: FastAPI, documented: Documented) -> None:
    """Complete every route's `responses` from the catalogue (see the module docstring),
    and name each operation after its route."""
    names: set[str] = set()
    for route in api_routes(app.routes):
        calls = set(_calls(route.dependant))
        statuses = set(EVERY_OPERATION)
        if route.body_field is not None:
            statuses.update(WITH_BODY)
        if documented.authentication in calls:
            statuses.update(AUTHENTICATED)
        for status in statuses - set(route.responses):
            route.responses[status] = CATALOGUE[status].response()
        # The bearer-token check reads the user: it reaches the database too.
        if calls & {documented.database, documented.reading, documented.authentication}:
            _add(route, 503, UNAVAILABLE)
        versioned = route.name == "create_item"
        if documented.if_match in calls:
            versioned = True
            for status in (412, 428):
                route.responses.setdefault(status, CATALOGUE[status].response())
        headers = {p.alias.lower() for p in route.dependant.header_params} | {
            # Read by the endpoint itself, documented by hand (`documents_if_none_match`).
            p["name"].lower()
            for p in (route.openapi_extra or {}).get("parameters", ())
            if p.get("in") == "header"
        }
        if documented.if_none_match_header in headers:
            versioned = True
            route.responses.setdefault(
                304,
                {
                    "description": "Not modified: the ETag in If-None-Match is current",
                    "headers": ETAG,
                },
            )
        if documented.idempotency_key in calls:
            for status, description in IDEMPOTENCY.items():
                _add(route, status, description)
            _success_headers(route, REPLAYED)
        if documented.replicas and documented.database in calls:  # a route that may write
            _success_headers(route, CONSISTENCY_TOKEN)
        if versioned and route.status_code != 204:
            _success_headers(route, ETAG)
        route.responses = dict(sorted(route.responses.items(), key=lambda item: str(item[0])))
        if route.name in names:
            raise ValueError(f"two routes are named {route.name!r}: operation ids must differ")
        names.add(route.name)
        route.operation_id = route.name
