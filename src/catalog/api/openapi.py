"""The error responses the OpenAPI document promises: one catalogue, applied to every route.

Every status an operation can answer is documented, with its body schema and headers:
- `EVERY_OPERATION`: what any request can get (a bad Host, a query string too long or
  with too many parameters);
- derived from the route itself: a request body adds 400 (not JSON / not UTF-8) and 413;
  parameters or a body add 422; the bearer-token dependency adds 401 and 403;
- declared by the route for what only its service knows: `responses=errors(404, 409)`,
  with a specific description where useful: `errors((404, "Item not found"))`.

To document a new status everywhere (say 503 when the database is down), add it to
`CATALOGUE` and `EVERY_OPERATION`; for some routes only, name it in their `errors(...)`.
Operation ids are the route names (stable: generated clients name methods after them).
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
    429: ErrorDoc("Too many failed attempts: retry after the given delay", headers=RETRY_AFTER),
    503: ErrorDoc("Busy: retry after the given delay", headers=RETRY_AFTER),
}
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


def install_openapi(app: FastAPI, authentication: Callable[..., Any]) -> None:
    """Document the errors of every route (`document_errors`) and publish their schemas."""
    document_errors(app, authentication)
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


def document_errors(app: FastAPI, authentication: Callable[..., Any]) -> None:
    """Complete every route's `responses` from the catalogue (see the module docstring),
    and name each operation after its route."""
    names: set[str] = set()
    for route in api_routes(app.routes):
        statuses = set(EVERY_OPERATION)
        if route.body_field is not None:
            statuses.update(WITH_BODY)
        if authentication in set(_calls(route.dependant)):
            statuses.update(AUTHENTICATED)
        for status in statuses - set(route.responses):
            route.responses[status] = CATALOGUE[status].response()
        route.responses = dict(sorted(route.responses.items(), key=lambda item: str(item[0])))
        if route.name in names:
            raise ValueError(f"two routes are named {route.name!r}: operation ids must differ")
        names.add(route.name)
        route.operation_id = route.name
