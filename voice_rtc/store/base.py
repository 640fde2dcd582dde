"""Where sessions live beyond the process serving them, and how processes reach each other.

A session is owned by one process at a time, under a lease: the owner renews it while the
session lives, and writes the session's state with it; a write or a renewal with a lease that is
no longer the session's fails, so a stale owner (one that froze or lost its network past the
lease) cannot overwrite the new owner's state, and learns that it must stop. Claiming a session
is one atomic step: of two processes claiming at once, one wins.

Processes talk through the store too: each has a mailbox (`send` to a process id; a handler
gets what arrives) for handoffs and for commands to a session's owner, and each session has a
doorbell (`watch`) that rings when its owner has written new events.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any

from ..session_events import SessionEvent
from .records import Changes, Lease, SessionRecord

Message = dict[str, Any]
MessageHandler = Callable[[Message], Coroutine[Any, Any, None]]


class Renewal(StrEnum):
    LOST = "lost"
    MISSING = "missing"


class StoreUnavailable(Exception):
    """The shared store cannot be reached (Redis is down)."""


class Watch(ABC):
    """Rings when a session has new events in the store."""

    @abstractmethod
    async def wait(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class SessionStore(ABC):
    process_id: str
    shared: bool  # other processes use it too: sessions may move between them

    @abstractmethod
    async def start(self, on_message: MessageHandler) -> None:
        """Open the mailbox: messages for this process go to `on_message`."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def healthy(self) -> bool: ...

    @abstractmethod
    async def create(self, record: SessionRecord, lease_s: float, ttl_s: float) -> Lease:
        """Store a new session, owned by this process. `ttl_s`: how long it outlives the last
        renewal of its lease (no process left to own it)."""

    @abstractmethod
    async def find(self, resume_token: str) -> str | None:
        """The id of the session with this resume token."""

    @abstractmethod
    async def load(self, session_id: str) -> tuple[SessionRecord, list[tuple[int, SessionEvent]]]:
        """The session and its recent events; raises KeyError if there is none."""

    @abstractmethod
    async def owner(self, session_id: str) -> str | None:
        """The process holding the session's lease now, if any."""

    @abstractmethod
    async def claim(self, session_id: str, lease_s: float) -> Lease | None:
        """Take the session if no live lease holds it; None if one does. KeyError: no such
        session."""

    @abstractmethod
    async def renew(
        self, leases: dict[str, Lease], lease_s: float, ttl_s: float
    ) -> dict[str, Renewal]:
        """Extend these leases; returns the sessions whose lease is not this process's any
        more: LOST (another process holds it, or held it), MISSING (the store has forgotten
        the session: Redis restarted empty, say)."""

    @abstractmethod
    async def save(
        self, writes: dict[str, tuple[Lease, Changes]], event_memory: int
    ) -> dict[str, Renewal]:
        """Write each session's changes under its lease, keeping its latest `event_memory`
        events, and ring its watchers; returns the sessions not written, as `renew` does."""

    @abstractmethod
    async def release(self, session_id: str, lease: Lease) -> None:
        """Give the session up (another process takes it over); its state stays."""

    @abstractmethod
    async def delete(self, session_id: str, lease: Lease) -> None:
        """The session has ended: forget it."""

    @abstractmethod
    async def send(self, process_id: str, message: Message) -> None: ...

    @abstractmethod
    async def watch(self, session_id: str) -> Watch: ...
