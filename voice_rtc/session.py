"""A listener's session: its playout, events and cursor, independent of any connection.

A session outlives its connections. The *controller* (the listener's signaling connection) can
drop and another take over with the resume token; the *audio transport* (WebRTC peer or
WebSocket stream) can be replaced; each new transport starts from the first frame the listener
has not acknowledged. Agents (an app's backend speaking into the session) connect beside the
listener, independently. With neither a listener nor an agent for `grace_s` (from the start,
too: a session made for a listener who never comes) the session ends and frees everything.
"""

import asyncio
import contextlib
import logging
import math
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from . import metrics
from .limits import Limits
from .load import ROOM, LoadMonitor
from .logs import LogThrottle
from .opus import Codec
from .playout import EndReason, Frame, Heard, Playout, PlayoutEvent, UtteranceEnded
from .tts.base import TTSProvider

log = logging.getLogger(__name__)
SPOKEN_MEMORY = 256  # speak request ids remembered per session
SESSIONS_REFUSED = LogThrottle(log)  # a crowd of newcomers refused at once: a few lines, a count


@dataclass(frozen=True)
class PlayedPosition:
    """What a listener reports it has played on transport `transport_id`: a frame `seq`
    (WebSocket audio carries them), or the RTP timestamp of the last packet played (what a
    browser's getSynchronizationSources gives for WebRTC)."""

    transport_id: int
    seq: int | None = None
    rtp_timestamp: int | None = None


class AudioTransport(Protocol):
    kind: str  # "webrtc" or "websocket": a metrics label

    def start(self) -> None:
        """Begin pulling frames from the session (a WebRTC peer begins once connected)."""

    def played_seq(self, position: PlayedPosition) -> int | None:
        """The last frame seq the listener has played, given its report; None if unknown."""

    async def close(self) -> None: ...


class Controller(Protocol):
    async def replaced(self) -> None:
        """Another connection resumed this session: stop controlling it."""


class SessionLimitReached(Exception):
    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Draining(Exception):
    """The server is shutting down: it takes no new sessions or speech."""


@dataclass(frozen=True, slots=True)
class ListenerChanged:
    """For agents: the listener `connected`, `resumed` (came back to the session after a
    drop), `disconnected`, or moved its audio (`transport`: webrtc, websocket, or none)."""

    change: str
    transport: str | None = None


@dataclass(frozen=True, slots=True)
class ListenerInput:
    """For agents: what the listener typed (or said, transcribed by its app)."""

    text: str


@dataclass(frozen=True, slots=True)
class UtteranceHeard:
    """For agents, once an utterance has ended (or been cancelled) and the listener's reports
    have caught up with it (or stopped coming): what the listener played of it."""

    heard: Heard
    reason: EndReason


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """For agents: the session is over (it expired, or the server shut down)."""

    reason: str


SessionEvent = PlayoutEvent | ListenerChanged | ListenerInput | UtteranceHeard | SessionEnded


