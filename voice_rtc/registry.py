"""Every session this process serves, and their moves between processes.

With one process the registry simply owns its sessions. With a shared store (Redis) a session
belongs to whichever process holds its lease, and any process can take it over:

- the owner writes what the session needs to go on (its speech as text, the listener's place
  in it, its events) a few times a second, and renews its leases; a renewal or a write that
  finds the lease gone means another process has the session: this one stops at once;
- a listener resuming on another process (a drop, a new address, a deploy) makes that process
  claim the session: it asks the owner to hand it off (the owner writes, lets go, and closes
  its connections) and claims it, or, if the owner is dead, claims it once its lease lapses;
  then it goes on from the first frame the listener had not played;
- a command for a session owned elsewhere (an agent on another process) is sent to its owner
  and answered from there; if the owner does not answer, the session is taken over here;
- on shutdown every session is handed off at once (held, written, let go): its listener
  reconnects to another process, which resumes it.

A session also stops sending when its lease has not been confirmed in time (a process that
froze past its lease must not talk over the one that took over), except while the store
itself is unreachable: then nobody can claim it, and it plays on.
"""

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from . import metrics
from .limits import Limits
from .load import ROOM, LoadMonitor
from .logs import LogThrottle
from .opus import Codec
from .playout import Playout
from .session import Draining, Session, SessionLimitReached
from .session_events import PlayoutEvent, SessionEvent
from .store import Message, Renewal, SessionRecord, SessionStore, StoreUnavailable, token_hash
from .store.memory import MemoryStore
from .tts.base import TTSProvider

log = logging.getLogger(__name__)
SESSIONS_REFUSED = LogThrottle(log)  # a crowd of newcomers refused at once: a few lines, a count
WRITE_INTERVAL_S = 0.1  # how often an owner writes its sessions' changes
LEASE_TRUST = 0.8  # a renewed lease is trusted for this share of its length (clocks drift)
CLAIM_POLL_S = 0.05  # while waiting for a dead owner's lease to lapse
COMMAND_TIMEOUT_S = 2.0  # for a session's owner to answer a command from another process
HANDOFF_REPORT_S = 0.25  # for listeners to report their last position before a handoff
# Event ids of a session taken over start at epoch x this: above any id the process before
# may have sent without writing it (a crash loses up to WRITE_INTERVAL_S of them).
EPOCH_EVENTS = 1_000_000_000
# ...and its transport ids at epoch x this: a listener must never take the new process's
# transport for the old one's (their RTP clocks differ).
EPOCH_TRANSPORTS = 1_000_000
Command = dict[str, Any]
CommandHandler = Callable[[Session, Command], Awaitable[Command]]


class SessionBusy(Exception):
    """The session's owner neither handed it off nor let its lease lapse in time."""


