"""What every API node shares through Redis: the rate limits (the same token bucket as
`context.RateLimiter`, kept in Redis and updated by one Lua script, atomic, on the server's clock, so a
key's limit is the same with one node or five), and the key epoch (`RedisKeyEpoch`: a counter that
each key created or revoked moves on, so that no node answers from a key lookup made before it).

When Redis cannot be reached the limiter lets requests through and logs it (at most once a minute):
a limit is protection, not a reason to refuse paying callers while Redis restarts. Key lookups are
then not cached at all (each goes to the database) until the epoch can be read again. After a failed
call neither asks Redis again for `REDIS_RETRY_S` (`_Outage`), so requests do not each wait out the
client's timeout while it is down.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV: rate/s, burst, take (1 or 0). Returns the wait in microseconds (0: go).
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst, take = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens, last = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, last = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  if take == 1 then tokens = tokens - 1 end
else
  wait = (1 - tokens) / rate
end
if take == 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'last', now)
  redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
end
return math.ceil(wait * 1e6)
"""


REDIS_RETRY_S = 5.0
"""After Redis failed to answer, how long the limiter and the key epoch go on without asking it."""


class _Outage:
    """Redis as one client here has last seen it: after a failure, `REDIS_RETRY_S` of not asking, and
    a warning at most once a minute saying what happens meanwhile."""

    def __init__(self, meanwhile: str) -> None:
        self.meanwhile = meanwhile
        self._warned = -float("inf")
        self._quiet_until = -float("inf")

    def quiet(self) -> bool:
        """True while Redis is not to be asked (it failed less than `REDIS_RETRY_S` ago)."""
        return time.monotonic() < self._quiet_until

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._quiet_until = now + REDIS_RETRY_S
        if now - self._warned > 60:
            self._warned = now
            logger.warning("Redis unavailable (%s); %s", exc, self.meanwhile)


class RedisRateLimiter:
    """A token bucket per key in Redis: `rate` per second sustained, `burst` at once."""

    def __init__(
        self,
        url: str,
        rate: float,
        burst: int,
        *,
        name: str,
        namespace: str = "stemscribe",
        client: Any = None,
    ) -> None:
        import redis

        self.rate, self.burst = rate, max(1, burst)
        self.prefix = f"{namespace}:rate:{name}:"
        self.client = client or redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self.client.register_script(_BUCKET)
        self._outage = _Outage(f"rate limit {name!r} not enforced meanwhile")

    def _run(self, key: str, take: int) -> float:
        if self.rate <= 0 or self._outage.quiet():
            return 0.0
        import redis

        try:
            micros = self._script(keys=[self.prefix + key], args=[self.rate, self.burst, take])
        except redis.RedisError as exc:
            self._outage.failed(exc)
            return 0.0
        return int(micros) / 1e6

    def check(self, key: str) -> float:
        """0 when the request may go ahead (a token is taken), else the seconds to wait."""
        return self._run(key, 1)

    def waiting(self, key: str) -> float:
        """Like `check` without taking a token."""
        return self._run(key, 0)


class RedisKeyEpoch:
    """A counter in Redis, moved on by every change to the keys (`bump`, after the change commits).
    A node keeps a key lookup only while the counter reads as it did before the lookup, so a key
    revoked anywhere (on any node, or by `stemscribe keys revoke`) stops working on every node at its
    next request; one GET per request that a cached lookup answers."""

    def __init__(self, url: str, *, namespace: str = "stemscribe", client: Any = None) -> None:
        import redis

        self.key = f"{namespace}:keys:epoch"
        self.client = client or redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._outage = _Outage("every key lookup goes to the database meanwhile")

    def current(self) -> int | None:
        """The counter (0 before any change), or None when Redis cannot be reached (then, for
        `REDIS_RETRY_S`, None without asking)."""
        import redis

        if self._outage.quiet():
            return None
        try:
            value = self.client.get(self.key)
        except redis.RedisError as exc:
            self._outage.failed(exc)
            return None
        return int(value or 0)

    def bump(self) -> None:
        """Move the counter on (a key was created or revoked); logged, not raised, when Redis is down."""
        import redis

        try:
            self.client.incr(self.key)
        except redis.RedisError as exc:
            self._outage.failed(exc)
