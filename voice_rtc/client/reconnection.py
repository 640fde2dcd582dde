"""Reconnection: whenever the connection drops, reconnect with exponential backoff and full
jitter for up to `max_attempts` attempts, counting again from zero after a connection that
stayed up, and never sooner than a rate limit said (signaling/PROTOCOL.md, "Reconnecting").
The browser's reconnection.js does the same; this one knows nothing of sockets or audio, so
tests drive it with stand-ins and a fake clock."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from ..backoff import backoff_delay
from ..protocol import RECONNECT_STABLE_AFTER_MS
from .errors import ServerError

log = logging.getLogger(__name__)

STABLE_AFTER_S: Final = RECONNECT_STABLE_AFTER_MS / 1000  # up this long: the count starts over
# A server going away (a deploy) has handed the session to another process, which waits: come
# back at once, spread over this much so that its listeners do not all arrive together.
GOING_AWAY_JITTER_S: Final = 0.25


@dataclass(frozen=True)
class ReconnectPolicy:
    """How to reconnect: backoff base and cap, attempts, and what counts as stable."""

    base_s: float
    cap_s: float
    max_attempts: int
    stable_after_s: float = STABLE_AFTER_S

    @classmethod
    def from_welcome(
        cls, reconnect: Mapping[str, Any], max_attempts: int | None = None
    ) -> "ReconnectPolicy":
        """The server's `welcome.reconnect`; `max_attempts`, when given, overrides its own."""
        return cls(
            base_s=reconnect["base_ms"] / 1000,
            cap_s=reconnect["cap_ms"] / 1000,
            max_attempts=reconnect["max_attempts"] if max_attempts is None else max_attempts,
        )


class Connection(Protocol):
    """What the reconnector watches (a Signaling, say)."""

    @property
    def closed(self) -> asyncio.Event:
        """Set once the connection is gone."""


C = TypeVar("C", bound=Connection)


class Reconnector(Generic[C]):
    """The supervisor of a client's connections: one run() per session."""

    def __init__(
        self,
        *,
        policy: Callable[[], ReconnectPolicy],
        connect: Callable[[], Awaitable[C]],
        on_drop: Callable[[C], Awaitable[bool]],
        on_attempt: Callable[[int, int], None],
        on_attempt_failed: Callable[[Exception, int], None],
        on_give_up: Callable[[Exception], Awaitable[None]],
        going_away: Callable[[C], bool] = lambda _connection: False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        delay: Callable[[int, float, float], float] = backoff_delay,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`policy` is read at each drop (the server may have changed); `connect` makes one
        attempt, raising if it fails; `on_drop` cleans up after a dropped connection and says
        whether to reconnect; `on_attempt(attempt, max_attempts)` comes before each wait;
        `going_away(connection)`: the server closed it to hand the session on (the first
        attempt then comes at once)."""
        self._policy = policy
        self._connect = connect
        self._on_drop = on_drop
        self._on_attempt = on_attempt
        self._on_attempt_failed = on_attempt_failed
        self._on_give_up = on_give_up
        self._going_away = going_away
        self._sleep = sleep
        self._delay = delay
        self._clock = clock

    async def run(self, connection: C) -> None:
        """Watch `connection`, and each that replaces it, until a drop is not to be
        reconnected or the attempts run out."""
        attempt = 0
        while True:
            connected_at = self._clock()
            await connection.closed.wait()
            if not await self._on_drop(connection):
                return
            policy = self._policy()
            if self._clock() - connected_at >= policy.stable_after_s:
                attempt = 0
            error: Exception = ConnectionError("the connection dropped")
            told_to_wait = 0.0
            at_once = self._going_away(connection)
            while True:
                if attempt >= policy.max_attempts:
                    await self._on_give_up(error)
                    return
                attempt += 1
                self._on_attempt(attempt, policy.max_attempts)
                if at_once:
                    at_once = False
                    backoff = self._delay(0, GOING_AWAY_JITTER_S, GOING_AWAY_JITTER_S)
                else:
                    backoff = self._delay(attempt - 1, policy.base_s, policy.cap_s)
                await self._sleep(max(told_to_wait, backoff))
                try:
                    connection = await self._connect()
                    break
                except Exception as exc:  # any failure is one attempt spent, never a crash
                    log.info("reconnect_failed", extra={"attempt": attempt, "error": repr(exc)})
                    error = exc
                    told_to_wait = exc.retry_after_s if isinstance(exc, ServerError) else 0.0
                    self._on_attempt_failed(exc, attempt)
