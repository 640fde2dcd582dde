"""The `/ws` endpoint: it checks where an upgrade comes from, then gives each WebSocket a
`Connection` carrying the signaling protocol; it also tells them all when the server drains.
"""

import asyncio
import logging

from aiohttp import web

from voice_rtc import metrics
from voice_rtc.auth import Authenticator
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, error_body
from voice_rtc.http_security import client_ip, origin_allowed
from voice_rtc.limits import Limits
from voice_rtc.media import Media
from voice_rtc.session import SessionRegistry

from .connection import Connection
from .messages import message

log = logging.getLogger(__name__)

# aiohttp closes the socket (1009) past its own cap; below it we answer MESSAGE_TOO_LARGE and
# keep the connection, so the cap sits well above our limit.
_HARD_CAP_FACTOR = 4


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
        self._connections: set[Connection] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, request.host, self._settings):
            # Cross-site WebSocket hijacking: a page elsewhere riding on this browser's access.
            metrics.ERRORS.labels("ORIGIN_NOT_ALLOWED", "server").inc()
            log.warning("origin_refused", extra={"origin": origin[:200]})
            return web.json_response(
                {"type": "error", **error_body(ErrorCode.ORIGIN_NOT_ALLOWED, origin[:200])},
                status=403,
            )
        # No per-message compression: JSON this small gains little, and audio frames are written
        # straight to the transport (see transports/websocket.py).
        ws = web.WebSocketResponse(
            max_msg_size=self._settings.max_message_bytes * _HARD_CAP_FACTOR, compress=False
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:  # the client went away during the upgrade
            return ws
        ip = client_ip(request, self._settings.trust_x_forwarded_for)
        connection = Connection(
            ws,
            transport,
            self._settings,
            self._sessions,
            self._media,
            self._auth,
            self._limits,
            ip,
        )
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
