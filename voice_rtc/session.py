"""A listener's session: the playout and its events, independent of the transport carrying them."""

import asyncio
import logging
import secrets
from collections.abc import Callable

from .playout import Frame, Playout, PlayoutEvent
from .tts.base import TTSProvider

log = logging.getLogger(__name__)


class SessionLimitReached(Exception):
    pass


class Session:
    def __init__(
        self,
        session_id: str,
        tts: TTSProvider,
        max_queued_utterances: int,
        max_pending_events: int = 256,
    ) -> None:
        self.id = session_id
        self.resume_token = secrets.token_urlsafe(32)  # 256 bits
        # Events wait here for the signaling connection to send them; bounded, oldest dropped.
        self.events: asyncio.Queue[PlayoutEvent] = asyncio.Queue(max_pending_events)
        self.dropped_events = 0
        self.playout = Playout(tts, self._publish, max_queued=max_queued_utterances)
        self.closed = False

    def speak(self, text: str) -> int:
        return self.playout.enqueue(text)

    def cancel(self) -> list[int]:
        return self.playout.cancel()

    def next_frame(self) -> Frame | None:
        return self.playout.next_frame()

    async def close(self) -> None:
        self.closed = True
        await self.playout.close()

    def _publish(self, event: PlayoutEvent) -> None:
        if self.events.full():
            self.events.get_nowait()
            self.dropped_events += 1
            log.warning("session_event_dropped", extra={"session_id": self.id})
        self.events.put_nowait(event)


class SessionRegistry:
    """Owns every live session; closes them all on shutdown."""

    def __init__(self, tts: TTSProvider, max_sessions: int, max_queued_utterances: int) -> None:
        self._tts = tts
        self._max_sessions = max_sessions
        self._max_queued_utterances = max_queued_utterances
        self._sessions: dict[str, Session] = {}
        self.on_change: Callable[[int], None] = lambda _count: None

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> Session:
        if len(self._sessions) >= self._max_sessions:
            raise SessionLimitReached(f"{self._max_sessions} sessions are already open")
        session = Session(secrets.token_hex(8), self._tts, self._max_queued_utterances)
        self._sessions[session.id] = session
        self.on_change(len(self._sessions))
        log.info("session_started", extra={"session_id": session.id})
        return session

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def close(self, session: Session) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self.on_change(len(self._sessions))
            log.info("session_ended", extra={"session_id": session.id})
        await session.close()

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(s) for s in list(self._sessions.values())))
