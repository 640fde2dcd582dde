"""A listener's session: its playout, events and cursor, independent of any connection.

A session outlives its connections, and its process too (voice_rtc.registry moves it). The
*controller* (the listener's signaling connection) can drop and another take over with the
resume token; the *audio transport* (WebRTC peer or WebSocket stream) can be replaced; each new
transport starts from the first frame the listener has not acknowledged. Agents (an app's
backend speaking into the session) connect beside the listener, independently. With neither a
listener nor an agent for `grace_s` (from the start, too: a session made for a listener who
never comes) the session ends and frees everything.
"""

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from . import metrics
from .playout import Frame, Playout
from .session_events import (
    ListenerChanged,
    ListenerInput,
    PlayoutEvent,
    SessionEnded,
    SessionEvent,
    UtteranceEnded,
    UtteranceHeard,
    UtteranceQueued,
)
from .store.records import Changes, Lease, SessionRecord, token_hash

log = logging.getLogger(__name__)
SPOKEN_MEMORY = 256  # speak request ids remembered per session


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
    plays_pcm: bool  # takes frames as PCM: the playout need not encode them

    def start(self) -> None:
        """Begin pulling frames from the session (a WebRTC peer begins once connected)."""

    def played_seq(self, position: PlayedPosition) -> int | None:
        """The last frame seq the listener has played, given its report; None if unknown."""

    def wake(self) -> None:
        """Speech is queued: a transport asleep while the session was idle takes frames again."""

    async def close(self) -> None: ...


class Controller(Protocol):
    async def replaced(self) -> None:
        """Another connection resumed this session: stop controlling it."""

    async def moved(self) -> None:
        """The session is another process's now: reconnect (it is found there)."""


class AgentLink(Protocol):
    async def moved(self) -> None:
        """The session is another process's now: reconnect (it is found there)."""


