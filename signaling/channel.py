"""One WebSocket of either channel (the listener's, the agent's): its I/O and its guards.

It reads one message at a time, each spending from the connection's budget before it is even
parsed, and yields the event loop after each; it sends in order, never two at once; a bad
message gets an `error` with a stable code and the connection carries on; what a client can
make us log is throttled; a socket that says no valid hello in time, or nothing at all for too
long, is closed. What a message means is the subclass's `dispatch`.
"""

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from voice_rtc import metrics
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, error_body
from voice_rtc.limits import RateLimited
from voice_rtc.logs import LogThrottle, failure_fields
from voice_rtc.ratelimit import TokenBucket

from .messages import ProtocolError, RequestId, message
from .protocol import CLOSE_HEARTBEAT_TIMEOUT, CLOSE_POLICY_VIOLATION

log = logging.getLogger(__name__)
# What clients' input makes us log, for every connection together: an attacker opening socket
# after socket floods the log no more than one sending message after message.
CLIENT_INPUT = LogThrottle(log)
BEFORE_HELLO_BUDGET = (5.0, 10)  # messages a second, and at once, before a valid hello


class Channel(ABC):
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        settings: Settings,
        on_hello: Callable[[], None] = lambda: None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.settings = settings
        self._on_hello = on_hello
        self._send_lock = asyncio.Lock()
        self._last_heard = time.monotonic()
        self._tasks: set[asyncio.Task[object]] = set()
        self.greeted = False  # a valid hello came
        # Before hello a client has next to nothing to say (hello, a ping): a smaller budget.
        self._budget = TokenBucket(*BEFORE_HELLO_BUDGET)

    @abstractmethod
    def parse(self, raw: str) -> Any:
        """The message in `raw`, validated; raises ProtocolError."""

    @abstractmethod
    async def dispatch(self, msg: Any) -> None:
        """Act on a valid message; raises ProtocolError (or RateLimited) to refuse it."""

    @abstractmethod
    async def closed(self) -> None:
        """The socket is gone: let go of the session."""

    @property
    def session_id(self) -> str | None:
        """For the logs."""
        return None

    async def run(self) -> None:
        self.spawn(self._watch_heartbeat(), "heartbeat-watchdog")
        self.spawn(self._watch_hello(), "hello-watchdog")
        try:
            async for msg in self.ws:
                self._last_heard = time.monotonic()
                if not self._budget.take():
                    await self._refuse_flood()
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._receive(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self.send_error(
                        ErrorCode.INVALID_FIELD, "binary messages are not accepted"
                    )
                elif msg.type == WSMsgType.ERROR:
                    error = type(self.ws.exception()).__name__
                    CLIENT_INPUT.info("socket_error", error, error=error)
                # A backlog of queued messages is read without the loop ever waiting: yield
                # after each, so the clock and every other connection get their turn.
                await asyncio.sleep(0)
        finally:
            self.stop_tasks()
            await self.closed()

    def said_hello(self) -> None:
        """A valid hello: the full budget from now on."""
        self.greeted = True
        self._on_hello()
        settings = self.settings
        self._budget = TokenBucket(
            settings.connection_messages_per_second, settings.connection_message_burst
        )

    async def close(self, code: int, reason: bytes) -> None:
        await self.ws.close(code=code, message=reason)

    async def send(self, body: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            try:
                await self.ws.send_json(body)
            except ConnectionError:
                pass  # the reader sees the close and cleans up

    async def reply(self, request_id: RequestId | None, body: dict[str, Any]) -> None:
        await self.send(body if request_id is None else {**body, "id": request_id})

    async def send_error(
        self,
        code: ErrorCode,
        detail: str = "",
        request_id: RequestId | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        metrics.ERRORS.labels(code.value, "server").inc()
        CLIENT_INPUT.info(
            "client_error", code.value, session_id=self.session_id, code=code.value, detail=detail
        )
        await self.reply(request_id, message("error", **error_body(code, detail), **(extra or {})))

    def spawn(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop_tasks(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()

    async def _receive(self, raw: str) -> None:
        size = len(raw.encode())
        if size > self.settings.max_message_bytes:
            detail = f"{size} bytes; the limit is {self.settings.max_message_bytes}"
            await self.send_error(ErrorCode.MESSAGE_TOO_LARGE, detail)
            return
        request_id = None
        try:
            msg = self.parse(raw)
            request_id = msg.id
            await self.dispatch(msg)
        except ProtocolError as exc:
            await self.send_error(exc.code, exc.detail, exc.request_id or request_id, exc.extra)
        except RateLimited as exc:
            retry_after = {"retry_after_s": round(exc.retry_after_s, 1)}
            await self.send_error(ErrorCode.RATE_LIMIT_EXCEEDED, str(exc), request_id, retry_after)
        except Exception as exc:
            # A bug, not bad input. Logged without the exception's message: it may quote what
            # the client sent.
            log.error(
                "message_failed", extra={"session_id": self.session_id, **failure_fields(exc)}
            )
            await self.send_error(ErrorCode.INTERNAL_ERROR, request_id=request_id)

    async def _refuse_flood(self) -> None:
        """Over its message budget: the client is told once, then the socket is closed."""
        detail = "too many messages; this connection is closed"
        await self.send_error(ErrorCode.RATE_LIMIT_EXCEEDED, detail, extra={"retry_after_s": 1.0})
        CLIENT_INPUT.info("message_budget_exceeded", session_id=self.session_id)
        # Read nothing more from it: the closing handshake would otherwise read (and parse)
        # everything the client keeps sending until it answers the close, if ever.
        self.transport.pause_reading()
        await self.ws.close(code=CLOSE_POLICY_VIOLATION, message=b"message rate exceeded")

    async def _watch_hello(self) -> None:
        """A socket that says no valid hello in time costs a descriptor and nothing else."""
        await asyncio.sleep(self.settings.hello_timeout_s)
        if not self.greeted:
            detail = f"no hello within {self.settings.hello_timeout_s:g} s"
            await self.send_error(ErrorCode.HELLO_REQUIRED, detail)
            await self.ws.close(code=CLOSE_POLICY_VIOLATION, message=b"no hello")

    async def _watch_heartbeat(self) -> None:
        """A client silent for two heartbeat intervals plus the timeout is gone."""
        settings = self.settings
        dead_after = 2 * settings.heartbeat_interval_s + settings.heartbeat_timeout_s
        while True:
            silent = time.monotonic() - self._last_heard
            if silent >= dead_after:
                log.info(
                    "heartbeat_timeout", extra={"session_id": self.session_id, "silent_s": silent}
                )
                await self.ws.close(code=CLOSE_HEARTBEAT_TIMEOUT, message=b"heartbeat timeout")
                return
            await asyncio.sleep(min(dead_after - silent, settings.heartbeat_interval_s) + 0.01)
