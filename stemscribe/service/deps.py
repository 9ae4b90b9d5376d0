"""FastAPI dependencies: the service context, the caller's identity, the rate limit."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
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


def _client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _refuse(ctx: ServiceContext, request: Request, status: int, code: str, message: str) -> ApiError:
    """A failed authentication: it spends one of the client address's tokens (429 once they run out)."""
    wait = ctx.auth_failures.check(_client_address(request))
    if wait > 0:
        return _too_many(wait, "failed authentications from this address exceeded their limit")
    return ApiError(status, code, message)


def _too_many(wait: float, what: str) -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        f"{what}; retry in {wait:.2f} s",
        headers={"retry-after": str(max(1, round(wait)))},
    )


async def _principal_for_key(ctx: ServiceContext, key: str) -> Principal | None:
    hit, principal = ctx.cached_principal(key)
    return principal if hit else await run_in_threadpool(ctx.principal_for_key, key)


async def _keys_exist(ctx: ServiceContext) -> bool:
    cached = ctx.cached_keys_exist()
    return cached if cached is not None else await run_in_threadpool(ctx.keys_exist)


async def identify(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller: the key's principal, or `local` for token-less loopback use before any key exists.

    The database is only read from a thread (the key cache answers most requests from memory), so a
    locked database never stalls the event loop. Failed attempts are rate-limited per client address.
    """
    ctx: ServiceContext = request.app.state.ctx
    blocked = ctx.auth_failures.waiting(_client_address(request))
    header = request.headers.get("authorization")
    if credentials is None and header:
        raise _refuse(ctx, request, 401, "invalid_token", "the Authorization header must be `Bearer <key>`")
    if credentials is not None:
        if blocked > 0:
            raise _too_many(blocked, "failed authentications from this address exceeded their limit")
        principal = await _principal_for_key(ctx, credentials.credentials)
        if principal is None:
            raise _refuse(ctx, request, 401, "invalid_token", "unknown API key")
        if principal.revoked_at is not None:
            raise _refuse(ctx, request, 403, "forbidden", "this API key was revoked")
        return principal
    s = ctx.settings
    if s.require_auth or not s.binds_loopback or not _client_is_loopback(request) or await _keys_exist(ctx):
        raise _refuse(
            ctx,
            request,
            401,
            "no_token",
            "an API key is required: send `Authorization: Bearer <key>` "
            "(create one with `stemscribe keys create`)",
        )
    if ctx.local_principal is None:
        await run_in_threadpool(ctx.local)
    return ctx.local()


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """`identify`, then the key's rate limit."""
    ctx: ServiceContext = request.app.state.ctx
    principal = await identify(request, credentials)
    wait = ctx.limiter.check(principal.id)
    if wait > 0:
        raise _too_many(wait, f"rate limit of {ctx.settings.rate_limit_per_s:g} requests/s exceeded")
    return principal


async def metrics_access(request: Request) -> None:
    """With `STEMSCRIBE_METRICS_REQUIRE_KEY=1`, `/metrics` asks for a key like every other endpoint.

    The header is read here rather than through `bearer`, so the schema does not mark the endpoint
    as always secured (by default it is open, like `/health`).
    """
    if request.app.state.ctx.settings.metrics_require_key:
        await identify(request, await bearer(request))


Caller = Annotated[Principal, Depends(authenticate)]
Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
