"""The middleware stack, outermost first (the package docstring says what each does).

A module of its own, not the package's `__init__`: a middleware module's dependencies
(e.g. `consistency`) may import `catalog.api.middleware.asgi` without importing the stack.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from catalog.api.consistency import LSN_HEADER, ConsistencyTokenMiddleware
from catalog.api.docs import PAGES as DOCS_PAGES
from catalog.api.middleware.deadline import DeadlineMiddleware
from catalog.api.middleware.hosts import AllowedHostsMiddleware
from catalog.api.middleware.limits import RequestLimitsMiddleware
from catalog.api.middleware.methods import HeadMiddleware, OptionsMiddleware, PathMethods
from catalog.api.middleware.observed import ObservedRequestsMiddleware
from catalog.api.middleware.request_id import RequestIdMiddleware
from catalog.api.middleware.security_headers import SecurityHeadersMiddleware
from catalog.api.middleware.server_errors import ServerErrorMiddleware
from catalog.config import Settings
from catalog.telemetry import exposition


def stack(settings: Settings, methods: PathMethods) -> list[Middleware]:
    """The app's middleware, outermost first (what the settings leave out is absent)."""
    docs_paths = DOCS_PAGES if settings.docs_enabled else ()
    own = ("/admin",) if settings.admin else ()  # the admin UI sets its own policy
    metrics = None if settings.metrics == "off" else exposition.metrics()
    layers: list[Middleware | None] = [
        Middleware(SecurityHeadersMiddleware, docs_paths=docs_paths, own_policy_prefixes=own),
        Middleware(RequestIdMiddleware),
        Middleware(ServerErrorMiddleware),
        Middleware(ObservedRequestsMiddleware, metrics=metrics, access_log=settings.access_log)
        if metrics is not None or settings.access_log
        else None,
        _cors(settings) if settings.cors_origins else None,
        Middleware(AllowedHostsMiddleware, allowed=settings.allowed_hosts)
        if settings.allowed_hosts
        else None,
        Middleware(
            RequestLimitsMiddleware,
            max_body_bytes=settings.max_body_bytes,
            max_query_string_bytes=settings.max_query_string_bytes,
            max_params=settings.max_query_params,
        ),
        Middleware(OptionsMiddleware, methods=methods),
        Middleware(HeadMiddleware, methods=methods),
        Middleware(ConsistencyTokenMiddleware) if settings.database_replica_urls else None,
        Middleware(
            DeadlineMiddleware,
            timeout=settings.request_timeout,
            retry_after=settings.retry_after_seconds,
        ),
    ]
    return [layer for layer in layers if layer is not None]


def _cors(settings: Settings) -> Middleware:
    options: dict[str, Any] = {
        "allow_origins": list(settings.cors_origins),
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": [
            "Authorization",
            "Content-Type",
            "X-Request-ID",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            LSN_HEADER,
        ],
        "expose_headers": [
            "Link",
            "X-Total-Count",
            "X-Total-Count-Exact",
            "X-Request-ID",
            "Retry-After",
            "ETag",
            "Location",
            "Idempotent-Replayed",
            LSN_HEADER,
        ],
        "max_age": 600,
    }
    return Middleware(CORSMiddleware, **options)
