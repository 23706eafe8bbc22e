"""The web admin at /admin, for superusers (sqladmin), mounted when `ADMIN=on`.

Pieces: `auth` (who may sign in: superusers, through the user service), `middleware` (CSRF
and security headers), `views` (users, items, tags; writes through the services), `forms`,
and `templates/` + `static/` (sqladmin's pages with the CSRF token, no external assets).

The admin is a Starlette app of its own under /admin, so its session cookie, CSRF check
and headers never touch the API. It shares the API's state (database, signing key), set by
`create_app` and its lifespan.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqladmin import Admin
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import State
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from catalog.admin.auth import SuperuserAuth
from catalog.admin.middleware import (
    CSRFMiddleware,
    RelativeRedirectsMiddleware,
    SecurityHeadersMiddleware,
    csrf_token,
)
from catalog.admin.views import VIEWS
from catalog.config import Settings
from catalog.db.database import Database
from catalog.errors import CatalogError
from catalog.security import derived_key

BASE_URL = "/admin"
SESSION_COOKIE = "catalog_admin"
# sqladmin's routes that serve a file named by a column's text, relative to the working
# directory. Catalog has no file columns: they could only ever leak `.secret_key` or the
# database file, so they are not routed at all (404).
FILE_ROUTES = frozenset({"file_download", "file_preview"})
HERE = Path(__file__).resolve().parent


class _RefusalsAreNotErrors(logging.Filter):
    """sqladmin logs every exception of a save with its traceback, and shows its message on
    the form. A refusal by the rules (a ValueError from the schemas, a CatalogError from the
    services) is the user's to fix, not an error of the service: keep it out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ValueError | CatalogError)


logging.getLogger("sqladmin.application").addFilter(_RefusalsAreNotErrors())


class _ReadSessions(async_sessionmaker[AsyncSession]):
    """sqladmin's session factory: the app's read sessions (no transaction, so no write lock
    on SQLite). Looked up per session: the Database exists only once the app has started
    (its lifespan makes it), after the admin was mounted."""

    def __init__(self, state: State) -> None:
        super().__init__(expire_on_commit=False)
        self._state = state

    def __call__(self, **local_kw: Any) -> AsyncSession:
        database: Database = self._state.database
        return database.read_session(**local_kw)


def mount_admin(app: FastAPI, settings: Settings) -> Admin:
    """Mount the admin on `app` at /admin (call after `app.state.signing_key` is set)."""
    session = Middleware(
        SessionMiddleware,
        # Its own key: a session cookie can never pass for a token or a cursor.
        secret_key=derived_key(app.state.signing_key, "admin-session"),
        session_cookie=SESSION_COOKIE,
        max_age=settings.admin_session_minutes * 60,
        path=BASE_URL,
        same_site="strict",
        https_only=settings.admin_cookie_secure(),
    )
    auth = SuperuserAuth()
    admin = Admin(
        app,
        session_maker=_ReadSessions(app.state),
        base_url=BASE_URL,
        title="Catalog admin",
        favicon_url=f"{BASE_URL}/assets/favicon.svg",
        templates_dir=str(HERE / "templates"),
        # Outermost first: redirects never built from the Host header, headers on every
        # answer, the CSRF check inside the session.
        middlewares=[
            Middleware(RelativeRedirectsMiddleware, public_base_url=settings.public_base_url),
            Middleware(SecurityHeadersMiddleware),
            session,
            Middleware(CSRFMiddleware),
        ],
        authentication_backend=auth,
    )
    auth.templates = admin.templates
    admin.admin.state = app.state  # the admin's views and login read the API's database
    admin.templates.env.globals["csrf_token"] = _page_token
    routes = admin.admin.router.routes
    routes[:] = [route for route in routes if getattr(route, "name", None) not in FILE_ROUTES]
    routes.insert(
        0, Mount("/assets", app=StaticFiles(directory=HERE / "static"), name="catalog_assets")
    )
    for view in VIEWS:
        admin.add_view(view)
    return admin


def _page_token(request: Request) -> str:
    return csrf_token(request.session)
