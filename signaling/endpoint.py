"""The `/ws` endpoint: one WebSocket per client carrying the signaling protocol.

A `Connection` reads one message at a time, validates it and acts on the client's session; a
bad message gets an `error` reply with a stable code and the connection carries on. Nothing a
client sends reaches another client's session.
"""

import asyncio
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from voice_rtc import metrics
from voice_rtc.audio import CHANNELS, FRAME_MS, SAMPLE_RATE
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, error_body
from voice_rtc.playout import PlayoutEvent, PlayoutFull, UtteranceEnded, UtteranceStarted
from voice_rtc.session import Session, SessionLimitReached, SessionRegistry
from voice_rtc.transports.webrtc import InvalidOffer, WebRTCPeer, ice_configuration

from .messages import (
    PROTOCOL_VERSION,
    Cancel,
    ClientMessage,
    Hello,
    Offer,
    Ping,
    ProtocolError,
    Speak,
    message,
    parse_client_message,
)

log = logging.getLogger(__name__)

# aiohttp closes the socket (1009) past its own cap; below it we answer MESSAGE_TOO_LARGE and
# keep the connection, so the cap sits well above our limit.
_HARD_CAP_FACTOR = 4


class SignalingEndpoint:
    def __init__(self, settings: Settings, sessions: SessionRegistry) -> None:
        self._settings = settings
        self._sessions = sessions
        self._sockets: set[web.WebSocketResponse] = set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=self._settings.max_message_bytes * _HARD_CAP_FACTOR)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await Connection(ws, self._settings, self._sessions).run()
        finally:
            self._sockets.discard(ws)
        return ws

    async def close_all(self, _app: web.Application | None = None) -> None:
        """Close every open socket (1001 going away), so shutdown does not wait on clients."""
        await asyncio.gather(
            *(ws.close(code=1001, message=b"server shutting down") for ws in list(self._sockets))
        )


class Connection:
    def __init__(
        self, ws: web.WebSocketResponse, settings: Settings, sessions: SessionRegistry
    ) -> None:
        self._ws = ws
        self._settings = settings
        self._sessions = sessions
        self._send_lock = asyncio.Lock()
        self._session: Session | None = None
        self._peer: WebRTCPeer | None = None
        self._event_forwarder: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.TEXT:
                    await self._receive(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._send_error(
                        ErrorCode.INVALID_FIELD, "binary messages are not accepted"
                    )
                elif msg.type == WSMsgType.ERROR:
                    log.info("socket_error", extra={"error": str(self._ws.exception())})
        finally:
            await self._close()

    async def _receive(self, raw: str) -> None:
        size = len(raw.encode())
        if size > self._settings.max_message_bytes:
            detail = f"{size} bytes; the limit is {self._settings.max_message_bytes}"
            await self._send_error(ErrorCode.MESSAGE_TOO_LARGE, detail)
            return
        try:
            await self._dispatch(parse_client_message(raw))
        except ProtocolError as exc:
            await self._send_error(exc.code, exc.detail)
        except Exception:
            log.exception("message_failed", extra={"session_id": self._session_id})
            await self._send_error(ErrorCode.INTERNAL_ERROR)

    async def _dispatch(self, msg: ClientMessage) -> None:
        if isinstance(msg, Ping):
            await self._send(message("pong", ts=msg.ts, server_time=time.time()))
            return
        if isinstance(msg, Hello):
            await self._hello(msg)
            return
        session = self._session
        if session is None:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, f"{msg.type} before hello")
        if isinstance(msg, Offer):
            await self._offer(session, msg)
        elif isinstance(msg, Speak):
            await self._speak(session, msg)
        elif isinstance(msg, Cancel):
            session.cancel()

    async def _hello(self, msg: Hello) -> None:
        if self._session is not None:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "hello was already sent")
        if msg.version != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"version {msg.version}; this server speaks {PROTOCOL_VERSION}",
            )
        try:
            session = self._sessions.create()
        except SessionLimitReached as exc:
            raise ProtocolError(ErrorCode.SERVER_BUSY, str(exc)) from None
        self._session = session
        self._event_forwarder = asyncio.create_task(self._forward_events(session), name="events")
        settings = self._settings
        await self._send(
            message(
                "welcome",
                version=PROTOCOL_VERSION,
                session_id=session.id,
                resume_token=session.resume_token,
                ice_servers=[{"urls": url} for url in settings.ice_server_urls],
                audio={"sample_rate": SAMPLE_RATE, "channels": CHANNELS, "frame_ms": FRAME_MS},
                limits={
                    "max_text_chars": settings.max_text_chars,
                    "max_message_bytes": settings.max_message_bytes,
                    "max_queued_utterances": settings.max_queued_utterances,
                },
            )
        )

    async def _offer(self, session: Session, msg: Offer) -> None:
        await self._close_peer()  # a new offer replaces the listener's previous connection
        peer = WebRTCPeer(
            session, ice_configuration(self._settings.ice_server_urls), self._settings.max_sdp_bytes
        )
        peer.on_state = lambda state: log.info(
            "webrtc_state", extra={"session_id": session.id, "state": state}
        )
        try:
            answer = await peer.answer(msg.sdp)
        except InvalidOffer as exc:
            await peer.close()
            raise ProtocolError(ErrorCode.INVALID_SDP, str(exc)) from None
        self._peer = peer
        await self._send(message("answer", sdp=answer))

    async def _speak(self, session: Session, msg: Speak) -> None:
        limit = self._settings.max_text_chars
        if len(msg.text) > limit:
            raise ProtocolError(
                ErrorCode.TEXT_TOO_LONG, f"{len(msg.text)} characters; the limit is {limit}"
            )
        if not msg.text.strip():
            raise ProtocolError(ErrorCode.INVALID_FIELD, "speak.text: the text is empty")
        try:
            utterance_id = session.speak(msg.text)
        except PlayoutFull as exc:
            raise ProtocolError(ErrorCode.QUEUE_FULL, str(exc)) from None
        await self._send(message("queued", utterance_id=utterance_id, ref=msg.ref))

    async def _forward_events(self, session: Session) -> None:
        while True:
            await self._send(_event_message(await session.events.get()))

    async def _send_error(self, code: ErrorCode, detail: str = "") -> None:
        metrics.SIGNALING_ERRORS.labels(code.value).inc()
        log.info(
            "client_error",
            extra={"session_id": self._session_id, "code": code.value, "detail": detail},
        )
        await self._send(message("error", **error_body(code, detail)))

    async def _send(self, body: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            try:
                await self._ws.send_json(body)
            except ConnectionError:
                pass  # the reader sees the close and cleans up

    async def _close_peer(self) -> None:
        peer, self._peer = self._peer, None
        if peer is not None:
            await peer.close()

    async def _close(self) -> None:
        if self._event_forwarder is not None:
            self._event_forwarder.cancel()
        await self._close_peer()
        if self._session is not None:
            await self._sessions.close(self._session)

    @property
    def _session_id(self) -> str | None:
        return self._session.id if self._session else None


def _event_message(event: PlayoutEvent) -> dict[str, Any]:
    if isinstance(event, UtteranceStarted):
        return message("utterance_started", utterance_id=event.utterance_id, seq=event.seq)
    assert isinstance(event, UtteranceEnded)
    return message(
        "utterance_ended",
        utterance_id=event.utterance_id,
        frames=event.frames,
        reason=event.reason.value,
    )
