"""Users and API tokens: argon2 password hashes, tokens hashed at rest and shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from riskdesk.domain.enums import Role
from riskdesk.store.audit import record
from riskdesk.store.db import session_scope
from riskdesk.store.models import ApiToken, User
from riskdesk.store.types import utcnow

_hasher = PasswordHasher()
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)
TOKEN_PREFIX = "rdk_"  # noqa: S105 - a public marker, not a secret


class UserError(ValueError):
    """Bad input for a user operation (unknown role, duplicate name, unknown user …)."""


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise UserError("a password needs at least 8 characters")
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    if not user.password_hash or not user.active:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(12)


def add_user(
    session: Session,
    username: str,
    role: str,
    password: str | None = None,
    *,
    full_name: str | None = None,
    email: str | None = None,
    language: str | None = None,
    actor: str = "system",
) -> tuple[User, str]:
    """Create a user; returns the user and its (given or generated) password."""
    try:
        role = Role(role).value
    except ValueError as exc:
        allowed = ", ".join(r.value for r in Role)
        raise UserError(f"unknown role {role!r}; choose one of: {allowed}") from exc
    if not username or len(username) > 64:
        raise UserError("a user name needs 1 to 64 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} exists already")
    password = password or new_password()
    user = User(
        username=username,
        role=role,
        password_hash=hash_password(password),
        full_name=full_name,
        email=email,
        language=language,
    )
    session.add(user)
    session.flush()
    record(
        session,
        actor=actor,
        action="user.add",
        entity="user",
        entity_id=user.id,
        after={"username": username, "role": role},
    )
    return user, password


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = get_user(session, username)
    if user is None or not check_password(user, password):
        return None
    return user


def _token_hash(token: str) -> str:
    # Tokens are 256 bits of randomness, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: int
    user: str
    token: str
    prefix: str


def create_token(
    session: Session, username: str, name: str | None = None, actor: str = "system"
) -> IssuedToken:
    user = get_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, prefix=token[:10], token_hash=_token_hash(token))
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="token.create",
        entity="user",
        entity_id=user.id,
        after={"token_id": row.id, "prefix": row.prefix, "name": name},
    )
    return IssuedToken(row.id, username, token, row.prefix)


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_hash(token), ApiToken.revoked.is_(False)
        )
    )
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    now = utcnow()
    # Record use at most every few minutes: a write per request would serialise every API call
    # behind SQLite's single writer (and cost a row update per call on PostgreSQL).
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
    return user


def ensure_first_admin(engine: Engine) -> tuple[str, str] | None:
    """Create the first admin when there is no user yet; return (name, one-time password)."""
    with session_scope(engine) as s:
        if (s.scalar(select(func.count()).select_from(User)) or 0) > 0:
            return None
        user, password = add_user(s, "admin", Role.ADMIN.value, actor="riskdesk init")
        return user.username, password
