"""One signaling connection: the WebSocket to the server's /ws, its requests matched to their
replies by id, its heartbeats, and the tasks that live exactly as long as it does
(signaling/PROTOCOL.md). What answers no request goes to `on_message`, binary audio to
`on_audio`."""

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..protocol import CLOSE_CODES_REPLACED, VERSION
from .errors import ServerError
from .events import ErrorBody

log = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = VERSION
CLOSE_REPLACED: Final = CLOSE_CODES_REPLACED  # resumed by another connection: do not reconnect
REQUEST_TIMEOUT_S: Final = 10.0

Message = dict[str, Any]


def signaling_url(server_url: str) -> str:
    """The WebSocket URL of a server given by its HTTP(S) address (or its ws(s) one)."""
    parts = urlsplit(server_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/ws") else parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def http_url(url: str, path: str) -> str:
    """`path` on the server whose signaling (or HTTP) URL is `url`."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class Signaling:
    """One connection to /ws, open from `open()` until `closed` is set."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        on_message: Callable[[Message], None],
        on_audio: Callable[[bytes], None],
    ) -> None:
        self._ws = ws
        self._on_message = on_message
        self._on_audio = on_audio
        self._pending: dict[int, tuple[str, asyncio.Future[Message]]] = {}
        self._request_ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()  # set once the socket is gone, however it went
        self.rtt: float | None = None  # of the last ping, in seconds
        self.spawn(self._read(), "client-signaling")

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        url: str,
        on_message: Callable[[Message], None],
        on_audio: Callable[[bytes], None],
    ) -> "Signaling":
        """Connect to `url` (ws:// or wss://)."""
        return cls(await http.ws_connect(url), on_message, on_audio)

    @property
    def is_open(self) -> bool:
        """Whether messages can be sent."""
        return not self._ws.closed and not self.closed.is_set()

    @property
    def close_code(self) -> int | None:
        """How the socket closed (4001: the session was resumed elsewhere), or None."""
        return self._ws.close_code

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coroutine` for as long as this connection: close() cancels it."""
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def send(self, body: Message) -> None:
        """Send one JSON message; ConnectionError when closed."""
        if not self.is_open:
            raise ConnectionError("signaling closed")
        await self._ws.send_json(body)

    async def request(
        self, body: Message, reply_type: str, timeout: float = REQUEST_TIMEOUT_S
    ) -> Message:
        """Send `body`; return the server's `reply_type` answer to it, or raise ServerError
        (its `error`) or ConnectionError (the socket closed first)."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        request_id = next(self._request_ids)
        self._pending[request_id] = (reply_type, future)
        try:
            await self.send({**body, "id": request_id})
            async with asyncio.timeout(timeout):
                return await future
        finally:
            del self._pending[request_id]

    async def ping(self) -> float:
        """Round-trip time of a ping, in seconds (and the last one's goes with it, for the
        server's RTT histogram)."""
        sent = time.monotonic()
        ping: Message = {"type": "ping", "ts": sent}
        if self.rtt is not None:
            ping["rtt_ms"] = round(self.rtt * 1000, 1)
        await self.request(ping, "pong")
        self.rtt = time.monotonic() - sent
        return self.rtt

    def start_heartbeat(self, interval_s: float, timeout_s: float) -> None:
        """Ping every `interval_s`; a ping unanswered for `timeout_s` means the server is
        unreachable (or frozen): the connection is closed, to be reconnected."""
        self.spawn(self._heartbeat(interval_s, timeout_s), "client-heartbeat")

    async def close(self) -> None:
        """Stop its tasks, close the socket, fail the requests still waiting. Idempotent."""
        # A task of this connection (its heartbeat, say) may be the one closing it: it is
        # left to end by itself.
        others = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._ws.close()
        self._fail_pending()
        self.closed.set()

    async def _heartbeat(self, interval_s: float, timeout_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                async with asyncio.timeout(timeout_s):
                    await self.ping()
            except (TimeoutError, ConnectionError):
                log.info("heartbeat_missed")
                await self.close()
                return

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self._on_audio(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await self._dispatch(msg.json())
        finally:
            self._fail_pending()
            self.closed.set()

    async def _dispatch(self, body: Message) -> None:
        kind = body.get("type")
        reply_type, future = self._pending.get(body.get("id", -1), ("", None))
        if future is None or future.done() or kind not in (reply_type, "error"):
            self._on_message(body)
            return
        if kind == "error":
            future.set_exception(ServerError(cast(ErrorBody, body)))
        else:
            future.set_result(body)
        # The requester acts on its reply (a transport id, say) before the next message is
        # read, as it would in a browser, where a promise settles before the next event.
        await asyncio.sleep(0)

    def _fail_pending(self) -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("signaling closed"))