class SessionRegistry:
    def __init__(
        self,
        tts: TTSProvider,
        codec: Codec,
        limits: Limits,
        max_sessions: int,
        max_queued_utterances: int,
        resume_window_frames: int = 150,
        lookahead_frames: int = 250,
        pcm_lookahead_frames: int = 50,
        load: LoadMonitor | None = None,
        grace_s: float = 30.0,
        heard_settle_s: float = 0.7,
        store: SessionStore | None = None,
        lease_s: float = 3.0,
        event_memory: int = 256,
    ) -> None:
        self._tts = tts
        self._grace_s = grace_s
        self._heard_settle_s = heard_settle_s
        self._load = load
        self._codec = codec
        self._lookahead_frames = lookahead_frames
        self._pcm_lookahead_frames = pcm_lookahead_frames
        self._limits = limits
        self._max_sessions = max_sessions
        self._max_queued_utterances = max_queued_utterances
        self._resume_window_frames = resume_window_frames
        self._event_memory = event_memory
        self.store = store or MemoryStore()
        self.lease_s = lease_s
        self._sessions: dict[str, Session] = {}
        self._by_token: dict[str, Session] = {}  # by the resume token's hash
        self._claims: dict[str, asyncio.Lock] = {}  # takeovers in progress here
        self._replies: dict[str, asyncio.Future[Command]] = {}  # commands sent to owners
        self._request_ids = (f"{n}" for n in itertools.count(1))
        self._tasks: list[asyncio.Task[None]] = []
        self.command_handler: CommandHandler | None = None  # what runs commands (signaling)
        self.draining = False
        self.store_down = False  # the shared store was unreachable at the last attempt

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def process_id(self) -> str:
        return self.store.process_id

    async def start(self) -> None:
        await self.store.start(self._on_message)
        if self.store.shared:
            self._tasks = [
                asyncio.create_task(self._keep_leases(), name="session-leases"),
                asyncio.create_task(self._write_changes(), name="session-writes"),
            ]

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

    def _playout(self) -> Callable[[Callable[[PlayoutEvent], None]], Playout]:
        def playout(on_event: Callable[[PlayoutEvent], None]) -> Playout:
            return Playout(
                self._tts,
                self._codec,
                on_event,
                max_queued=self._max_queued_utterances,
                lookahead_frames=self._lookahead_frames,
                pcm_lookahead_frames=self._pcm_lookahead_frames,
                resume_window=self._resume_window_frames,
            )

        return playout

    def _session(self, record: SessionRecord, **restored: Any) -> Session:
        return Session(
            record.session_id,
            record.user_id,
            self._playout(),
            self.close,
            grace_s=self._grace_s,
            heard_settle_s=self._heard_settle_s,
            created_by=record.created_by,
            event_memory=self._event_memory,
            **restored,
        )

    def _keep(self, session: Session) -> None:
        self._sessions[session.id] = session
        self._by_token[token_hash(session.resume_token)] = session

    async def create(self, user_id: str, created_by: str | None = None) -> Session:
        """A new session for `user_id` (made by the service `created_by`, or by the user);
        raises Draining, SessionLimitReached, RateLimited or StoreUnavailable."""
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
        session_id = secrets.token_hex(8)
        await self._limits.open_session(user_id, session_id)
        record = SessionRecord(session_id, user_id, created_by, "")
        session = self._session(record)
        try:
            session.lease = await self.store.create(session.record(), self.lease_s, self._ttl_s)
        except StoreUnavailable:
            await session.close("store_unavailable")
            await self._limits.close_session(user_id, session_id)
            raise
        session.lease_valid_until = self._trusted_until(time.monotonic())
        if self._load:
            self._load.admitted()  # counted once it is sure to exist
        self._keep(session)
        log.info("session_started", extra={"session_id": session.id, "made_by": created_by})
        return session

    @property
    def _ttl_s(self) -> float:
        """How long a session's state outlives its last owner's last renewal."""
        return self._grace_s + self.lease_s

    def _trusted_until(self, renewed_at: float) -> float:
        return renewed_at + self.lease_s * LEASE_TRUST if self.store.shared else math.inf

    def get(self, session_id: str) -> Session | None:
        """The session, if this process serves it."""
        return self._sessions.get(session_id)

    def by_resume_token(self, token: str) -> Session | None:
        return self._by_token.get(token_hash(token))

    async def find(self, resume_token: str) -> str | None:
        """The id of the session with this resume token, served here or anywhere."""
        session = self.by_resume_token(resume_token)
        if session is not None:
            return session.id
        return await self.store.find(resume_token) if self.store.shared else None

    async def record(self, session_id: str) -> SessionRecord | None:
        """What the store says of a session (for checking who may touch it); None: none."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session.record()
        if not self.store.shared:
            return None
        try:
            record, _events = await self.store.load(session_id)
        except KeyError:
            return None
        return record

    async def take_over(
        self,
        session_id: str,
        resume_token: str | None = None,
        reported_seq: int | None = None,
    ) -> Session:
        """The session, served here from now on; raises KeyError if there is none, SessionBusy,
        Draining or StoreUnavailable. `resume_token`: the listener's, if it came with one;
        `reported_seq`: the last frame it says it played."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        if not self.store.shared:
            raise KeyError(session_id)
        if self.draining:  # handing its own sessions off: it takes none
            raise Draining("the server is shutting down")
        lock = self._claims.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                return self._sessions.get(session_id) or await self._claim(
                    session_id, resume_token, reported_seq
                )
        finally:
            if not lock.locked():
                self._claims.pop(session_id, None)

    async def _claim(
        self, session_id: str, resume_token: str | None, reported_seq: int | None
    ) -> Session:
        if len(self._sessions) >= self._max_sessions:
            raise SessionLimitReached(f"{self._max_sessions} sessions are already open", 10.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        asked = False
        while (lease := await self.store.claim(session_id, self.lease_s)) is None:
            if not asked:
                owner = await self.store.owner(session_id)
                if owner is not None and owner != self.process_id:
                    await self.store.send(owner, {"op": "hand_off", "session_id": session_id})
                asked = True
            if loop.time() - started > self.lease_s + 1:
                raise SessionBusy(f"session {session_id} is held by another process")
            await asyncio.sleep(CLAIM_POLL_S)
        claimed_at = time.monotonic()
        record, events = await self.store.load(session_id)
        session = self._session(
            record,
            resume_token=resume_token,
            events=events[-self._event_memory :],
            first_event_id=max(record.last_event_id, lease.epoch * EPOCH_EVENTS),
            transports_before=lease.epoch * EPOCH_TRANSPORTS,
        )
        session.lease = lease
        session.lease_valid_until = self._trusted_until(claimed_at)
        session.listener_seen = record.listener_seen
        session.playout.restore(record.speech, self._tts.deterministic, reported_seq)
        if resume_token is None:  # a new resume token for its listener: the store learns it
            session.unwritten(token=True)
        self._keep(session)
        metrics.TAKEOVERS.inc()
        log.info(
            "session_taken_over",
            extra={
                "session_id": session_id,
                "epoch": lease.epoch,
                "waited_s": round(loop.time() - started, 3),
                "played": record.speech.played.seq if record.speech.played else None,
            },
        )
        return session

    async def command(self, session_id: str, body: Command) -> Command:
        """Run a command on the session's owner, here or elsewhere; the handler's answer.
        Raises KeyError (no such session), SessionBusy or StoreUnavailable."""
        assert self.command_handler is not None
        for _ in range(3):  # the owner may change while the command is on its way
            session = self._sessions.get(session_id)
            if session is not None:
                return await self.command_handler(session, body)
            owner = await self.store.owner(session_id) if self.store.shared else None
            if owner is None or owner == self.process_id:
                return await self.command_handler(await self.take_over(session_id), body)
            answer = await self._ask(owner, session_id, body)
            if answer is not None and not answer.get("moved"):
                return answer
            if answer is None:  # silent: dead, most likely; its lease will lapse
                return await self.command_handler(await self.take_over(session_id), body)
        raise SessionBusy(f"session {session_id} keeps moving")

    async def _ask(self, owner: str, session_id: str, body: Command) -> Command | None:
        request_id = next(self._request_ids)
        answer: asyncio.Future[Command] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = answer
        message = {
            "op": "command",
            "session_id": session_id,
            "rid": request_id,
            "reply_to": self.process_id,
            "body": body,
        }
        try:
            await self.store.send(owner, message)
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                return await answer
        except TimeoutError:
            log.warning("owner_silent", extra={"session_id": session_id, "owner": owner})
            return None
        finally:
            self._replies.pop(request_id, None)

    async def events_after(
        self, session_id: str, event_id: int
    ) -> list[tuple[int, SessionEvent]] | None:
        """A session's events above `event_id` as the store has them (for a session served
        elsewhere); None: the session is gone."""
        try:
            _record, events = await self.store.load(session_id)
        except KeyError:
            return None
        return [(n, e) for n, e in events if n > event_id]

    async def _on_message(self, message: Message) -> None:
        op = message.get("op")
        session = self._sessions.get(message.get("session_id", ""))
        if op == "hand_off" and session is not None:
            await self._hand_off(session)
        elif op == "command":
            if session is None or self.command_handler is None:
                answer: Command = {"moved": True}
            else:
                answer = await self.command_handler(session, message["body"])
            reply = {"op": "reply", "rid": message["rid"], "answer": answer}
            with contextlib.suppress(StoreUnavailable):
                await self.store.send(message["reply_to"], reply)
        elif op == "reply":
            waiting = self._replies.get(message.get("rid", ""))
            if waiting is not None and not waiting.done():
                waiting.set_result(message["answer"])

    async def _hand_off(self, session: Session) -> None:
        """Let another process have the session: write it, let go, stop here."""
        session.sending = False
        lease = session.lease
        self._forget(session)
        if lease is not None:
            with contextlib.suppress(StoreUnavailable):
                changes = session.changes()
                if changes is not None:
                    await self.store.save({session.id: (lease, changes)}, self._event_memory)
                await self.store.release(session.id, lease)
        log.info("session_handed_off", extra={"session_id": session.id})
        await session.abandon()

    async def hand_off_all(self) -> None:
        """Shutting down with a shared store: hold every session, give listeners a moment to
        say where they are, write, let go. They reconnect to another process and go on."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.sending = False
        await asyncio.sleep(HANDOFF_REPORT_S)
        await asyncio.gather(*(self._hand_off(s) for s in sessions))

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        self._by_token.pop(token_hash(session.resume_token), None)

    async def _lost(self, session: Session) -> None:
        """Another process has the session now (our lease lapsed): stop at once."""
        log.warning("session_lease_lost", extra={"session_id": session.id})
        metrics.LEASES_LOST.inc()
        self._forget(session)
        await session.abandon()

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            owned = {s.id: s.lease for s in self._sessions.values() if s.lease is not None}
            renewed_at = time.monotonic()
            try:
                lost = await self.store.renew(owned, self.lease_s, self._ttl_s)
            except StoreUnavailable:
                self._store_unreachable()
                continue
            self.store_down = False
            for session_id in owned:
                session = self._sessions.get(session_id)
                if session is None:
                    continue
                if lost.get(session_id) is Renewal.LOST:
                    await self._lost(session)
                    continue
                if lost.get(session_id) is Renewal.MISSING:
                    await self._write_again(session)
                session.lease_valid_until = self._trusted_until(renewed_at)
                session.forget_silent_agents(renewed_at)

    async def _write_again(self, session: Session) -> None:
        """The store forgot the session (Redis restarted empty): it is still ours, and
        resumable again once written whole."""
        log.warning("session_rewritten", extra={"session_id": session.id})
        with contextlib.suppress(StoreUnavailable):
            session.lease = await self.store.create(session.record(), self.lease_s, self._ttl_s)
            session.unwritten()

    def _store_unreachable(self) -> None:
        """No one can claim a session without the store: the ones here play on."""
        if not self.store_down:
            log.warning("session_store_unavailable", extra={"sessions": len(self._sessions)})
        self.store_down = True
        for session in self._sessions.values():
            session.lease_valid_until = math.inf

    async def _write_changes(self) -> None:
        while True:
            await asyncio.sleep(WRITE_INTERVAL_S)
            await self.write_changes()

    async def write_changes(self) -> None:
        writes = {}
        for session in self._sessions.values():
            if session.lease is not None and (changes := session.changes()) is not None:
                writes[session.id] = (session.lease, changes)
        try:
            lost = await self.store.save(writes, self._event_memory)
        except StoreUnavailable:
            for session_id in writes:
                if (pending := self._sessions.get(session_id)) is not None:
                    pending.unwritten()
            self._store_unreachable()
            return
        for session_id, failure in lost.items():
            if (unwritten := self._sessions.get(session_id)) is None:
                continue
            if failure is Renewal.LOST:
                await self._lost(unwritten)
            else:
                await self._write_again(unwritten)

    def leases(self) -> list[tuple[str, str]]:
        """(user id, session id) of every live session: the slots to keep renewing."""
        return [(s.user_id, s.id) for s in self._sessions.values()]

    def sessions(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    async def close(self, session: Session, reason: str = "closed") -> None:
        """End the session, here and in the store."""
        if self._sessions.get(session.id) is session:
            self._forget(session)
            await self._limits.close_session(session.user_id, session.id)
            log.info("session_ended", extra={"session_id": session.id, "reason": reason})
        await session.close(reason)
        if session.lease is not None:
            with contextlib.suppress(StoreUnavailable):
                changes = session.changes()  # its last events, for agents elsewhere
                if changes is not None:
                    await self.store.save({session.id: (session.lease, changes)}, 1)
                await self.store.delete(session.id, session.lease)

    async def close_all(self) -> None:
        """Shutdown: with a shared store the sessions live on elsewhere (hand_off_all did
        that); without one they end here."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(self.close(s, "shutdown") for s in sessions))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
