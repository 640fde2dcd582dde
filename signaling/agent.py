"""An agent's connection (`/agent`): a backend driving one listener's session. It speaks (whole
or streamed in pieces), cancels (barge-in), asks for the session's state, and hears what
happens: the listener connecting, dropping, coming back, changing transport, typing; each
utterance queued, started, ended; and, once the listener's reports have caught up, what the
listener heard of it. Its connection and the listener's are independent: either can drop and
come back (with `last_event`) without ending the session."""

import logging
import time
from typing import Any

from aiohttp import web

from voice_rtc.auth import Authenticator
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode
from voice_rtc.limits import Limits
from voice_rtc.session import Session, SessionEnded, SessionRegistry

from . import commands
from .binding import bind_agent
from .channel import Channel
from .events import agent_event, agent_welcome, session_state
from .messages import (
    AgentHello,
    AgentMessage,
    Cancel,
    Ping,
    ProtocolError,
    Speak,
    State,
    message,
    parse_agent_message,
)
from .protocol import CLOSE_NORMAL

log = logging.getLogger(__name__)


class AgentConnection(Channel):
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: Any,
        settings: Settings,
        sessions: SessionRegistry,
        auth: Authenticator,
        limits: Limits,
        **channel: Any,
    ) -> None:
        super().__init__(ws, transport, settings, **channel)
        self._sessions = sessions
        self._auth = auth
        self._limits = limits
        self._session: Session | None = None

    @property
    def session_id(self) -> str | None:
        return self._session.id if self._session else None

    def parse(self, raw: str) -> AgentMessage:
        return parse_agent_message(raw)

    async def dispatch(self, msg: AgentMessage) -> None:
        if isinstance(msg, Ping):
            await self.reply(msg.id, message("pong", ts=msg.ts, server_time=time.time()))
            return
        if isinstance(msg, AgentHello):
            await self._hello(msg)
            return
        session = self._session
        if session is None:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, f"{msg.type} before hello")
        if session.closed:
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "the session has ended")
        if isinstance(msg, Speak):
            draining = self._sessions.draining
            max_chars = self.settings.max_text_chars
            utterance_id = await commands.speak(session, msg, self._limits, max_chars, draining)
            await self.reply(msg.id, message("queued", utterance_id=utterance_id))
        elif isinstance(msg, Cancel):
            cancelled = commands.cancel(session)
            await self.reply(msg.id, message("cancelled", utterance_ids=cancelled))
        elif isinstance(msg, State):
            await self.reply(msg.id, message("state", **session_state(session)))

    async def closed(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.leave_agent()

    async def _hello(self, msg: AgentHello) -> None:
        if self._session is not None:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "hello was already sent")
        session, identity = bind_agent(msg, self._auth, self._sessions)
        session.join_agent()
        self._session = session
        self.said_hello()
        log.info("agent_joined", extra={"session_id": session.id, "service": identity.service})
        await self.reply(msg.id, agent_welcome(session, self.settings))
        self.spawn(self._forward_events(session, msg.last_event), "agent-events")

    async def _forward_events(self, session: Session, last_sent: int) -> None:
        while True:
            for event_id, event in await session.events_after(last_sent):
                last_sent = event_id
                body = agent_event(event)
                if body is not None:
                    await self.send({**body, "event_id": event_id})
                if isinstance(event, SessionEnded):
                    await self.close(CLOSE_NORMAL, b"session ended")
                    return
