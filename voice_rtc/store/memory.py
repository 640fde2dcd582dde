"""The session store in memory: the default for one process, where no one else could take a
session over. Several `MemoryStore`s on one `MemoryBackend` behave as processes sharing a store
(tests use that to race claims without Redis)."""

import asyncio
import secrets
import time
from collections import deque
from dataclasses import dataclass, field, replace

from ..session_events import SessionEvent
from .base import Message, MessageHandler, Renewal, SessionStore, Watch
from .records import Changes, Lease, SessionRecord, token_hash


@dataclass
class _Entry:
    record: SessionRecord
    lease: Lease | None
    lease_until: float  # time.monotonic()
    expires_at: float
    epoch: int
    events: deque[tuple[int, SessionEvent]] = field(default_factory=deque)
    rung: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryBackend:
    def __init__(self) -> None:
        self.sessions: dict[str, _Entry] = {}
        self.tokens: dict[str, str] = {}  # resume token hash -> session id
        self.mailboxes: dict[str, MessageHandler] = {}
        self.deliveries: set[asyncio.Task[None]] = set()

    def entry(self, session_id: str) -> _Entry:
        entry = self.sessions.get(session_id)
        if entry is None or entry.expires_at <= time.monotonic():
            self.forget(session_id)
            raise KeyError(session_id)
        return entry

    def forget(self, session_id: str) -> None:
        entry = self.sessions.pop(session_id, None)
        if entry is not None:
            self.tokens.pop(entry.record.resume_token_hash, None)
            entry.rung.set()


class _MemoryWatch(Watch):
    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    async def wait(self) -> None:
        await self._entry.rung.wait()
        self._entry.rung = asyncio.Event()  # the next write rings a new one

    async def close(self) -> None:
        pass


class MemoryStore(SessionStore):
    def __init__(self, backend: MemoryBackend | None = None) -> None:
        self.shared = backend is not None
        self._backend = backend or MemoryBackend()
        self.process_id = f"memory-{secrets.token_hex(4)}"

    async def start(self, on_message: MessageHandler) -> None:
        self._backend.mailboxes[self.process_id] = on_message

    async def close(self) -> None:
        self._backend.mailboxes.pop(self.process_id, None)

    async def healthy(self) -> bool:
        return True

    async def create(self, record: SessionRecord, lease_s: float, ttl_s: float) -> Lease:
        now = time.monotonic()
        lease = Lease(self.process_id, 1)
        self._backend.sessions[record.session_id] = _Entry(
            record, lease, now + lease_s, now + lease_s + ttl_s, 1
        )
        self._backend.tokens[record.resume_token_hash] = record.session_id
        return lease

    async def find(self, resume_token: str) -> str | None:
        session_id = self._backend.tokens.get(token_hash(resume_token))
        try:
            return None if session_id is None else self._backend.entry(session_id).record.session_id
        except KeyError:
            return None

    async def load(self, session_id: str) -> tuple[SessionRecord, list[tuple[int, SessionEvent]]]:
        entry = self._backend.entry(session_id)
        return entry.record, list(entry.events)

    async def owner(self, session_id: str) -> str | None:
        entry = self._backend.entry(session_id)
        live = entry.lease is not None and entry.lease_until > time.monotonic()
        return entry.lease.owner if live and entry.lease else None

    async def claim(self, session_id: str, lease_s: float) -> Lease | None:
        entry = self._backend.entry(session_id)
        now = time.monotonic()
        if entry.lease is not None and entry.lease_until > now:
            return None
        entry.epoch += 1
        entry.lease = Lease(self.process_id, entry.epoch)
        entry.lease_until = now + lease_s
        return entry.lease

    def _holds(self, session_id: str, lease: Lease) -> _Entry | None:
        try:
            entry = self._backend.entry(session_id)
        except KeyError:
            return None
        live = entry.lease_until > time.monotonic()
        return entry if live and entry.lease == lease else None

    async def renew(
        self, leases: dict[str, Lease], lease_s: float, ttl_s: float
    ) -> dict[str, Renewal]:
        failed = {}
        now = time.monotonic()
        for session_id, lease in leases.items():
            entry = self._holds(session_id, lease)
            if entry is not None:
                entry.lease_until = now + lease_s
                entry.expires_at = now + lease_s + ttl_s
            else:
                failed[session_id] = self._failure(session_id)
        return failed

    async def save(
        self, writes: dict[str, tuple[Lease, Changes]], event_memory: int
    ) -> dict[str, Renewal]:
        failed = {}
        for session_id, (lease, changes) in writes.items():
            entry = self._holds(session_id, lease)
            if entry is None:
                failed[session_id] = self._failure(session_id)
                continue
            record = entry.record
            if changes.speech is not None:
                record = replace(record, speech=changes.speech)
            if changes.listener_seen is not None:
                record = replace(record, listener_seen=changes.listener_seen)
            if changes.resume_token_hash is not None:
                record = replace(record, resume_token_hash=changes.resume_token_hash)
                self._backend.tokens[changes.resume_token_hash] = session_id
            if changes.events:
                entry.events.extend(changes.events)
                while len(entry.events) > event_memory:
                    entry.events.popleft()
                record = replace(record, last_event_id=changes.events[-1][0])
                entry.rung.set()
            entry.record = record
        return failed

    def _failure(self, session_id: str) -> Renewal:
        return Renewal.LOST if session_id in self._backend.sessions else Renewal.MISSING

    async def release(self, session_id: str, lease: Lease) -> None:
        entry = self._holds(session_id, lease)
        if entry is not None:
            entry.lease = None

    async def delete(self, session_id: str, lease: Lease) -> None:
        if self._holds(session_id, lease) is not None:
            self._backend.forget(session_id)

    async def send(self, process_id: str, message: Message) -> None:
        handler = self._backend.mailboxes.get(process_id)
        if handler is not None:
            # Handled in a task of its own, as over a network: the sender does not wait.
            task = asyncio.create_task(handler(message), name="store-message")
            self._backend.deliveries.add(task)
            task.add_done_callback(self._backend.deliveries.discard)

    async def watch(self, session_id: str) -> Watch:
        return _MemoryWatch(self._backend.entry(session_id))
