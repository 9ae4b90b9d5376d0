"""Outbound HTTP that refuses loopback, private, link-local and cloud-metadata addresses.

The check runs inside the connection step on the address actually dialled (after DNS), so a name
that resolves to a public address at check time and a private one at connect time (DNS rebinding)
is still refused. Redirects are not followed by the clients built here.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterator
from contextlib import contextmanager

import httpcore
import httpx

from stemscribe.errors import StemscribeError

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    }
)


class BlockedAddressError(StemscribeError):
    """The URL leads to an address the server refuses to contact."""


SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def refusal_reason(address: str) -> str | None:
    """Why `address` may not be contacted, or None when it is a public unicast address.

    IPv6 addresses that carry an IPv4 one (mapped, 6to4 2002::/16, Teredo's client) are judged by
    the IPv4 address they lead to; deprecated site-local fec0::/10 counts as private.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in SITE_LOCAL:
            return "a site-local address"
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = refusal_reason(str(embedded))
            if inner is not None:
                return f"{inner} (embedded in {ip})"
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or ip.is_reserved or ip.is_unspecified or ip.is_multicast:
        return "a private or reserved address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    return None


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, resolving names itself and dialling only permitted addresses."""

    def __init__(self, *, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refused: list[str] = []
        last_error: Exception | None = None
        for address in addresses:
            reason = None if self.allow_private else refusal_reason(address)
            if reason is not None:
                refused.append(f"{address} is {reason}")
                continue
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise BlockedAddressError(
            f"refusing to contact {host!r}: "
            + "; ".join(refused)
            + " (set STEMSCRIBE_ALLOW_PRIVATE_URLS=1 to allow)"
        )


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go through `GuardedBackend`."""

    def __init__(self, *, allow_private: bool = False, limits: httpx.Limits | None = None) -> None:
        super().__init__(trust_env=False)
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


def check_url(url: str) -> httpx.URL:
    """Parse an outbound URL; only absolute http(s) URLs with a host are accepted."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise BlockedAddressError(f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BlockedAddressError(f"URL {url!r} must be an absolute http:// or https:// URL")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise BlockedAddressError(f"URL {url!r} has port {parsed.port}, outside 1-65535")
    return parsed


_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def check_destination(url: str, *, allow_private: bool = False) -> httpx.URL:
    """`check_url`, plus what can be refused before any DNS lookup: an address literal that is not
    public, or a loopback name. Names are checked again on the address dialled (`GuardedBackend`).
    """
    parsed = check_url(url)
    if allow_private:
        return parsed
    host = parsed.host.strip("[]").lower().rstrip(".")
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        raise BlockedAddressError(f"refusing to contact {host!r}: a loopback name")
    try:
        reason = refusal_reason(host)
    except ValueError:
        return parsed  # a name: resolved and checked when it is dialled
    if reason is not None:
        raise BlockedAddressError(
            f"refusing to contact {host!r}: {reason} (set STEMSCRIBE_ALLOW_PRIVATE_URLS=1 to allow)"
        )
    return parsed


def guarded_client(
    *, allow_private: bool = False, timeout: float = 15.0, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """A client for user-supplied URLs: guarded transport, no redirects, no proxy from the environment."""
    return httpx.Client(
        transport=transport or GuardedTransport(allow_private=allow_private),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "stemscribe"},
    )


@contextmanager
def fetch_stream(
    url: str, *, allow_private: bool, timeout: float, transport: httpx.BaseTransport | None = None
) -> Iterator[httpx.Response]:
    """GET `url` through a guarded client, following up to 5 redirects (each re-checked)."""
    current = str(check_url(url))
    with guarded_client(allow_private=allow_private, timeout=timeout, transport=transport) as client:
        for _ in range(6):
            with client.stream("GET", current) as response:
                if response.is_redirect and "location" in response.headers:
                    current = str(check_url(str(response.url.join(response.headers["location"]))))
                    continue
                yield response
                return
        raise BlockedAddressError(f"too many redirects fetching {url!r}")
