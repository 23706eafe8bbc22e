"""Login: OAuth2 password flow returning a JWT bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from catalog.api.deps import SettingsDep, SigningKeyDep, UnitOfWorkDep
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
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    key: SigningKeyDep,
) -> Token:
    """Exchange an email (as `username`) and password for an access token."""
    user_id, hashed_password = await users.authenticate(uow, form.username, form.password)
    token = create_access_token(
        user_id,
        key,
        settings.access_token_expire_minutes,
        stamp=credential_stamp(hashed_password, key),
    )
    return Token(access_token=token)
