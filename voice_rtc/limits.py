"""What is rate-limited, for whom, and how much: the `limit_*` settings, per user and per IP.

Over a limit, the caller gets RateLimited with how long to wait. If the shared store (Redis) is
down, requests are let through and a warning logged: limits protect the service, and an outage
of the store should not become an outage of speech.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import redis

from .config import Settings
from .ratelimit import Limiter, MemoryLimiter, RedisLimiter, Verdict

log = logging.getLogger(__name__)

MINUTE, HOUR = 60, 3600
SESSION_LEASE_S = 120  # a session's slot, renewed while it lives; a crashed process's expire


class RateLimited(Exception):
    def __init__(self, what: str, retry_after_s: float) -> None:
        super().__init__(f"too many {what}; retry in {retry_after_s:.0f} s")
        self.what = what
        self.retry_after_s = retry_after_s


class Limits:
    def __init__(self, limiter: Limiter, settings: Settings) -> None:
        self._limiter = limiter
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> "Limits":
        limiter = RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
        return cls(limiter, settings)

    @property
    def shared(self) -> bool:
        return bool(self._settings.redis_url)

    async def connect_from(self, ip: str) -> None:
        """Before the token is even checked: floods of bad tokens spend the address's budget."""
        limit = self._settings.limit_connections_per_minute
        await self._spend("connections", f"conn:ip:{ip}", 1, limit, MINUTE)

    async def connect_as(self, user_id: str) -> None:
        limit = self._settings.limit_connections_per_minute
        await self._spend("connections", f"conn:user:{user_id}", 1, limit, MINUTE)

    async def speak(self, user_id: str, chars: int, new_utterance: bool) -> None:
        settings = self._settings
        if new_utterance:
            await self._spend(
                "speak requests", f"speak:user:{user_id}", 1, settings.limit_speak_per_hour, HOUR
            )
        await self._spend(
            "characters", f"chars:user:{user_id}", chars, settings.limit_chars_per_minute, MINUTE
        )

    async def telemetry(self, user_id: str, events: int) -> None:
        limit = self._settings.limit_telemetry_events_per_minute
        await self._spend("telemetry events", f"telemetry:user:{user_id}", events, limit, MINUTE)

    async def open_session(self, user_id: str, session_id: str) -> None:
        limit = self._settings.limit_sessions_per_user
        key = f"sessions:user:{user_id}"
        await self._check("sessions", self._limiter.lease(key, session_id, limit, SESSION_LEASE_S))

    async def close_session(self, user_id: str, session_id: str) -> None:
        try:
            await self._limiter.release(f"sessions:user:{user_id}", session_id)
        except redis.RedisError as exc:
            log.warning("rate_limit_store_unavailable", extra={"error": repr(exc)})

    async def keep_sessions(self, live: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Renew the slots of live sessions (user id, session id) until cancelled."""
        while True:
            await asyncio.sleep(SESSION_LEASE_S / 3)
            for user_id, session_id in list(live()):
                try:
                    await self.open_session(user_id, session_id)
                except RateLimited:
                    pass  # it holds its slot already; renewing cannot be refused

    async def healthy(self) -> bool:
        return await self._limiter.healthy()

    async def close(self) -> None:
        await self._limiter.close()

    async def _spend(self, what: str, key: str, amount: int, limit: int, window_s: int) -> None:
        await self._check(what, self._limiter.spend(key, amount, limit, window_s))

    async def _check(self, what: str, verdict: Awaitable[Verdict]) -> None:
        try:
            result = await verdict
        except redis.RedisError as exc:
            log.warning("rate_limit_store_unavailable", extra={"error": repr(exc)})
            return
        if not result.allowed:
            raise RateLimited(what, result.retry_after_s)
