"""Users (admin), the current user, and personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from riskdesk.api.deps import MAX_ID, CurrentUser, DbSession, require_roles
from riskdesk.api.errors import ApiError
from riskdesk.domain.enums import Role
from riskdesk.store.models import User
from riskdesk.store.users import UserError, add_user, change_user, create_token

router = APIRouter(tags=["users"])

AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN.value))]


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str | None
    email: str | None
    role: str
    language: str | None
    active: bool
    created_at: datetime | None


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    password: str | None = Field(default=None, min_length=8, max_length=256)
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, pattern=r"^(en|zh)$")


class UserCreated(UserOut):
    password: str = Field(description="The password; shown only in this response.")


class TokenIn(BaseModel):
    name: str | None = Field(default=None, max_length=100)


class TokenOut(BaseModel):
    id: int
    user: str
    prefix: str
    name: str | None
    token: str = Field(description="The token; shown only in this response.")


def user_out(u: User) -> UserOut:
    return UserOut(
        id=u.id,
        username=u.username,
        full_name=u.full_name,
        email=u.email,
        role=u.role,
        language=u.language,
        active=bool(u.active),
        created_at=u.created_at,
    )


@router.get("/users/me", response_model=UserOut, summary="The authenticated user")
def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.get("/users", response_model=list[UserOut], summary="All users (admin)")
def list_users(session: DbSession, _: AdminUser) -> list[UserOut]:
    return [user_out(u) for u in session.scalars(select(User).order_by(User.id))]


@router.post("/users", response_model=UserCreated, status_code=201, summary="Create a user (admin)")
def create_user(body: UserIn, session: DbSession, admin: AdminUser) -> UserCreated:
    try:
        u, password = add_user(
            session,
            body.username,
            body.role.value,
            body.password,
            full_name=body.full_name,
            email=body.email,
            language=body.language,
            actor=admin.username,
        )
    except UserError as exc:
        status = 409 if "exists" in str(exc) else 422
        raise ApiError(status, "Cannot create user", str(exc), field="username") from exc
    return UserCreated(**user_out(u).model_dump(), password=password)


@router.post(
    "/users/{user_id}/deactivate", response_model=UserOut, summary="Deactivate a user (admin)"
)
def deactivate_user(user_id: int, session: DbSession, admin: AdminUser) -> UserOut:
    u = session.get(User, user_id) if 1 <= user_id <= MAX_ID else None
    if u is None:
        raise ApiError(404, "Not found", f"no user {user_id}")
    if u.id == admin.id:
        raise ApiError(409, "Conflict", "you cannot deactivate yourself", field="user_id")
    change_user(session, u, "active", False, actor=admin.username, action="user.deactivate")
    return user_out(u)


@router.post(
    "/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="Create an API token for yourself (shown once)",
)
def new_token(session: DbSession, user: CurrentUser, body: TokenIn | None = None) -> TokenOut:
    issued = create_token(
        session, user.username, name=body.name if body else None, actor=user.username
    )
    return TokenOut(
        id=issued.id,
        user=issued.user,
        prefix=issued.prefix,
        name=body.name if body else None,
        token=issued.token,
    )
