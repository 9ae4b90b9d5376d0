"""What API nodes share through Redis (the key epoch, the rate limiter), on a stand-in for the Redis
client: how each rides out Redis being down."""

from __future__ import annotations

from typing import Any

import pytest

redis = pytest.importorskip("redis", reason="the scale extra (redis) is not installed")

from stemscribe.service.limits import RedisKeyEpoch, RedisRateLimiter  # noqa: E402


class FakeRedis:
    """GET and INCR on a dict; `down` makes every call fail as an unreachable server does."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.calls = 0
        self.down = False

    def _call(self) -> None:
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("connection refused")

    def get(self, key: str) -> Any:
        self._call()
        return self.values.get(key)

    def incr(self, key: str) -> int:
        self._call()
        self.values[key] = self.values.get(key, 0) + 1
        return self.values[key]

    def register_script(self, source: str) -> Any:
        """The bucket script, answering "wait 0.25 s" whenever Redis is up."""

        def run(keys: list[str], args: list[Any]) -> int:
            self._call()
            return 250_000

        return run


def test_the_epoch_moves_on_with_each_key_change() -> None:
    fake = FakeRedis()
    a = RedisKeyEpoch("redis://unused", namespace="prod", client=fake)
    b = RedisKeyEpoch("redis://unused", namespace="prod", client=fake)
    other = RedisKeyEpoch("redis://unused", namespace="staging", client=fake)
    assert a.current() == b.current() == 0
    a.bump()
    assert b.current() == 1 and other.current() == 0  # one counter per deployment (queue prefix)


def test_an_unreachable_redis_is_not_asked_on_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import stemscribe.service.limits as limits

    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    fake = FakeRedis()
    epoch = RedisKeyEpoch("redis://unused", client=fake)
    fake.down = True
    assert epoch.current() is None and fake.calls == 1
    assert [epoch.current() for _ in range(50)] == [None] * 50 and fake.calls == 1
    epoch.bump()  # a key change always tries (it is rare, and it matters)
    assert fake.calls == 2
    fake.down = False
    clock[0] += limits.REDIS_RETRY_S
    assert epoch.current() == 0 and fake.calls == 3


def test_the_rate_limiter_lets_requests_through_without_waiting_on_a_dead_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stemscribe.service.limits as limits

    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    fake = FakeRedis()
    limiter = RedisRateLimiter("redis://unused", 1.0, 5, name="keys", client=fake)
    assert limiter.check("k") == 0.25 and fake.calls == 1
    fake.down = True
    assert limiter.check("k") == 0.0 and fake.calls == 2  # not limited while Redis is down
    assert [limiter.check("k") for _ in range(50)] == [0.0] * 50 and fake.calls == 2
    assert limiter.waiting("k") == 0.0 and fake.calls == 2
    fake.down = False
    clock[0] += limits.REDIS_RETRY_S
    assert limiter.check("k") == 0.25 and fake.calls == 3  # limited again once it answers
