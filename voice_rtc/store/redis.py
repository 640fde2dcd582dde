"""The session store in Redis: what lets any process behind the load balancer resume any session.

Per session: a hash (`vrtc:s:{id}`: the record, its speech, the epoch of its latest claim), the
lease (`vrtc:s:{id}:lease`: "owner/epoch", expiring on Redis' own clock), its recent events (a
list, `vrtc:s:{id}:ev`) and its resume token's hash (`vrtc:t:{hash}` -> id). Every step two
processes may race on is one Lua script: a claim sets the lease only if none is live; a renewal,
a write, a release or a delete happens only under the lease it names. Everything expires `ttl`
after the last renewal, so a session no process is left to own does not stay forever.

Mailboxes and doorbells are pub/sub channels (`vrtc:p:{process}`, `vrtc:e:{session}`) on one
subscription per process, kept open (and re-subscribed) across Redis restarts.
"""

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.client import PubSub

from ..backoff import backoff_delay
from ..session_events import SessionEvent
from .base import Message, MessageHandler, Renewal, SessionStore, StoreUnavailable, Watch
from .records import (
    Changes,
    Lease,
    SessionRecord,
    decode_event,
    decode_record,
    decode_speech,
    encode_event,
    encode_record,
    encode_speech,
    token_hash,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('SET', KEYS[2], ARGV[1] .. '/' .. epoch, 'PX', ARGV[2])
return epoch
"""
_RENEW = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 2 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"""
_SAVE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 2 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 'speech', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'seen', ARGV[3]) end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[2], 'token', ARGV[7])
  redis.call('SET', KEYS[4], ARGV[8], 'PX', redis.call('PTTL', KEYS[2]))
end
if #ARGV >= 9 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 9))
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
  redis.call('PEXPIRE', KEYS[3], redis.call('PTTL', KEYS[2]))
  redis.call('HSET', KEYS[2], 'last_event', ARGV[4])
  redis.call('PUBLISH', ARGV[6], ARGV[4])
