"""Counting for rate limits: budgets per time window, and leases on a limited number of slots.

In memory for one process, or in Redis so every process behind a load balancer shares the same
counts. In Redis each check is a single Lua script, so it is atomic: two processes can never
both take the last unit of a budget (no read-then-write race). A window starts with the first
spend in it and ends `window_s` later (Redis' own clock keeps it, so servers' clocks need not
agree); a lease lasts `ttl_s` unless renewed, so slots held by a crashed process come back.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: float = 0.0


ALLOWED = Verdict(True)


class Limiter(Protocol):
    async def spend(self, key: str, amount: int, limit: int, window_s: int) -> Verdict:
        """Take `amount` from the budget of `limit` per window, unless that would overdraw it."""

    async def lease(self, key: str, holder: str, limit: int, ttl_s: int) -> Verdict:
        """Hold one of `limit` slots (renewing it if `holder` has one already)."""

    async def release(self, key: str, holder: str) -> None: ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """One process's counts. Bounded: windows that have ended are dropped as new ones open."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, spent)
        self._leases: dict[str, dict[str, float]] = {}  # key -> holder -> expiry
        self._max_keys = max_keys

    async def spend(self, key: str, amount: int, limit: int, window_s: int) -> Verdict:
        now = self._clock()
        end, spent = self._windows.get(key, (0.0, 0))
        if end <= now:
            end, spent = now + window_s, 0
            self._prune(now)
        if spent + amount > limit:
            return Verdict(False, end - now)
        self._windows[key] = (end, spent + amount)
        return ALLOWED

    async def lease(self, key: str, holder: str, limit: int, ttl_s: int) -> Verdict:
        now = self._clock()
        holders = {h: t for h, t in self._leases.get(key, {}).items() if t > now}
        if holder not in holders and len(holders) >= limit:
            return Verdict(False, min(holders.values()) - now)
        holders[holder] = now + ttl_s
        self._leases[key] = holders
        return ALLOWED

    async def release(self, key: str, holder: str) -> None:
        holders = self._leases.get(key, {})
        holders.pop(holder, None)
        if not holders:
            self._leases.pop(key, None)

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    def _prune(self, now: float) -> None:
        if len(self._windows) >= self._max_keys:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}


# KEYS[1] budget key; ARGV amount, limit, window ms. Returns {allowed, ms until the window ends}.
_SPEND = """
local spent = redis.call('INCRBY', KEYS[1], ARGV[1])
if spent == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if spent > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return {0, redis.call('PTTL', KEYS[1])}
end
return {1, 0}
"""

# KEYS[1] lease set (holder -> expiry ms); ARGV holder, limit, ttl ms. Returns {allowed, wait ms}.
_LEASE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(first[2]) - now}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, 0}
"""


class RedisLimiter:
    """Counts shared by every process using the same Redis."""

    def __init__(self, url: str, prefix: str = "voice-rtc:") -> None:
        self._redis = redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix
        self._spend = self._redis.register_script(_SPEND)
        self._lease = self._redis.register_script(_LEASE)

    async def spend(self, key: str, amount: int, limit: int, window_s: int) -> Verdict:
        allowed, wait_ms = await self._spend(
            keys=[self._prefix + key], args=[amount, limit, window_s * 1000]
        )
        return ALLOWED if allowed else Verdict(False, max(int(wait_ms), 0) / 1000)

    async def lease(self, key: str, holder: str, limit: int, ttl_s: int) -> Verdict:
        allowed, wait_ms = await self._lease(
            keys=[self._prefix + key], args=[holder, limit, ttl_s * 1000]
        )
        return ALLOWED if allowed else Verdict(False, max(int(wait_ms), 0) / 1000)

    async def release(self, key: str, holder: str) -> None:
        await self._redis.zrem(self._prefix + key, holder)

    async def healthy(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except redis.RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


class TokenBucket:
    """A budget that refills at `rate` a second up to `burst`: one connection's messages.

    In process and lock-free: it is asked once per message, before the message is even parsed,
    so it must cost next to nothing."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def take(self, cost: float = 1.0) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True
