"""FastAPI dependencies shared by every router and page.

* :data:`DbSession` — a SQLAlchemy session committed when the endpoint returns and rolled back
  when it raises.
* :data:`CurrentUser` — the user of an ``Authorization: Bearer <token>`` header or of the web
  session cookie; 401 otherwise. An ``auditor`` gets 403 on every state-changing request.
* :func:`require_roles` — ``Depends(require_roles("risk_manager"))``; ``admin`` always passes.
* :func:`visible_customer` — a customer the user may see, else 404 (a ``sales`` user cannot even
  learn that a customer of someone else exists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Select
from sqlalchemy.orm import Session

from riskdesk.api.errors import ApiError
from riskdesk.domain.enums import Role
from riskdesk.store.models import Customer, User
from riskdesk.store.types import MAX_ID
from riskdesk.store.users import TokenUser, cached_token_user, token_user

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class UserView:
    """A detached snapshot of the request's user (safe to use after the session closed)."""

    id: int
    username: str
    role: str
    full_name: str | None
    language: str | None


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: commit at the end, roll back on any error."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session, scope="function")]


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def session_user(request: Request, session: Session) -> User | None:
    """The user of the bearer token or the web session cookie, or None (no error)."""
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = bearer_token(request)
    user: User | None = None
    if token is not None:
        cached, user = token_user(session, token)
        if cached is not None and user is None:
            # token known from the in-process cache: the user row is still read, so a
            # deactivation takes effect at once on every endpoint but the order check
            found = session.get(User, cached.id)
            user = found if found is not None and found.active else None
    elif "session" in request.scope:
        uid = request.session.get("user_id")
        if isinstance(uid, int):
            found = session.get(User, uid)
            user = found if found is not None and found.active else None
    if user is not None:
        request.state.user = user
        request.state.user_view = UserView(
            user.id, user.username, user.role, user.full_name, user.language
        )
    return user


def cached_bearer_user(request: Request) -> TokenUser | None:
    """The bearer token's user from the in-process auth cache, without any database read
    (None: not cached, expired, no bearer token — take the normal path). Used by the order
    check; see ``riskdesk.store.users`` for how long an entry lives and what empties it."""
    token = bearer_token(request)
    if token is None:
        return None
    state = request.app.state
    db = getattr(state, "auth_db_key", None)
    if db is None:
        db = state.auth_db_key = str(state.engine.url)
    return cached_token_user(db, token)


def is_read_only(user: User | TokenUser) -> bool:
    """An auditor reads everything and changes nothing."""
    return user.role == Role.AUDITOR.value


def get_current_user(request: Request, session: DbSession) -> User:
    """The authenticated user; 401 problem when there is none or the token is wrong."""
    user = session_user(request, session)
    if user is None:
        if bearer_token(request) is not None:
            raise ApiError(
                401,
                "Not authenticated",
                "the token is unknown, revoked or belongs to a deactivated user",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise ApiError(
            401,
            "Not authenticated",
            "send 'Authorization: Bearer <token>' or log in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method not in SAFE_METHODS and is_read_only(user):
        raise ApiError(403, "Forbidden", "the auditor role is read-only")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[..., User]:
    """A dependency allowing only ``roles`` (``admin`` is always allowed)."""
    allowed = {Role(r).value for r in roles} | {Role.ADMIN.value}

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise ApiError(
                403,
                "Forbidden",
                f"this needs one of the roles: {', '.join(sorted(allowed))}",
            )
        return user

    return check


SelectT = TypeVar("SelectT", bound=Select)  # type: ignore[type-arg]


def restrict_customers(stmt: SelectT, user: User) -> SelectT:
    """Limit a query over :class:`Customer` to what ``user`` may see (sales: own customers)."""
    if user.role == Role.SALES.value:
        return stmt.where(Customer.owner == user.username)
    return stmt


def can_see(user: User, customer: Customer) -> bool:
    return user.role != Role.SALES.value or customer.owner == user.username


def visible_customer(session: Session, user: User, customer_id: int) -> Customer:
    """The customer with internal id ``customer_id`` if ``user`` may see it, else 404."""
    if not 1 <= customer_id <= MAX_ID:
        raise ApiError(404, "Not found", f"no customer {customer_id}")
    customer = session.get(Customer, customer_id)
    if customer is None or not can_see(user, customer):
        raise ApiError(404, "Not found", f"no customer {customer_id}")
    return customer
