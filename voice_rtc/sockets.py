"""Connections at the socket: how many the process takes, and how long it waits for them.

Sockets cost a file descriptor each, and a process that runs out of them cannot accept (asyncio
then logs `accept() out of system resource` and stops listening for a while) nor open the UDP
sockets WebRTC needs. So the server raises its descriptor limit to the hard limit at start and
takes at most a third of it in connections (a WebRTC listener also holds a UDP socket or two):
past that, a new connection is closed the moment it is accepted. And a connection that does
not send its request headers in time (an idle socket, a slow-header attack) is dropped; what
happens after the headers is the application's to time (bodies, the WebSocket's hello).
"""

import asyncio
import logging
import random
import resource
from collections.abc import Callable
from typing import Final

from .logs import LogThrottle

log = logging.getLogger(__name__)
# Thousands of these can come at once; they are summarized, not written each.
SLOW_HEADERS = LogThrottle(log)
OVER_LIMIT = LogThrottle(log)

HEADERS_END: Final = b"\r\n\r\n"


def raise_descriptor_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def connection_limit(configured: int, descriptor_limit: int) -> int:
    return configured or max(16, descriptor_limit // 3)


class ConnectionGuard:
    """A protocol factory in front of aiohttp's: it counts connections, closes those over the
    limit at once, and closes those whose request headers take longer than `header_timeout_s`."""

    def __init__(
        self,
        handler_factory: Callable[[], asyncio.Protocol],
        max_connections: int,
        header_timeout_s: float,
    ) -> None:
        self._handler_factory = handler_factory
        self.max_connections = max_connections
        self._header_timeout_s = header_timeout_s
        self.open = 0
        self.refused = 0  # over the limit, closed at once
        self.timed_out = 0  # headers too slow

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.max_connections:
            self.refused += 1
            OVER_LIMIT.info("connection_refused", limit=self.max_connections)
            return _Refused()
        return _Guarded(self, self._handler_factory)


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Guarded(asyncio.Protocol):
    """A connection, watched until its first request's headers are in. aiohttp's handler is
    made only once the client sends something: a socket that never does (thousands, in an
    attack) then costs a transport and a timer, not a request handler and its task."""

    def __init__(
        self, guard: ConnectionGuard, make_handler: Callable[[], asyncio.Protocol]
    ) -> None:
        self._guard = guard
        self._make_handler = make_handler
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for a header end split between reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard.open += 1
        self._transport = transport
        loop = asyncio.get_running_loop()
        # Spread a little, so that sockets opened together do not all time out in one turn
        # of the loop.
        timeout = self._guard._header_timeout_s * random.uniform(1.0, 1.25)
        self._timer = loop.call_later(timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self._handler is None:
            assert self._transport is not None
            self._handler = self._make_handler()
            self._handler.connection_made(self._transport)
        if self._timer is not None:
            if HEADERS_END in self._tail + data:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = data[-3:]
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler else None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.open -= 1
        if self._timer is not None:
            self._timer.cancel()
        if self._handler is not None:
            self._handler.connection_lost(exc)

    def _too_slow(self) -> None:
        self._timer = None
        transport = self._transport
        if isinstance(transport, asyncio.Transport) and not transport.is_closing():
            self._guard.timed_out += 1
            SLOW_HEADERS.info("http_headers_timeout", timeout_s=self._guard._header_timeout_s)
            transport.abort()
