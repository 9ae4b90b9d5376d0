"""FastAPI dependencies: the service context, the caller's identity, the rate limit."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stemscribe.jobs.models import Principal
from stemscribe.service.context import ServiceContext
from stemscribe.service.errors import ApiError

bearer = HTTPBearer(
    auto_error=False, description="`Authorization: Bearer <key>` (see `stemscribe keys create`)"
)


async def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _client_is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller: the key's principal, or `local` for token-less loopback use before any key exists."""
    ctx: ServiceContext = request.app.state.ctx
    header = request.headers.get("authorization")
    if credentials is None and header:
        raise ApiError(401, "invalid_token", "the Authorization header must be `Bearer <key>`")
    if credentials is not None:
        principal = ctx.principal_for_key(credentials.credentials)
        if principal is None:
            raise ApiError(401, "invalid_token", "unknown API key")
        if principal.revoked_at is not None:
            raise ApiError(403, "forbidden", "this API key was revoked")
    else:
        s = ctx.settings
        if s.require_auth or not s.binds_loopback or not _client_is_loopback(request) or ctx.keys_exist():
            raise ApiError(
                401,
                "no_token",
                "an API key is required: send `Authorization: Bearer <key>` "
                "(create one with `stemscribe keys create`)",
            )
        principal = ctx.local()
    wait = ctx.limiter.check(principal.id)
    if wait > 0:
        raise ApiError(
            429,
            "too_many_requests",
            f"rate limit of {ctx.settings.rate_limit_per_s:g} requests/s exceeded; retry in {wait:.2f} s",
            headers={"retry-after": str(max(1, round(wait)))},
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]
Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
