"""Users and API tokens: argon2 password hashes, tokens hashed at rest and shown once."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, event, func, inspect, select
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


def change_user(
    session: Session, user: User, field: str, value: Any, *, actor: str, action: str
) -> bool:
    """Set one field of ``user`` and audit it as ``action``; a no-op (False) when unchanged."""
    before = getattr(user, field)
    if before == value:
        return False
    record(
        session,
        actor=actor,
        action=action,
        entity="user",
        entity_id=user.id,
        before={field: before},
        after={field: value},
    )
    setattr(user, field, value)
    return True


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


def _token_and_user(session: Session, token: str) -> tuple[ApiToken | None, User | None]:
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_hash(token), ApiToken.revoked.is_(False)
        )
    )
    if row is None:
        return None, None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None, None
    now = utcnow()
    # Record use at most every few minutes: a write per request would serialise every API call
    # behind SQLite's single writer (and cost a row update per call on PostgreSQL).
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
    return row, user


def user_for_token(session: Session, token: str) -> User | None:
    return _token_and_user(session, token)[1]


# ------------------------------------------------------------------ auth cache
#
# A bearer token's user is remembered in this process for AUTH_CACHE_SECONDS, so a hot endpoint
# (the order check) authenticates without a database read. Safety:
# * any ORM change in this process that revokes or deletes a token, or deactivates, deletes,
#   renames or re-roles a user, empties the cache at flush and again at commit, so it takes
#   effect at once here; other processes notice within AUTH_CACHE_SECONDS;
# * an entry never outlives the moment its token's ``last_used_at`` is due to be touched
#   (TOKEN_TOUCH_INTERVAL): the next request then takes the database path and records the use;
# * entries are keyed by database and the token's SHA-256, never by the token itself.

AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class TokenUser:
    """What the cache keeps of a token's user (enough for role and visibility checks)."""

    id: int
    username: str
    role: str
    full_name: str | None
    language: str | None


_auth_cache: dict[tuple[str, str], tuple[float, TokenUser]] = {}
_auth_guard = threading.Lock()
_auth_generation = 0


def forget_cached_tokens() -> None:
    """Empty the token cache of this process (a token or user changed)."""
    global _auth_generation
    with _auth_guard:
        _auth_generation += 1
        _auth_cache.clear()


def _db_key(session_or_engine: Any) -> str:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return str(getattr(bind, "url", id(bind)))


def cached_token_user(db: str, token: str) -> TokenUser | None:
    """The cached user of ``token`` in database ``db`` (an engine URL string), or None."""
    key = (db, _token_hash(token))
    hit = _auth_cache.get(key)
    if hit is None:
        return None
    if hit[0] <= time.monotonic():
        _auth_cache.pop(key, None)
        return None
    return hit[1]


def token_user(session: Session, token: str) -> tuple[TokenUser | None, User | None]:
    """The user of ``token``: from the cache (no ORM object, second item None) or from the
    database through :func:`user_for_token` (which records the use), then cached."""
    db = _db_key(session)
    hit = cached_token_user(db, token)
    if hit is not None:
        return hit, None
    generation = _auth_generation
    row, user = _token_and_user(session, token)
    if user is None or row is None:
        return None, None
    tu = TokenUser(user.id, user.username, user.role, user.full_name, user.language)
    touched = row.last_used_at or utcnow()
    until_touch = (touched + TOKEN_TOUCH_INTERVAL - utcnow()).total_seconds()
    expires = time.monotonic() + min(AUTH_CACHE_SECONDS, until_touch)
    with _auth_guard:
        # a change committed while we read must not be overwritten by what we read
        if generation == _auth_generation and until_touch > 0:
            if len(_auth_cache) >= AUTH_CACHE_MAX:
                _auth_cache.clear()
            _auth_cache[(db, _token_hash(token))] = (expires, tu)
    return tu, user


_WATCHED = {User: ("active", "role", "username"), ApiToken: ("revoked", "token_hash", "user_id")}


@event.listens_for(Session, "after_flush")
def _auth_changes_flushed(session: Session, _ctx: Any) -> None:
    changed = any(isinstance(o, tuple(_WATCHED)) for o in session.deleted)
    if not changed:
        for obj in session.dirty:
            attrs = _WATCHED.get(type(obj))
            if attrs and any(inspect(obj).attrs[a].history.has_changes() for a in attrs):
                changed = True
                break
    if changed:
        session.info["riskdesk_auth_changed"] = True
        forget_cached_tokens()


@event.listens_for(Session, "after_commit")
def _auth_changes_committed(session: Session) -> None:
    if session.info.pop("riskdesk_auth_changed", False):
        forget_cached_tokens()


@event.listens_for(Session, "after_rollback")
def _auth_changes_rolled_back(session: Session) -> None:
    session.info.pop("riskdesk_auth_changed", None)


def ensure_first_admin(engine: Engine) -> tuple[str, str] | None:
    """Create the first admin when there is no user yet; return (name, one-time password)."""
    with session_scope(engine) as s:
        if (s.scalar(select(func.count()).select_from(User)) or 0) > 0:
            return None
        user, password = add_user(s, "admin", Role.ADMIN.value, actor="riskdesk init")
        return user.username, password
