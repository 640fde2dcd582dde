"""The subset of the signaling protocol (signaling/PROTOCOL.md) a load client speaks: hello,
offer, transport, speak, ping and position out; welcome, answer, transport, queued, pong,
utterance events and errors in. Requests carry ids; replies resolve them. Both voice-rtc and
the bench's reference server speak it."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from .rawws import RawWebSocket

PROTOCOL_VERSION = 1


class Refused(Exception):
    """The server answered a request with an `error` message."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"{body.get('code')}: {body.get('detail') or body.get('message')}")
        self.code = str(body.get("code", ""))
        self.body = body


class Signaling:
    """JSON requests and replies on one raw WebSocket; binary messages go to `on_binary`."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.on_event: Callable[[dict[str, Any]], None] = lambda _event: None
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._next_id = 1
        ws.on_text = self._on_text
        ws.closed.add_done_callback(self._on_closed)

    @classmethod
    async def connect(cls, url: str) -> "Signaling":
        return cls(await RawWebSocket.connect(url))

    def send(self, body: dict[str, Any]) -> None:
        self.ws.send_text(json.dumps(body, separators=(",", ":")))

    async def request(
        self, body: dict[str, Any], reply_type: str, timeout: float = 15.0
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = (reply_type, future)
        try:
            self.send({**body, "id": request_id})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def hello(self, token: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "hello", "version": PROTOCOL_VERSION}
        if token:
            body["token"] = token
        return await self.request(body, "welcome")

    async def close(self) -> None:
        await self.ws.close()

    def _on_text(self, text: str) -> None:
        body = json.loads(text)
        kind = body.get("type")
        pending = self._pending.get(body.get("id", -1))
        if pending is not None and kind in (pending[0], "error"):
            future = pending[1]
            if not future.done():
                if kind == "error":
                    future.set_exception(Refused(body))
                else:
                    future.set_result(body)
            return
        if kind in ("utterance_started", "utterance_ended", "error", "drain"):
            self.on_event(body)

    def _on_closed(self, _closed: "asyncio.Future[None]") -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("signaling closed"))
