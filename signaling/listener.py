"""A listener's signaling connection (`/ws`): hello binds it to a session, then it negotiates
the audio, reports what it played, speaks (a demo session, with no agent), cancels, or tells
the session's agent what the listener typed. It controls the session until it closes; the
session then waits for the listener to come back (the grace period, or while an agent is
there). Nothing a client sends reaches another client's session."""

import logging
import time
from collections import deque
from typing import Any, Final

from aiohttp import web

from voice_rtc import metrics
from voice_rtc.auth import Authenticator
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode
from voice_rtc.limits import Limits
from voice_rtc.media import Media
from voice_rtc.registry import SessionRegistry
from voice_rtc.session import PlayedPosition, Session
from voice_rtc.session_events import EndReason, UtteranceEnded
from voice_rtc.transports.webrtc import RunStart, WebRTCPeer
from voice_rtc.turn import ice_servers

from . import commands, negotiation
from .binding import bind_listener
from .channel import Channel
from .events import listener_event, listener_welcome
from .messages import (
    Cancel,
    Hello,
    Input,
    ListenerMessage,
    Offer,
    Ping,
    Position,
    PositionReport,
    ProtocolError,
    Speak,
    Transport,
    message,
    parse_listener_message,
)
from .protocol import CLOSE_GOING_AWAY, CLOSE_REPLACED

log = logging.getLogger(__name__)
PENDING_SYNCS: Final = 16  # stretches of speech begun faster than their syncs could be sent


class ListenerConnection(Channel):
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: Any,
        settings: Settings,
        sessions: SessionRegistry,
        media: Media,
        auth: Authenticator,
        limits: Limits,
        ip: str,
        **channel: Any,
    ) -> None:
        super().__init__(ws, transport, settings, **channel)
        self._sessions = sessions
        self._media = media
        self._auth = auth
        self._limits = limits
        self._ip = ip
        self._session: Session | None = None
        self._user_id = "anonymous"  # who the token says this is (hello sets it)
        self._syncs: deque[dict[str, Any]] = deque(maxlen=PENDING_SYNCS)  # not yet sent

    @property
    def session_id(self) -> str | None:
        return self._session.id if self._session else None

    def parse(self, raw: str) -> ListenerMessage:
        return parse_listener_message(raw)

    async def dispatch(self, msg: ListenerMessage) -> None:
        if isinstance(msg, Ping):
            if msg.rtt_ms is not None:
                metrics.HEARTBEAT_RTT.observe(msg.rtt_ms / 1000)
            await self.reply(msg.id, message("pong", ts=msg.ts, server_time=time.time()))
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
            draining = self._sessions.draining
            max_chars = self.settings.max_text_chars
            utterance_id = await commands.speak(session, msg, self._limits, max_chars, draining)
            await self.reply(msg.id, message("queued", utterance_id=utterance_id))
        elif isinstance(msg, Cancel):
            commands.cancel(session)
        elif isinstance(msg, Input):
            await self._limits.speak(session.user_id, max(1, len(msg.text)), new_utterance=False)
            session.listener_input(msg.text)
        elif isinstance(msg, Offer):
            answer = await negotiation.answer_offer(
                session, self._media, self.settings, msg.sdp, self._webrtc_failed, self._sync
            )
            await self.reply(msg.id, answer)
        elif isinstance(msg, Transport):
            await negotiation.websocket_audio(
                session,
                self._media,
                self.settings,
                msg,
                self.ws,
                self.transport,
                lambda body: self.reply(msg.id, body),
            )

    async def replaced(self) -> None:
        """The client resumed its session on another connection."""
        self.stop_tasks()
        self._session = None
        await self.ws.close(code=CLOSE_REPLACED, message=b"session resumed elsewhere")

    async def moved(self) -> None:
        """The session went to another process: reconnect, and resume it there."""
        self.stop_tasks()
        self._session = None
        await self.ws.close(code=CLOSE_GOING_AWAY, message=b"session moved")

    async def closed(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.detach(self)

    async def _hello(self, msg: Hello) -> None:
        if self._session is not None:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "hello was already sent")
        session, identity = await bind_listener(
            msg, self._auth, self._limits, self._sessions, self._ip
        )
        self._user_id = identity.user_id
        resumed = session.listener_seen
        previous = session.attach(self, resumed=resumed)
        if msg.position is not None:
            session.report_position(_played(msg.position))
        await session.set_audio(None)  # the client negotiates a new transport after welcome
        if isinstance(previous, ListenerConnection):
            await previous.replaced()
        self._session = session
        self.said_hello()
        if resumed:
            log.info("session_resumed", extra={"session_id": session.id})
        welcome = listener_welcome(session, self.settings, self._ice_servers(), resumed)
        await self.reply(msg.id, welcome)
        self.spawn(self._forward_events(session, msg.last_event), "events")  # after the welcome

    def _ice_servers(self) -> list[dict[str, Any]]:
        settings = self.settings
        return ice_servers(
            settings.ice_server_urls,
            settings.turn_url_list,
            settings.turn_secret,
            self._user_id,
            settings.turn_ttl_s,
        )

    def _webrtc_failed(self, peer: WebRTCPeer) -> None:
        if self._session is not None:
            self.spawn(self._session.set_audio(None), "webrtc-failed")

    def _sync(self, transport_id: int, run: RunStart) -> None:
        """Where a stretch of speech begins in RTP time: for captions over WebRTC."""
        body = message(
            "sync",
            transport_id=transport_id,
            rtp_timestamp=run.rtp_timestamp,
            seq=run.seq,
            utterance_id=run.utterance_id,
            index=run.index,
        )
        self._syncs.append(body)
        self.spawn(self._send_syncs(), "sync")

    async def _send_syncs(self) -> None:
        """Syncs go out before the events made with them. A listener told that an utterance
        started, but not yet where its stretch begins in RTP time, takes the RTP timestamps of
        the silence before it for the last stretch's frames, and so for the utterance's first
        words (seen: a sentence's first five captions at once)."""
        while self._syncs:
            await self.send(self._syncs.popleft())

    async def _forward_events(self, session: Session, last_sent: int) -> None:
        while True:
            for event_id, event in await session.events_after(last_sent):
                last_sent = event_id
                body = listener_event(event)
                if body is None:
                    continue
                await self._send_syncs()
                await self.send({**body, "event_id": event_id})
                if isinstance(event, UtteranceEnded) and event.reason is EndReason.FAILED:
                    detail = f"utterance {event.utterance_id} could not be synthesized"
                    await self.send_error(ErrorCode.TTS_SERVICE_UNAVAILABLE, detail)


def _played(position: Position) -> PlayedPosition:
    return PlayedPosition(position.transport_id, position.seq, position.rtp_timestamp)
