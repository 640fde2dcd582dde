"""An agent's connection (`/agent`): a backend driving one listener's session. It speaks (whole
or streamed in pieces), cancels (barge-in), asks for the session's state, and hears what
happens: the listener connecting, dropping, coming back, changing transport, typing; each
utterance queued, started, ended; and, once the listener's reports have caught up, what the
listener heard of it. Its connection and the listener's are independent: either can drop and
come back (with `last_event`) without ending the session.

The session may be served by another process (the listener is connected there): commands go
to that process, events come from the session store, and this connection tells the session it
is there every little while, so that the session waits for its listener while its agent is.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from aiohttp import web

from voice_rtc.auth import Authenticator
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode
from voice_rtc.registry import SessionRegistry
from voice_rtc.session import Session
from voice_rtc.session_events import SessionEnded, SessionEvent
from voice_rtc.store import SessionRecord, StoreUnavailable, Watch

from . import commands
from .binding import bind_agent
from .channel import Channel
from .events import agent_event, agent_welcome
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
from .protocol import CLOSE_GOING_AWAY, CLOSE_NORMAL

log = logging.getLogger(__name__)


class AgentConnection(Channel):
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: Any,
        settings: Settings,
        sessions: SessionRegistry,
        auth: Authenticator,
        **channel: Any,
    ) -> None:
        super().__init__(ws, transport, settings, **channel)
        self._sessions = sessions
        self._auth = auth
        self._session_id: str | None = None
        self._local: Session | None = None  # the session, when it is served here
        self._key = secrets.token_hex(8)  # names this connection to a session elsewhere

    @property
    def session_id(self) -> str | None:
        return self._session_id

    def parse(self, raw: str) -> AgentMessage:
        return parse_agent_message(raw)

    async def dispatch(self, msg: AgentMessage) -> None:
        if isinstance(msg, Ping):
            await self.reply(msg.id, message("pong", ts=msg.ts, server_time=time.time()))
            return
        if isinstance(msg, AgentHello):
            await self._hello(msg)
            return
        if self._session_id is None:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, f"{msg.type} before hello")
        if isinstance(msg, Speak | Cancel | State):
            body = msg.model_dump(exclude_none=True)
            await self.reply(msg.id, await commands.ask(self._sessions, self._session_id, body))

    async def moved(self) -> None:
        """The session went to another process: reconnect, and find it there."""
        self.stop_tasks()
        self._local = None
        await self.ws.close(code=CLOSE_GOING_AWAY, message=b"session moved")

    async def closed(self) -> None:
        session_id, self._session_id = self._session_id, None
        local, self._local = self._local, None
        if local is not None:
            local.leave_agent(self)
        elif session_id is not None:
            with contextlib.suppress(ProtocolError):
                gone = {"type": "agent_gone", "key": self._key}
                await commands.ask(self._sessions, session_id, gone)

    async def _hello(self, msg: AgentHello) -> None:
        if self._session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "hello was already sent")
        record, identity = await bind_agent(msg, self._auth, self._sessions)
        self._session_id = record.session_id
        self.said_hello()
        local = self._sessions.get(record.session_id)
        if local is not None:
            local.join_agent(self)
            self._local = local
            events_after = local.events_after
        else:
            await self._say_present(record.session_id)
            self.spawn(self._keep_present(record.session_id), "agent-presence")
            events_after = self._stored_events(record)
        log.info(
            "agent_joined",
            extra={
                "session_id": record.session_id,
                "service": identity.service,
                "here": bool(local),
            },
        )
        state = await commands.ask(self._sessions, record.session_id, {"type": "state"})
        await self.reply(msg.id, agent_welcome(record, state, self.settings))
        # Only now: the welcome answers the hello before any event (they follow it from the
        # last one the agent saw, so none is missed while the state was asked for).
        self.spawn(self._forward(events_after, msg.last_event), "agent-events")

    async def _forward(self, events_after: Any, last_sent: int) -> None:
        while True:
            events: list[tuple[int, SessionEvent]] = await events_after(last_sent)
            if not events and self._local is not None and self._local.closed:
                return  # abandoned to another process: moved() closes the socket
            for event_id, event in events:
                last_sent = event_id
                body = agent_event(event)
                if body is not None:
                    await self.send({**body, "event_id": event_id})
                if isinstance(event, SessionEnded):
                    await self.close(CLOSE_NORMAL, b"session ended")
                    return

    def _stored_events(self, record: SessionRecord) -> Any:
        """Events of a session served elsewhere, from the store, as its owner writes them."""
        watch: Watch | None = None

        async def events_after(event_id: int) -> list[tuple[int, SessionEvent]]:
            nonlocal watch
            while True:
                if watch is None:
                    watch = await self._sessions.store.watch(record.session_id)
                try:
                    events = await self._sessions.events_after(record.session_id, event_id)
                except StoreUnavailable:
                    events = []
                if events is None:  # gone from the store: it ended
                    return [(event_id + 1, SessionEnded("closed"))]
                if events:
                    return events
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._sessions.lease_s):
                        await watch.wait()

        return events_after

    async def _say_present(self, session_id: str) -> None:
        await commands.ask(self._sessions, session_id, {"type": "agent_present", "key": self._key})

    async def _keep_present(self, session_id: str) -> None:
        while True:
            await asyncio.sleep(self._sessions.lease_s)
            with contextlib.suppress(ProtocolError):
                await self._say_present(session_id)
