"""Login: OAuth2 password flow returning a JWT bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from starlette.responses import Response

from catalog.api.deps import (
    ClientAddressDep,
    LoginPolicyDep,
    SettingsDep,
    SigningKeyDep,
    UnitOfWorkDep,
)
from catalog.api.openapi import errors, operation_id
from catalog.api.responses import NO_STORE, json_response
from catalog.schemas import Token
from catalog.security import create_access_token, credential_stamp
from catalog.services import users

router = APIRouter(prefix="/auth", tags=["auth"], generate_unique_id_function=operation_id)


@router.post(
    "/token",
    response_model=Token,
    responses=errors(
        (401, "Wrong email or password"),
        (403, "Inactive account"),
        (429, "Too many failed logins for this account or from this address"),
        (503, "Too many password checks in progress"),
    ),
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    key: SigningKeyDep,
    policy: LoginPolicyDep,
    address: ClientAddressDep,
) -> Response:
    """Exchange an email (as `username`) and password for an access token."""
    user_id, hashed_password = await users.authenticate(
        uow, form.username, form.password, address=address, policy=policy
    )
    token = create_access_token(
        user_id,
        key,
        settings.access_token_expire_minutes,
        stamp=credential_stamp(hashed_password, key),
    )
    return json_response(Token(access_token=token).model_dump(), headers=NO_STORE)
