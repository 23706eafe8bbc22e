"""Login: OAuth2 password flow returning a JWT bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from catalog.api.deps import ReadSessionDep, SettingsDep, SigningKeyDep
from catalog.schemas import Token
from catalog.security import create_access_token, credential_stamp
from catalog.services import users

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=Token,
    responses={401: {"description": "Wrong email or password"}, 403: {"description": "Inactive"}},
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: ReadSessionDep,
    settings: SettingsDep,
    key: SigningKeyDep,
) -> Token:
    """Exchange an email (as `username`) and password for an access token."""
    user = await users.authenticate(session, form.username, form.password)
    token = create_access_token(
        user.id,
        key,
        settings.access_token_expire_minutes,
        stamp=credential_stamp(user.hashed_password, key),
    )
    return Token(access_token=token)