class Session:
    def __init__(
        self,
        session_id: str,
        user_id: str,
        playout: Callable[[Callable[[PlayoutEvent], None]], Playout],
        on_expired: Callable[["Session", str], Awaitable[None]],
        grace_s: float = 30.0,
        heard_settle_s: float = 0.7,
        created_by: str | None = None,
        event_memory: int = 256,
    ) -> None:
        self.id = session_id
        self.user_id = user_id  # only this user may resume it
        self.created_by = created_by  # the service that made it for the user (None: the user)
        self.resume_token = secrets.token_urlsafe(32)  # 256 bits
        # Numbered events, the latest `event_memory` kept, so that a client resuming after a
        # drop gets the ones its dead connection never delivered.
        self._events: deque[tuple[int, SessionEvent]] = deque(maxlen=event_memory)
        self._event_count = 0
        self._event_added = asyncio.Event()
        self.playout = playout(self._on_playout_event)
        self.controller: Controller | None = None  # the listener's connection
        self.agents = 0  # agent connections (an agent drives the session from a backend)
        self.listener_seen = False  # has a listener ever joined
        self.audio: AudioTransport | None = None
        # Transports by id: the current one and the one before it (closed), since a listener's
        # final position on the old transport can arrive after the switch.
        self._transports: dict[int, AudioTransport] = {}
        self._transport_count = 0
        self._on_expired = on_expired
        self._grace_s = grace_s
        self._heard_settle_s = heard_settle_s
        self._grace: asyncio.Task[None] | None = None
        self._reported = asyncio.Event()  # a position report came in
        self._tasks: set[asyncio.Task[None]] = set()  # heard reports being settled
        self.last_heard: UtteranceHeard | None = None  # of the utterance that ended last
        # Speak requests by their string ids, the latest few: a client that resends one after
        # a reconnection (its reply was lost with the connection) gets the same utterance,
        # and nothing is spoken twice.
        self._spoken: OrderedDict[str, int] = OrderedDict()
        self.closed = False
        metrics.ACTIVE_SESSIONS.labels("none").inc()
        self._expire_unless_joined()

    def next_frame(self) -> Frame | None:
        return self.playout.next_frame()

    def attach(self, controller: Controller, resumed: bool = False) -> Controller | None:
        """Make `controller` the listener's connection; returns the one it replaces, if any."""
        self._stop_grace()
        previous, self.controller = self.controller, controller
        self._publish(ListenerChanged("resumed" if resumed else "connected"))
        self.listener_seen = True
        return previous if previous is not controller else None

    async def detach(self, controller: Controller) -> None:
        """`controller` is gone. Unless it was already replaced, the session waits for the
        listener to come back (as long as an agent is there, or for the grace period)."""
        if self.controller is not controller or self.closed:
            return
        self.controller = None
        await self.set_audio(None)
        self._publish(ListenerChanged("disconnected"))
        self._expire_unless_joined()

    def spoken(self, request_id: str) -> int | None:
        """The utterance a speak request with this id made or extended, if it was seen."""
        return self._spoken.get(request_id)

    def remember_spoken(self, request_id: str, utterance_id: int) -> None:
        self._spoken[request_id] = utterance_id
        if len(self._spoken) > SPOKEN_MEMORY:
            self._spoken.popitem(last=False)

    def listener_input(self, text: str) -> None:
        self._publish(ListenerInput(text))

    def join_agent(self) -> None:
        self.agents += 1
        self._stop_grace()

    def leave_agent(self) -> None:
        self.agents = max(0, self.agents - 1)
        self._expire_unless_joined()

    async def set_audio(self, transport: AudioTransport | None) -> int:
        """Replace the audio transport; a new one starts at the first unacknowledged frame.
        Returns the new transport's id (0 for none), which position reports name."""
        old, self.audio = self.audio, transport
        metrics.ACTIVE_SESSIONS.labels(old.kind if old else "none").dec()
        metrics.ACTIVE_SESSIONS.labels(transport.kind if transport else "none").inc()
        if old is not None:
            await old.close()
        if old is not None or transport is not None:
            self._publish(ListenerChanged("transport", transport.kind if transport else "none"))
        if transport is None:
            return 0
        self._transport_count += 1
        transport_id = self._transport_count
        self._transports[transport_id] = transport
        self._transports.pop(transport_id - 2, None)
        replayed = self.playout.rewind()
        transport.start()
        log.info(
            "audio_attached",
            extra={"session_id": self.id, "transport": transport.kind, "replayed": replayed},
        )
        return transport_id

    @property
    def next_transport_id(self) -> int:
        return self._transport_count + 1

    def report_position(self, position: PlayedPosition) -> None:
        transport = self._transports.get(position.transport_id)
        seq = transport.played_seq(position) if transport else None
        if seq is not None:
            self.playout.acknowledge(seq, by_current_transport=transport is self.audio)
            self._reported.set()

    async def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        self._publish(SessionEnded(reason))
        self._stop_grace()
        for task in list(self._tasks):
            task.cancel()
        await self.set_audio(None)
        metrics.ACTIVE_SESSIONS.labels("none").dec()
        self._transports.clear()
        await self.playout.close()

    def _expire_unless_joined(self) -> None:
        if self.controller is None and self.agents == 0 and self._grace is None and not self.closed:
            self._grace = asyncio.create_task(self._expire(), name="session-grace")

    def _stop_grace(self) -> None:
        if self._grace is not None and self._grace is not asyncio.current_task():
            self._grace.cancel()
        self._grace = None

    async def _expire(self) -> None:
        await asyncio.sleep(self._grace_s)
        log.info("session_expired", extra={"session_id": self.id, "grace_s": self._grace_s})
        await self._on_expired(self, "expired")

    async def events_after(self, event_id: int) -> list[tuple[int, SessionEvent]]:
        """Wait for events numbered above `event_id`; returns them, oldest first, with ids."""
        while not self._events or self._events[-1][0] <= event_id:
            self._event_added.clear()
            await self._event_added.wait()
        if self._events[0][0] > event_id + 1:
            log.warning("session_events_missed", extra={"session_id": self.id})
        return [(n, e) for n, e in self._events if n > event_id]

    @property
    def last_event_id(self) -> int:
        return self._event_count

    def _on_playout_event(self, event: PlayoutEvent) -> None:
        self._publish(event)
        if isinstance(event, UtteranceEnded) and not self.closed:
            task = asyncio.create_task(self._report_heard(event), name="session-heard")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _report_heard(self, ended: UtteranceEnded) -> None:
        """Wait for the listener's reports to cover what was sent of the utterance, or for them
        to stop coming (a cancel flushes the listener's buffer: its next report is final)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._heard_settle_s
        while (heard := self.playout.heard(ended.utterance_id)) and not heard.complete:
            self._reported.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._reported.wait()
            if loop.time() >= deadline:
                break
        if heard is not None:
            self.last_heard = UtteranceHeard(heard, ended.reason)
            self._publish(self.last_heard)

    def _publish(self, event: SessionEvent) -> None:
        self._event_count += 1
        self._events.append((self._event_count, event))
        self._event_added.set()


class SessionRegistry:
    """Owns every live session; finds them by resume token; closes them all on shutdown."""

    def __init__(
        self,
        tts: TTSProvider,
        codec: Codec,
        limits: Limits,
        max_sessions: int,
        max_queued_utterances: int,
        resume_window_frames: int = 150,
        lookahead_frames: int = 250,
        load: LoadMonitor | None = None,
        grace_s: float = 30.0,
        heard_settle_s: float = 0.7,
    ) -> None:
        self._tts = tts
        self._grace_s = grace_s
        self._heard_settle_s = heard_settle_s
        self._load = load
        self._codec = codec
        self._lookahead_frames = lookahead_frames
        self._limits = limits
        self._max_sessions = max_sessions
        self._max_queued_utterances = max_queued_utterances
        self._resume_window_frames = resume_window_frames
        self._sessions: dict[str, Session] = {}
        self._by_token: dict[str, Session] = {}
        self.draining = False

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def full(self) -> bool:
        return self.room() != ""

    def room(self) -> str:
        """Why this process takes no new session now ("" if it does): at its bound of
        sessions, or its measured load ("late", "busy")."""
        if len(self._sessions) >= self._max_sessions:
            return "max_sessions"
        return self._load.check().reason if self._load else ""

    def begin_drain(self) -> None:
        """Take no new sessions from now on; the ones open may finish what they are saying."""
        self.draining = True
        metrics.DRAINING.set(1)

    def speaking(self) -> int:
        """Sessions with a listener attached and speech still to play."""
        return sum(1 for s in self._sessions.values() if s.audio and s.playout.speaking)

    async def wait_until_quiet(self, timeout_s: float) -> bool:
        """Wait for speech in progress to finish, `timeout_s` at most; True if it did."""
        poll_s = 0.1  # speech ends in many sessions at once: polling is simplest
        for _ in range(math.ceil(timeout_s / poll_s)):
            if not self.speaking():
                break
            await asyncio.sleep(poll_s)
        return not self.speaking()

    async def create(self, user_id: str, created_by: str | None = None) -> Session:
        """A new session for `user_id` (made by the service `created_by`, or by the user);
        raises Draining, SessionLimitReached or RateLimited."""
        if self.draining:
            raise Draining("the server is shutting down")
        if len(self._sessions) >= self._max_sessions:
            raise SessionLimitReached(f"{self._max_sessions} sessions are already open", 10.0)
        verdict = self._load.check(newcomers=1) if self._load else ROOM
        if verdict is not ROOM:
            detail = f"this server is at capacity ({verdict.reason}); try again later"
            load = self._load.status() if self._load else {}
            SESSIONS_REFUSED.info("session_refused", verdict.reason, reason=verdict.reason, **load)
            raise SessionLimitReached(detail, verdict.retry_after_s)

        def playout(on_event: Callable[[PlayoutEvent], None]) -> Playout:
            return Playout(
                self._tts,
                self._codec,
                on_event,
                max_queued=self._max_queued_utterances,
                lookahead_frames=self._lookahead_frames,
                resume_window=self._resume_window_frames,
            )

        session_id = secrets.token_hex(8)
        await self._limits.open_session(user_id, session_id)
        if self._load:
            self._load.admitted()  # counted once it is sure to exist
        session = Session(
            session_id,
            user_id,
            playout,
            self.close,
            grace_s=self._grace_s,
            heard_settle_s=self._heard_settle_s,
            created_by=created_by,
        )
        self._sessions[session.id] = session
        self._by_token[session.resume_token] = session
        log.info("session_started", extra={"session_id": session.id, "made_by": created_by})
        return session

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def by_resume_token(self, token: str) -> Session | None:
        return self._by_token.get(token)

    def leases(self) -> list[tuple[str, str]]:
        """(user id, session id) of every live session: the slots to keep renewing."""
        return [(s.user_id, s.id) for s in self._sessions.values()]

    async def close(self, session: Session, reason: str = "closed") -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._by_token.pop(session.resume_token, None)
            await self._limits.close_session(session.user_id, session.id)
            log.info("session_ended", extra={"session_id": session.id, "reason": reason})
        await session.close(reason)

    async def close_all(self) -> None:
        sessions = list(self._sessions.values())
        await asyncio.gather(*(self.close(s, "shutdown") for s in sessions))
