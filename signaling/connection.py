"""One client's signaling connection: it reads one message at a time, validates it and acts on
the client's session. A bad message gets an `error` reply with a stable code and the connection
carries on; nothing a client sends reaches another client's session. The connection controls a
session until it closes; the session then waits out its grace period for the client to resume.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from voice_rtc import metrics
from voice_rtc.auth import Authenticator, AuthError
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, error_body
from voice_rtc.limits import Limits, RateLimited
from voice_rtc.logs import LogThrottle, failure_fields
from voice_rtc.media import Media
from voice_rtc.playout import (
    EndReason,
    PlayoutFull,
    UtteranceEnded,
)
from voice_rtc.ratelimit import TokenBucket
from voice_rtc.session import (
    Draining,
    PlayedPosition,
    Session,
    SessionLimitReached,
    SessionRegistry,
)
from voice_rtc.transports.webrtc import InvalidOffer, WebRTCPeer
from voice_rtc.turn import ice_servers
from voice_rtc.utterance import PendingTextFull, UtteranceClosed

from .messages import (
    PROTOCOL_VERSION,
    Cancel,
    ClientMessage,
    Hello,
    Offer,
    Ping,
    Position,
    PositionReport,
    ProtocolError,
    RequestId,
    Speak,
    Transport,
    event_message,
    message,
    parse_client_message,
    welcome_message,
)

log = logging.getLogger(__name__)
# What clients' input makes us log, for every connection together: an attacker opening socket
# after socket floods the log no more than one sending message after message.
CLIENT_INPUT = LogThrottle(log)

CLOSE_REPLACED = 4001  # the session was resumed on another connection: do not reconnect
CLOSE_HEARTBEAT_TIMEOUT = 4002  # the client went silent: reconnect if you are still there
CLOSE_POLICY_VIOLATION = 1008  # too many messages, or no hello in time
BEFORE_HELLO_BUDGET = (5.0, 10)  # messages a second, and at once, before a valid hello


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        settings: Settings,
        sessions: SessionRegistry,
        media: Media,
        auth: Authenticator,
        limits: Limits,
        ip: str,
        on_hello: Callable[[], None] = lambda: None,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._media = media
        self._settings = settings
        self._sessions = sessions
        self._auth = auth
        self._limits = limits
        self._ip = ip
        self._send_lock = asyncio.Lock()
        self._session: Session | None = None
        self._last_heard = time.monotonic()
        self._tasks: set[asyncio.Task[object]] = set()
        self._user_id = "anonymous"  # who the token says this is (authentication sets it)
        self._on_hello = on_hello
        # Every message spends from this before it is even parsed: no client, with a session
        # or without, takes more than its share of the event loop. Before hello a client has
        # next to nothing to say (hello, a ping), so its budget is smaller until then.
        self._budget = TokenBucket(*BEFORE_HELLO_BUDGET)

    async def run(self) -> None:
        self._spawn(self._watch_heartbeat(), "heartbeat-watchdog")
        self._spawn(self._watch_hello(), "hello-watchdog")
        try:
            async for msg in self._ws:
                self._last_heard = time.monotonic()
                if not self._budget.take():
                    await self._refuse_flood()
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._receive(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._send_error(
                        ErrorCode.INVALID_FIELD, "binary messages are not accepted"
                    )
                elif msg.type == WSMsgType.ERROR:
                    error = type(self._ws.exception()).__name__
                    CLIENT_INPUT.info("socket_error", error, error=error)
                # A backlog of queued messages is read without the loop ever waiting: yield
                # after each, so the clock and every other connection get their turn.
                await asyncio.sleep(0)
        finally:
            await self._close()

    async def _refuse_flood(self) -> None:
        """Over its message budget: the client is told once, then the socket is closed."""
        detail = "too many messages; this connection is closed"
        await self._send_error(ErrorCode.RATE_LIMIT_EXCEEDED, detail, extra={"retry_after_s": 1.0})
        CLIENT_INPUT.info("message_budget_exceeded", session_id=self._session_id)
        # Read nothing more from it: the closing handshake would otherwise read (and parse)
        # everything the client keeps sending until it answers the close, if ever.
        self._transport.pause_reading()
        await self._ws.close(code=CLOSE_POLICY_VIOLATION, message=b"message rate exceeded")

    async def _watch_hello(self) -> None:
        """A socket that says no valid hello in time costs a descriptor and nothing else."""
        await asyncio.sleep(self._settings.hello_timeout_s)
        if self._session is None:
            detail = f"no hello within {self._settings.hello_timeout_s:g} s"
            await self._send_error(ErrorCode.HELLO_REQUIRED, detail)
            await self._ws.close(code=CLOSE_POLICY_VIOLATION, message=b"no hello")

    async def send(self, body: dict[str, Any]) -> None:
        await self._send(body)

    async def close(self, code: int, reason: bytes) -> None:
        await self._ws.close(code=code, message=reason)

    async def replaced(self) -> None:
        """The client resumed its session on another connection."""
        self._stop_tasks()
        self._session = None
        await self._ws.close(code=CLOSE_REPLACED, message=b"session resumed elsewhere")

    async def _receive(self, raw: str) -> None:
        size = len(raw.encode())
        if size > self._settings.max_message_bytes:
            detail = f"{size} bytes; the limit is {self._settings.max_message_bytes}"
            await self._send_error(ErrorCode.MESSAGE_TOO_LARGE, detail)
            return
        request_id = None
        try:
            msg = parse_client_message(raw)
            request_id = msg.id
            await self._dispatch(msg)
        except ProtocolError as exc:
            await self._send_error(exc.code, exc.detail, exc.request_id or request_id, exc.extra)
        except RateLimited as exc:
            retry_after = {"retry_after_s": round(exc.retry_after_s, 1)}
            await self._send_error(ErrorCode.RATE_LIMIT_EXCEEDED, str(exc), request_id, retry_after)
        except Exception as exc:
            # A bug, not bad input. Logged without the exception's message: it may quote what
            # the client sent.
            log.error(
                "message_failed", extra={"session_id": self._session_id, **failure_fields(exc)}
            )
            await self._send_error(ErrorCode.INTERNAL_ERROR, request_id=request_id)

    async def _dispatch(self, msg: ClientMessage) -> None:
        if isinstance(msg, Ping):
            if msg.rtt_ms is not None:
                metrics.HEARTBEAT_RTT.observe(msg.rtt_ms / 1000)
            await self._reply(msg, message("pong", ts=msg.ts, server_time=time.time()))
            return
        if isinstance(msg, Hello):
            await self._hello(msg)
            return
        session = self._session
        if session is None:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, f"{msg.type} before hello")
        if isinstance(msg, PositionReport):
            session.report_position(_played(msg))
        elif isinstance(msg, Speak):
            await self._speak(session, msg)
        elif isinstance(msg, Cancel):
            session.playout.cancel()
        elif isinstance(msg, Offer):
            await self._offer(session, msg)
        elif isinstance(msg, Transport):
            await self._use_websocket_audio(session, msg)

    async def _hello(self, msg: Hello) -> None:
        if self._session is not None:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "hello was already sent")
        if msg.version != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"version {msg.version}; this server speaks {PROTOCOL_VERSION}",
            )
        await self._limits.connect_from(self._ip)
        try:
            identity = self._auth.verify(msg.token)
        except AuthError as exc:
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, str(exc)) from None
        self._user_id = identity.user_id
        await self._limits.connect_as(identity.user_id)
        if msg.resume is not None:
            session = self._sessions.by_resume_token(msg.resume)
            if session is not None and session.user_id != identity.user_id:
                # Someone else's token: answered as if there were no such session, so that a
                # stolen resume token reveals nothing and achieves nothing.
                log.warning("resume_refused", extra={"session_id": session.id})
                session = None
            outcome = "resumed" if session else "session_not_found"
            metrics.RECONNECTS.labels(outcome).inc()
            if session is None:
                raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "no session has that resume token")
        else:
            try:
                session = await self._sessions.create(identity.user_id)
            except SessionLimitReached as exc:
                retry = {"retry_after_s": exc.retry_after_s}
                raise ProtocolError(ErrorCode.SERVER_BUSY, str(exc), extra=retry) from None
            except Draining as exc:
                raise ProtocolError(ErrorCode.SERVER_DRAINING, str(exc)) from None
        previous = session.attach(self)
        if msg.position is not None:
            session.report_position(_played(msg.position))
        await session.set_audio(None)  # the client negotiates a new transport after welcome
        if isinstance(previous, Connection):
            await previous.replaced()
        self._session = session
        self._on_hello()
        settings = self._settings
        self._budget = TokenBucket(
            settings.connection_messages_per_second, settings.connection_message_burst
        )
        self._spawn(self._forward_events(session, msg.last_event), "events")
        if msg.resume is not None:
            log.info("session_resumed", extra={"session_id": session.id})
        welcome = welcome_message(
            session, self._settings, self._ice_servers(), resumed=msg.resume is not None
        )
        await self._reply(msg, welcome)

    def _ice_servers(self) -> list[dict[str, Any]]:
        settings = self._settings
        return ice_servers(
            settings.ice_server_urls,
            settings.turn_url_list,
            settings.turn_secret,
            self._user_id,
            settings.turn_ttl_s,
        )

    async def _offer(self, session: Session, msg: Offer) -> None:
        if self._settings.transport == "websocket":
            raise ProtocolError(
                ErrorCode.TRANSPORT_NOT_ALLOWED, "this server streams over WebSocket"
            )
        peer = self._media.webrtc_peer(session)
        peer.on_state = lambda state: self._on_webrtc_state(session, peer, state)
        try:
            answer = await peer.answer(msg.sdp)
        except InvalidOffer as exc:
            await peer.close()
            raise ProtocolError(ErrorCode.INVALID_SDP, str(exc)) from None
        transport_id = await session.set_audio(peer)  # replaces any previous transport
        await self._reply(msg, message("answer", sdp=answer, transport_id=transport_id))

    def _on_webrtc_state(self, session: Session, peer: WebRTCPeer, state: str) -> None:
        log.info("webrtc_state", extra={"session_id": session.id, "state": state})
        if state == "failed" and session.audio is peer:
            self._spawn(session.set_audio(None), "webrtc-failed")

    async def _use_websocket_audio(self, session: Session, msg: Transport) -> None:
        if self._settings.transport == "webrtc":
            raise ProtocolError(ErrorCode.TRANSPORT_NOT_ALLOWED, "this server streams over WebRTC")
        metrics.TRANSPORT_FALLBACKS.labels(msg.reason).inc()
        audio = self._media.websocket_audio(session, self._ws, self._transport, msg.codec)
        # The reply goes out before set_audio starts the frames, so it comes first.
        await self._reply(
            msg,
            message(
                "transport",
                mode="websocket",
                codec=audio.codec.label,
                transport_id=session.next_transport_id,
            ),
        )
        await session.set_audio(audio)

    async def _speak(self, session: Session, msg: Speak) -> None:
        limit = self._settings.max_text_chars
        if len(msg.text) > limit:
            detail = f"{len(msg.text)} characters; the limit is {limit}"
            raise ProtocolError(ErrorCode.TEXT_TOO_LONG, detail)
        # A piece of text costs a character at least: empty pieces are not free.
        await self._limits.speak(session.user_id, max(1, len(msg.text)), msg.utterance_id is None)
        try:
            if msg.utterance_id is not None:
                session.playout.append(msg.utterance_id, msg.text, msg.final)
                utterance_id = msg.utterance_id
            elif not msg.text.strip() and msg.final:
                raise ProtocolError(ErrorCode.INVALID_FIELD, "speak.text: the text is empty")
            elif self._sessions.draining:
                raise ProtocolError(ErrorCode.SERVER_DRAINING, "no new speech while shutting down")
            else:
                utterance_id = session.playout.enqueue(msg.text, msg.final)
        except PlayoutFull as exc:
            raise ProtocolError(ErrorCode.QUEUE_FULL, str(exc)) from None
        except UtteranceClosed as exc:
            raise ProtocolError(ErrorCode.UTTERANCE_CLOSED, str(exc)) from None
        except PendingTextFull as exc:
            raise ProtocolError(ErrorCode.TEXT_TOO_LONG, str(exc)) from None
        await self._reply(msg, message("queued", utterance_id=utterance_id))

    async def _forward_events(self, session: Session, last_sent: int) -> None:
        while True:
            for event_id, event in await session.events_after(last_sent):
                await self._send({**event_message(event), "event_id": event_id})
                last_sent = event_id
                if isinstance(event, UtteranceEnded) and event.reason is EndReason.FAILED:
                    detail = f"utterance {event.utterance_id} could not be synthesized"
                    await self._send_error(ErrorCode.TTS_SERVICE_UNAVAILABLE, detail)

    async def _watch_heartbeat(self) -> None:
        """A client silent for two heartbeat intervals plus the timeout is gone."""
        settings = self._settings
        dead_after = 2 * settings.heartbeat_interval_s + settings.heartbeat_timeout_s
        while True:
            silent = time.monotonic() - self._last_heard
            if silent >= dead_after:
                log.info(
                    "heartbeat_timeout", extra={"session_id": self._session_id, "silent_s": silent}
                )
                await self._ws.close(code=CLOSE_HEARTBEAT_TIMEOUT, message=b"heartbeat timeout")
                return
            await asyncio.sleep(min(dead_after - silent, settings.heartbeat_interval_s) + 0.01)

    async def _send_error(
        self,
        code: ErrorCode,
        detail: str = "",
        request_id: RequestId | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        metrics.ERRORS.labels(code.value, "server").inc()
        CLIENT_INPUT.info(
            "client_error", code.value, session_id=self._session_id, code=code.value, detail=detail
        )
        body = message("error", **error_body(code, detail), **(extra or {}))
        await self._send(body if request_id is None else {**body, "id": request_id})

    async def _reply(self, request: ClientMessage, body: dict[str, Any]) -> None:
        await self._send(body if request.id is None else {**body, "id": request.id})

    async def _send(self, body: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            try:
                await self._ws.send_json(body)
            except ConnectionError:
                pass  # the reader sees the close and cleans up

    def _spawn(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop_tasks(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()

    async def _close(self) -> None:
        self._stop_tasks()
        session, self._session = self._session, None
        if session is not None:
            await session.detach(self, self._settings.session_grace_s)

    @property
    def _session_id(self) -> str | None:
        return self._session.id if self._session else None


def _played(position: Position) -> PlayedPosition:
    return PlayedPosition(position.transport_id, position.seq, position.rtp_timestamp)