end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
_DELETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
"""
PREFIX = "vrtc:"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class _Keys:
    def __init__(self, session_id: str) -> None:
        base = f"{PREFIX}s:{session_id}"
        self.hash, self.lease, self.events = base, f"{base}:lease", f"{base}:ev"
        self.bell = f"{PREFIX}e:{session_id}"

    @staticmethod
    def token(hashed: str) -> str:
        return f"{PREFIX}t:{hashed}"


def mailbox(process_id: str) -> str:
    return f"{PREFIX}p:{process_id}"


class _RedisWatch(Watch):
    def __init__(self, store: "RedisStore", channel: str) -> None:
        self._store = store
        self.channel = channel
        self.rung = asyncio.Event()

    async def wait(self) -> None:
        await self.rung.wait()
        self.rung.clear()

    async def close(self) -> None:
        await self._store._unwatch(self)


class RedisStore(SessionStore):
    shared = True

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self._redis = redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.process_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._save = self._redis.register_script(_SAVE)
        self._release = self._redis.register_script(_RELEASE)
        self._delete = self._redis.register_script(_DELETE)
        self._watches: dict[str, set[_RedisWatch]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._token_hashes: dict[str, str] = {}  # session id -> its token hash, for renewals

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}") from exc

    async def start(self, on_message: MessageHandler) -> None:
        self._listener = asyncio.create_task(self._listen(on_message), name="store-mailbox")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        for task in list(self._deliveries):
            task.cancel()
        await self._redis.aclose()

    async def healthy(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except redis.RedisError:
            return False

    async def create(self, record: SessionRecord, lease_s: float, ttl_s: float) -> Lease:
        keys = _Keys(record.session_id)
        lease = Lease(self.process_id, 1)
        ttl_ms = _ms(lease_s + ttl_s)

        async def create() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.hash, mapping={"record": encode_record(record), "epoch": 1})
                pipe.pexpire(keys.hash, ttl_ms)
                pipe.set(keys.lease, lease.token, px=_ms(lease_s))
                pipe.set(_Keys.token(record.resume_token_hash), record.session_id, px=ttl_ms)
                await pipe.execute()

        await self._call(create)
        self._token_hashes[record.session_id] = record.resume_token_hash
        return lease

    async def find(self, resume_token: str) -> str | None:
        found = await self._call(lambda: self._redis.get(_Keys.token(token_hash(resume_token))))
        return _text(found) if found else None

    async def load(self, session_id: str) -> tuple[SessionRecord, list[tuple[int, SessionEvent]]]:
        keys = _Keys(session_id)

        async def load() -> tuple[dict[bytes, bytes], list[bytes]]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(keys.hash)
                pipe.lrange(keys.events, 0, -1)
                fields, events = await pipe.execute()
            return fields, events

        fields, raw_events = await self._call(load)
        if b"record" not in fields:
            raise KeyError(session_id)
        record = decode_record(fields[b"record"])
        if b"token" in fields:
            record = replace(record, resume_token_hash=_text(fields[b"token"]))
        if b"speech" in fields:
            record = replace(record, speech=decode_speech(fields[b"speech"]))
        record = replace(
            record,
            listener_seen=fields.get(b"seen") == b"1",
            last_event_id=int(fields.get(b"last_event", 0)),
        )
        events = []
        for raw in raw_events:
            event_id, body = json.loads(raw)
            events.append((int(event_id), decode_event(body)))
        self._token_hashes[session_id] = record.resume_token_hash
        return record, events

    async def owner(self, session_id: str) -> str | None:
        holder = await self._call(lambda: self._redis.get(_Keys(session_id).lease))
        return _text(holder).rsplit("/", 1)[0] if holder else None

    async def claim(self, session_id: str, lease_s: float) -> Lease | None:
        keys = _Keys(session_id)
        epoch = int(
            await self._call(
                lambda: self._claim(
                    keys=[keys.hash, keys.lease], args=[self.process_id, _ms(lease_s)]
                )
            )
        )
        if epoch < 0:
            raise KeyError(session_id)
        return Lease(self.process_id, epoch) if epoch else None

    async def renew(
        self, leases: dict[str, Lease], lease_s: float, ttl_s: float
    ) -> dict[str, Renewal]:
        if not leases:
            return {}
        ttl_ms = _ms(lease_s + ttl_s)

        async def renew() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id, lease in leases.items():
                    keys = _Keys(session_id)
                    token = _Keys.token(self._token_hashes.get(session_id, ""))
                    await self._renew(
                        keys=[keys.lease, keys.hash, keys.events, token],
                        args=[lease.token, _ms(lease_s), ttl_ms],
                        client=pipe,
                    )
                return list(await pipe.execute())

        return _failures(leases, await self._call(renew))

    async def save(
        self, writes: dict[str, tuple[Lease, Changes]], event_memory: int
    ) -> dict[str, Renewal]:
        if not writes:
            return {}

        async def save() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id, (lease, changes) in writes.items():
                    keys = _Keys(session_id)
                    speech = encode_speech(changes.speech) if changes.speech else b""
                    seen = "" if changes.listener_seen is None else str(int(changes.listener_seen))
                    last = changes.events[-1][0] if changes.events else 0
                    events = [
                        json.dumps([n, encode_event(e)], separators=(",", ":"))
                        for n, e in changes.events
                    ]
                    hashed = changes.resume_token_hash or ""
                    if hashed:
                        self._token_hashes[session_id] = hashed
                    token = _Keys.token(hashed) if hashed else keys.hash
                    await self._save(
                        keys=[keys.lease, keys.hash, keys.events, token],
                        args=[
                            lease.token,
                            speech,
                            seen,
                            last,
                            event_memory,
                            keys.bell,
                            hashed,
                            session_id,
                            *events,
                        ],
                        client=pipe,
                    )
                return list(await pipe.execute())

        return _failures(writes, await self._call(save))

    async def release(self, session_id: str, lease: Lease) -> None:
        keys = _Keys(session_id)
        await self._call(lambda: self._release(keys=[keys.lease], args=[lease.token]))

    async def delete(self, session_id: str, lease: Lease) -> None:
        keys = _Keys(session_id)
        token = _Keys.token(self._token_hashes.pop(session_id, ""))
        await self._call(
            lambda: self._delete(
                keys=[keys.lease, keys.hash, keys.events, token], args=[lease.token]
            )
        )

    async def send(self, process_id: str, message: Message) -> None:
        body = json.dumps(message, separators=(",", ":"))
        await self._call(lambda: self._redis.publish(mailbox(process_id), body))

    async def watch(self, session_id: str) -> Watch:
        watch = _RedisWatch(self, _Keys(session_id).bell)
        watchers = self._watches.setdefault(watch.channel, set())
        watchers.add(watch)
        if len(watchers) == 1 and self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                await self._pubsub.subscribe(watch.channel)
        return watch

    async def _unwatch(self, watch: _RedisWatch) -> None:
        watchers = self._watches.get(watch.channel, set())
        watchers.discard(watch)
        if not watchers:
            self._watches.pop(watch.channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    await self._pubsub.unsubscribe(watch.channel)

    async def _listen(self, on_message: MessageHandler) -> None:
        """The process's one subscription: its mailbox and the sessions it watches. Redis
        restarting drops it: it is made again (with backoff), and every watch rung, since
        what it missed meanwhile is unknown."""
        own = mailbox(self.process_id)
        attempt = 0
        while True:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(own, *self._watches)
                attempt = 0
                self._ring_all()
                async for item in self._pubsub.listen():
                    channel = item["channel"].decode()
                    if channel == own:
                        self._deliver(on_message, json.loads(item["data"]))
                    else:
                        for watch in self._watches.get(channel, ()):
                            watch.rung.set()
            except (redis.RedisError, OSError) as exc:
                log.warning("store_subscription_lost", extra={"error": type(exc).__name__})
            finally:
                if self._pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                    self._pubsub = None
            await asyncio.sleep(backoff_delay(attempt, 0.2, 5.0))
            attempt += 1

    def _ring_all(self) -> None:
        for watchers in self._watches.values():
            for watch in watchers:
                watch.rung.set()

    def _deliver(self, on_message: MessageHandler, message: Message) -> None:
        task = asyncio.create_task(_quietly(on_message(message)), name="store-message")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)


_FAILED = {0: Renewal.LOST, 2: Renewal.MISSING}  # what the scripts say when it is not ours


def _failures(sessions: dict[str, Any], results: list[Any]) -> dict[str, Renewal]:
    outcomes = zip(sessions, results, strict=True)
    return {sid: _FAILED[int(result)] for sid, result in outcomes if int(result) in _FAILED}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _quietly(handling: Awaitable[None]) -> None:
    try:
        await handling
    except Exception:
        log.exception("store_message_failed")
