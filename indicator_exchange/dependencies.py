"""FastAPI dependencies shared by every router: settings, the per-request transaction, the caller."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.auth.service import Caller, authenticate
from indicator_exchange.errors import PayloadTooLarge
from indicator_exchange.settings import Settings

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    state = request.app.state
    factory: sessionmaker[Session] = state.read_sessions if request.method in _READ_METHODS else state.sessions
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


# Declared so OpenAPI documents both schemes (and /docs can "Authorize"); the header is parsed in one place,
# auth.keys.parse_authorization, whatever these return.
_basic_scheme = HTTPBasic(auto_error=False, description="User name: API key id; password: the key's secret.")
_bearer_scheme = HTTPBearer(auto_error=False, description="Token: `<key id>.<secret>`.")


def get_caller(
    request: Request,
    session: SessionDep,
    _basic: Annotated[HTTPBasicCredentials | None, Depends(_basic_scheme)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Caller:
    """The authenticated caller (401 otherwise); kept on ``request.state`` for the audit trail."""
    caller = authenticate(session, request.headers.get("authorization"))
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes ``IX_MAX_CONTENT_LENGTH``."""
    limit: int = request.app.state.settings.max_content_length
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; this server accepts at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds this server's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


BodyDep = Annotated[bytes, Depends(read_body)]
