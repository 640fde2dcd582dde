"""The WebSocket endpoints: the listener's (`/ws`) and the agent's (`/agent`). Each checks where
an upgrade comes from, then gives the WebSocket its channel's connection; the endpoint also
tells them all when the server drains.

New sockets are budgeted per address, and those that have not said hello yet are capped per
address: an upgrade over either is refused before it becomes a WebSocket (HTTP 429, cheap), so
opening sockets by the thousand, or reconnecting in a loop, costs an attacker more than it
costs the server.
"""

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable

from aiohttp import web

from voice_rtc import metrics
from voice_rtc.auth import Authenticator
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, error_body
from voice_rtc.http_security import client_ip, origin_allowed
from voice_rtc.limits import Limits
from voice_rtc.logs import LogThrottle
from voice_rtc.media import Media
from voice_rtc.ratelimit import TokenBucket
from voice_rtc.registry import SessionRegistry

from .agent import AgentConnection
from .channel import Channel
from .listener import ListenerConnection
from .messages import message

log = logging.getLogger(__name__)

REFUSED = LogThrottle(log)  # refused upgrades: a flood of them writes a few lines and a count
MAX_TRACKED_ADDRESSES = 100_000
CLOSE_TIMEOUT_S = 2.0  # how long a closing socket may take to answer our close
SOCKET_BURST_S = 1  # an address may open this many seconds' worth of sockets at once
# aiohttp closes the socket (1009) past its own cap; below it we answer MESSAGE_TOO_LARGE and
# keep the connection, so the cap sits well above our limit.
_HARD_CAP_FACTOR = 4
Hello = Callable[[], None]  # what a connection calls once it has said a valid hello


class SignalingEndpoint:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionRegistry,
        media: Media,
        auth: Authenticator,
        limits: Limits,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._media = media
        self._auth = auth
        self._limits = limits
        self._connections: set[Channel] = set()
        self._pending: Counter[str] = Counter()  # sockets per address that said no hello yet
        self._new_sockets: dict[str, TokenBucket] = {}  # per address

    async def listener(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, self._listener_connection)

    async def agent(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, self._agent_connection)

    def _listener_connection(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport, ip: str, on_hello: Hello
    ) -> Channel:
        return ListenerConnection(
            ws,
            transport,
            self._settings,
            self._sessions,
            self._media,
            self._auth,
            self._limits,
            ip,
            on_hello=on_hello,
        )

    def _agent_connection(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport, _ip: str, on_hello: Hello
    ) -> Channel:
        return AgentConnection(
            ws, transport, self._settings, self._sessions, self._auth, on_hello=on_hello
        )

    async def _handle(
        self, request: web.Request, make: "Callable[..., Channel]"
    ) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, request.host, self._settings):
            # Cross-site WebSocket hijacking: a page elsewhere riding on this browser's access.
            metrics.ERRORS.labels("ORIGIN_NOT_ALLOWED", "server").inc()
            log.warning("origin_refused", extra={"origin": origin[:200]})
            return web.json_response(
                {"type": "error", **error_body(ErrorCode.ORIGIN_NOT_ALLOWED, origin[:200])},
                status=403,
            )
        ip = client_ip(request, self._settings.trust_x_forwarded_for)
        if not self._socket_budget(ip).take():
            rate = self._settings.sockets_per_second_per_ip
            return self._refuse("socket_rate_refused", f"over {rate:g} new sockets a second", 1.0)
        if self._pending[ip] >= self._settings.max_pending_per_ip:
            detail = f"{self._pending[ip]} sockets from this address have not said hello"
            return self._refuse("pending_sockets_refused", detail, self._settings.hello_timeout_s)
        self._pending[ip] += 1
        pending = True

        def said_hello() -> None:
            nonlocal pending
            if pending:
                pending = False
                self._pending[ip] -= 1
                if not self._pending[ip]:
                    del self._pending[ip]

        try:
            return await self._serve(request, ip, said_hello, make)
        finally:
            said_hello()  # or closed without one

    def _refuse(self, event: str, detail: str, retry_after_s: float) -> web.Response:
        metrics.ERRORS.labels(ErrorCode.RATE_LIMIT_EXCEEDED.value, "server").inc()
        REFUSED.info(event, detail=detail)
        body = {"type": "error", **error_body(ErrorCode.RATE_LIMIT_EXCEEDED, detail)}
        response = web.json_response({**body, "retry_after_s": retry_after_s}, status=429)
        response.headers["Retry-After"] = str(math.ceil(retry_after_s))
        return response

    def _socket_budget(self, ip: str) -> TokenBucket:
        budget = self._new_sockets.get(ip)
        if budget is None:
            if len(self._new_sockets) >= MAX_TRACKED_ADDRESSES:
                self._new_sockets.clear()  # rare: it only forgets who was flooding lately
            rate = self._settings.sockets_per_second_per_ip
            budget = self._new_sockets[ip] = TokenBucket(rate, rate * SOCKET_BURST_S)
        return budget

    async def _serve(
        self,
        request: web.Request,
        ip: str,
        said_hello: Hello,
        make: "Callable[..., Channel]",
    ) -> web.StreamResponse:
        # No per-message compression: JSON this small gains little, and audio frames are written
        # straight to the transport (see transports/websocket.py).
        ws = web.WebSocketResponse(
            max_msg_size=self._settings.max_message_bytes * _HARD_CAP_FACTOR,
            compress=False,
            timeout=CLOSE_TIMEOUT_S,
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:  # the client went away during the upgrade
            return ws
        connection = make(ws, transport, ip, said_hello)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
        return ws

    async def announce_drain(self, deadline_s: float) -> None:
        """Tell every client the server is going: finish up, then reconnect (elsewhere)."""
        notice = message("drain", deadline_ms=round(deadline_s * 1000))
        await asyncio.gather(*(c.send(notice) for c in list(self._connections)))

    async def close_all(self, _app: web.Application | None = None) -> None:
        """Close every open socket (1001 going away), so shutdown does not wait on clients."""
        await asyncio.gather(*(c.close(1001, b"server shutting down") for c in self._connections))
