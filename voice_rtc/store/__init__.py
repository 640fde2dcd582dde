"""Session state beyond one process: in memory (one process), or in Redis (any process)."""

from .base import Message, Renewal, SessionStore, StoreUnavailable, Watch
from .memory import MemoryBackend, MemoryStore
from .records import Changes, Lease, SessionRecord, token_hash
from .redis import RedisStore

__all__ = [
    "Changes",
    "Lease",
    "MemoryBackend",
    "MemoryStore",
    "Message",
    "RedisStore",
    "Renewal",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "Watch",
    "open_store",
    "token_hash",
]


def open_store(redis_url: str) -> SessionStore:
    return RedisStore(redis_url) if redis_url else MemoryStore()