class SessionLimitReached(Exception):
    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Draining(Exception):
    """The server is shutting down: it takes no new sessions or speech."""


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
        resume_token: str | None = None,
        events: list[tuple[int, SessionEvent]] | None = None,
        first_event_id: int = 0,
        transports_before: int = 0,
    ) -> None:
        """`resume_token`, `events`, `first_event_id` and `transports_before`: of a session
        taken over from another process (its events go on numbered from `first_event_id`, its
        transports after `transports_before`)."""
        self.id = session_id
        self.user_id = user_id  # only this user may resume it
        self.created_by = created_by  # the service that made it for the user (None: the user)
        self.resume_token = resume_token or secrets.token_urlsafe(32)  # 256 bits
        # Numbered events, the latest `event_memory` kept, so that a client resuming after a
        # drop gets the ones its dead connection never delivered.
        self._events: deque[tuple[int, SessionEvent]] = deque(events or (), maxlen=event_memory)
        self._event_count = first_event_id
        self._events_forgotten = self._events[0][0] - 1 if self._events else first_event_id
        self._event_added = asyncio.Event()
        self.playout = playout(self._on_playout_event)
        self.controller: Controller | None = None  # the listener's connection
        self._agents: set[AgentLink] = set()  # agents connected here
        # Agents connected to other processes, kept while their process says so (by a key
        # naming the connection, until a monotonic time).
        self._remote_agents: dict[str, float] = {}
        self.listener_seen = False  # has a listener ever joined
        self.audio: AudioTransport | None = None
        # Transports by id: the current one and the one before it (closed), since a listener's
        # final position on the old transport can arrive after the switch.
        self._transports: dict[int, AudioTransport] = {}
        self._transport_count = transports_before
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
        # Ownership, where sessions are shared between processes (voice_rtc.registry): the
        # lease, and until when it is known to hold. Past that the session sends nothing until
        # a renewal says it is still ours: a process that froze must not talk over the one
        # that took the session over. `sending` is off while it is being handed off.
        self.lease: Lease | None = None
        self.lease_valid_until = math.inf
        self.sending = True
        self._written = (first_event_id, -1, False)  # events, speech version, seen: in the store
        self.token_unwritten = False  # a new resume token the store has not learnt yet
        self.closed = False
        metrics.ACTIVE_SESSIONS.labels("none").inc()
        self._expire_unless_joined()

    @property
    def agents(self) -> int:
        """Agent connections, here and elsewhere."""
        return len(self._agents) + len(self._remote_agents)

    @property
    def idle(self) -> bool:
        return self.playout.idle

    def next_frame(self) -> Frame | None:
        if not self.sending or self.lease_valid_until < time.monotonic():
            return None
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

    def join_agent(self, agent: AgentLink) -> None:
        self._agents.add(agent)
        self._stop_grace()

    def leave_agent(self, agent: AgentLink) -> None:
        self._agents.discard(agent)
        self._expire_unless_joined()

    def remote_agent(self, key: str, until: float | None) -> None:
        """An agent connected to another process is there (until the monotonic time `until`,
        unless renewed), or (None) has gone."""
        if until is None:
            self._remote_agents.pop(key, None)
            self._expire_unless_joined()
        else:
            self._remote_agents[key] = until
            self._stop_grace()

    def forget_silent_agents(self, now: float) -> None:
        """Remote agents whose process stopped saying they are there are gone."""
        gone = [key for key, until in self._remote_agents.items() if until < now]
        for key in gone:
            self.remote_agent(key, None)

    def record(self) -> SessionRecord:
        return SessionRecord(
            self.id,
            self.user_id,
            self.created_by,
            token_hash(self.resume_token),
            self.listener_seen,
            self.playout.speech(),
            self._event_count,
        )

    def changes(self) -> Changes | None:
        """What changed since the last call (None: nothing): for the store."""
        events_written, version_written, seen_written = self._written
        version = self.playout.version
        now = (self._event_count, version, self.listener_seen)
        if now == self._written and not self.token_unwritten:
            return None
        changes = Changes(
            speech=self.playout.speech() if version != version_written else None,
            listener_seen=self.listener_seen if self.listener_seen != seen_written else None,
            events=[(n, e) for n, e in self._events if n > events_written],
            resume_token_hash=token_hash(self.resume_token) if self.token_unwritten else None,
        )
        self._written, self.token_unwritten = now, False
        return changes

    def unwritten(self, token: bool = False) -> None:
        """The last changes did not reach the store: write everything next time (`token`:
        the resume token too)."""
        self._written = (self._events_forgotten, -1, not self.listener_seen)
        self.token_unwritten |= token

    async def abandon(self) -> None:
        """Another process owns the session now: stop at once, and end nothing (the session
        goes on there). Its connections here are closed as for a server going away: the
        listener and the agents reconnect, and find it there."""
        if self.closed:
            return
        self.closed = True
        self.sending = False
        self._stop_grace()
        for task in list(self._tasks):
            task.cancel()
        audio, self.audio = self.audio, None
        metrics.ACTIVE_SESSIONS.labels(audio.kind if audio else "none").dec()
        if audio is not None:
            await audio.close()
        self._transports.clear()
        controller, self.controller = self.controller, None
        if controller is not None:
            await controller.moved()
        for agent in list(self._agents):
            await agent.moved()
        self._event_added.set()  # whoever waits for events: the session is gone from here
        await self.playout.close()

    async def set_audio(self, transport: AudioTransport | None) -> int:
        """Replace the audio transport; a new one starts at the first unacknowledged frame.
        Returns the new transport's id (0 for none), which position reports name."""
        old, self.audio = self.audio, transport
        metrics.ACTIVE_SESSIONS.labels(old.kind if old else "none").dec()
        metrics.ACTIVE_SESSIONS.labels(transport.kind if transport else "none").inc()
        if old is not None:
            await old.close()
        self.playout.link.reset()  # FEC follows the new link's reports, if it sends any
        if old is not None or transport is not None:
            self._publish(ListenerChanged("transport", transport.kind if transport else "none"))
        if transport is None:
            return 0
        self._transport_count += 1
        transport_id = self._transport_count
        self._transports[transport_id] = transport
        self._transports.pop(transport_id - 2, None)
        self.playout.keep_pcm(transport.plays_pcm)
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
        if self.controller is None and not self.agents and self._grace is None and not self.closed:
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
        """Wait for events numbered above `event_id`; returns them, oldest first, with ids
        (none once the session has been abandoned to another process)."""
        while (not self._events or self._events[-1][0] <= event_id) and not self.closed:
            self._event_added.clear()
            await self._event_added.wait()
        if event_id < self._events_forgotten:
            log.warning("session_events_missed", extra={"session_id": self.id})
        return [(n, e) for n, e in self._events if n > event_id]

    @property
    def last_event_id(self) -> int:
        return self._event_count

    def _on_playout_event(self, event: PlayoutEvent) -> None:
        self._publish(event)
        if isinstance(event, UtteranceQueued) and self.audio is not None:
            self.audio.wake()
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
        if len(self._events) == self._events.maxlen:
            self._events_forgotten = self._events[0][0]
        self._events.append((self._event_count, event))
        self._event_added.set()
