"""Who may use the admin: superusers, signed in with their email and password.

The login is the API's (`users.authenticate`: argon2, timing-safe). The session, a signed
cookie, then holds what an access token holds: the account id and the stamp of the
password it signed in with. Every admin request reads the account again through
`users.current_user`, so a new password, a deactivation or a lost superuser flag ends the
admin session at the next click, as it revokes the account's tokens.
"""

from __future__ import annotations

from typing import Any

from sqladmin.authentication import AuthenticationBackend
from sqladmin.templating import Jinja2Templates
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog.admin.middleware import rotate_csrf_token
from catalog.db.database import Database
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import AuthenticationError, CatalogError, PermissionDeniedError
from catalog.security import TokenClaims, credential_stamp
from catalog.services import admin_sessions, users
from catalog.services.login_throttle import LoginPolicy
from catalog.services.users import Credentials, Principal

SESSION_USER = "uid"
SESSION_STAMP = "pwd"
SESSION_EPOCH = "sessions"  # the account's admin session stamp at sign-in
NOT_A_SUPERUSER = "Only superusers may sign in to the admin"
LOGIN_TEMPLATE = "sqladmin/login.html"


async def check_credentials(
    request: Request, uow: UnitOfWork, email: str, password: str
) -> Credentials:
    """The admin's login check, the API's own: the one place an admin login is verified,
    throttled like an API login (the same counters); a `CatalogError` it raises (e.g. 429)
    is shown on the login page with its status."""
    client = request.client
    address = client.host if client is not None else "unknown"
    policy: LoginPolicy = request.app.state.login_policy
    return await users.authenticate(uow, email, password, address=address, policy=policy)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return "" if value is None or isinstance(value, UploadFile) else str(value)


class SuperuserAuth(AuthenticationBackend):
    """sqladmin's authentication hooks, backed by the user service.

    The session middleware is installed by `catalog.admin.mount_admin` (with the CSRF
    middleware inside it), not by this class.
    """

    def __init__(self, templates: Jinja2Templates | None = None) -> None:
        self.middlewares = []
        self.templates = templates

    async def login(self, request: Request) -> Response | bool:
        """Sign a superuser in; any other outcome renders the login page with the reason."""
        form = await request.form()
        email, password = _field(form, "username"), _field(form, "password")
        database: Database = request.app.state.database
        try:
            async with database.unit_of_work() as uow:
                user_id, hashed_password = await check_credentials(request, uow, email, password)
                account = await users.get_user(uow, user_id)
                epoch = await admin_sessions.admin_sessions(uow, user_id)
        except CatalogError as error:
            return await self._refused(request, error.detail, error.status_code)
        if not account.value["is_superuser"]:
            return await self._refused(request, NOT_A_SUPERUSER, 403)
        key: str = request.app.state.signing_key
        # A fresh session: nothing set before the login (its CSRF token included) survives.
        request.session.clear()
        request.session[SESSION_USER] = user_id
        request.session[SESSION_STAMP] = credential_stamp(hashed_password, key)
        request.session[SESSION_EPOCH] = epoch
        rotate_csrf_token(request.session)
        return True

    async def logout(self, request: Request) -> Response | bool:
        """End the session (the CSRF middleware has checked the link's token): the account's
        admin session stamp moves on, so a copy of this cookie, kept before, is refused too
        (and so are the account's other admin sessions)."""
        user_id = request.session.get(SESSION_USER)
        if isinstance(user_id, int) and await self.authenticate(request):
            database: Database = request.app.state.database
            async with database.unit_of_work() as uow:
                await admin_sessions.end_admin_sessions(uow, user_id)
        request.session.clear()
        return RedirectResponse(request.url_for("admin:login"), status_code=302)

    async def authenticate(self, request: Request) -> bool:
        """Whether the session belongs to an active superuser with the same password, signed
        in since the account's last admin logout."""
        user_id = request.session.get(SESSION_USER)
        stamp = request.session.get(SESSION_STAMP)
        epoch = request.session.get(SESSION_EPOCH)
        if not isinstance(user_id, int) or not isinstance(stamp, str) or not isinstance(epoch, int):
            return False
        database: Database = request.app.state.database
        key: str = request.app.state.signing_key
        try:
            async with database.unit_of_work() as uow:
                user = await users.current_user(uow, TokenClaims(user_id, stamp), key)
                current_epoch = await admin_sessions.admin_sessions(uow, user_id)
        except (AuthenticationError, PermissionDeniedError):
            user = None
        if user is None or not user.is_superuser or current_epoch != epoch:
            request.session.clear()
            return False
        request.state.admin_principal = Principal(user.id, user.is_superuser)
        return True

    async def get_user_id(self, request: Request) -> Any:
        """The signed-in account's id (sqladmin's audit and authorization hooks ask)."""
        return request.session.get(SESSION_USER)

    async def _refused(self, request: Request, reason: str, status_code: int) -> Response:
        assert self.templates is not None, "mount_admin gives the backend its templates"
        return await self.templates.TemplateResponse(
            request, LOGIN_TEMPLATE, {"error": reason}, status_code=status_code
        )
