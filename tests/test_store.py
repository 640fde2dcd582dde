"""The session store's contract, for both stores: the in-memory one (one process, or several
sharing a backend) and Redis (a real redis-server). Leases are exclusive, claims atomic, and a
stale owner can neither renew nor write."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from voice_rtc.session_events import ListenerInput, UtteranceStarted
from voice_rtc.speech import PlayedFrame, Speech, StoredUtterance, StoredWord
from voice_rtc.store import (
    Changes,
    MemoryBackend,
    MemoryStore,
    RedisStore,
    Renewal,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
    token_hash,
)

LEASE_S = 0.3
TTL_S = 5.0
Stores = Callable[[], SessionStore]


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Stores]:
    """Makes stores that share one backend, as processes sharing one Redis would."""
    made: list[SessionStore] = []
    backend = MemoryBackend()
    url = redis_url if request.param == "redis" else ""

    def make() -> SessionStore:
        store: SessionStore = RedisStore(url) if url else MemoryStore(backend)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def record(session_id: str = "s1", token: str = "resume-me") -> SessionRecord:
    return SessionRecord(session_id, "alice", "app", token_hash(token))


async def test_a_session_is_found_by_its_resume_token_and_loaded_whole(stores: Stores) -> None:
    store = stores()
    lease = await store.create(record(), LEASE_S, TTL_S)
    assert await store.find("resume-me") == "s1" and await store.find("guess") is None
    speech = Speech(
        [StoredUtterance(4, "Hello there. More", False, [StoredWord(0, 5, 0)])],
        PlayedFrame(seq=41, utterance_id=4, index=12),
        next_utterance_id=5,
    )
    events = [(7, UtteranceStarted(4, 29, "Hello there.")), (8, ListenerInput("hi"))]
    lost = await store.save({"s1": (lease, Changes(speech, True, events))}, 256)
    assert lost == {}
    loaded, stored_events = await store.load("s1")
    assert loaded.speech == speech and loaded.listener_seen is True
    assert loaded.last_event_id == 8 and stored_events == events
    assert (loaded.user_id, loaded.created_by) == ("alice", "app")
    with pytest.raises(KeyError):
        await store.load("nobody")


async def test_a_lease_is_exclusive_until_it_lapses_and_a_stale_owner_can_do_nothing(
    stores: Stores,
) -> None:
    first, second = stores(), stores()
    old = await first.create(record(), LEASE_S, TTL_S)
    assert await second.claim("s1", LEASE_S) is None  # live: not yours
    assert await second.owner("s1") == first.process_id
    await asyncio.sleep(LEASE_S + 0.1)
    new = await second.claim("s1", LEASE_S)
    assert new is not None and new.epoch == old.epoch + 1 and new.owner == second.process_id
    # The old owner wakes up: it can neither renew nor write over the new owner's state.
    assert await first.renew({"s1": old}, LEASE_S, TTL_S) == {"s1": Renewal.LOST}
    stale = Changes(Speech([StoredUtterance(1, "stale", True)], None, 2))
    assert await first.save({"s1": (old, stale)}, 256) == {"s1": Renewal.LOST}
    assert (await second.load("s1"))[0].speech.utterances == []
    assert await second.renew({"s1": new}, LEASE_S, TTL_S) == {}
    # Released, it can be claimed at once; deleted, it is gone.
    await second.release("s1", new)
    third = await first.claim("s1", LEASE_S)
    assert third is not None and third.epoch == new.epoch + 1
    await first.delete("s1", third)
    assert await first.find("resume-me") is None
    assert await first.renew({"s1": third}, LEASE_S, TTL_S) == {"s1": Renewal.MISSING}
    with pytest.raises(KeyError):
        await first.claim("s1", LEASE_S)


async def test_of_processes_claiming_at_once_exactly_one_wins(stores: Stores) -> None:
    creator = stores()
    racers = [stores() for _ in range(4)]
    sessions = [f"race-{n}" for n in range(20)]
    for session_id in sessions:
        lease = await creator.create(record(session_id, session_id), LEASE_S, TTL_S)
        await creator.release(session_id, lease)
    barrier = asyncio.Barrier(len(racers))

    async def race(store: SessionStore) -> list[bool]:
        won = []
        for session_id in sessions:
            await barrier.wait()  # every racer claims this one at the same moment
            won.append(await store.claim(session_id, 5.0) is not None)
        return won

    results = await asyncio.gather(*(race(store) for store in racers))
    assert [sum(column) for column in zip(*results, strict=True)] == [1] * len(sessions)


async def test_events_are_bounded_and_watchers_and_mailboxes_hear(stores: Stores) -> None:
    owner, other = stores(), stores()
    received: list[dict[str, object]] = []
    arrived = asyncio.Event()

    async def on_message(message: dict[str, object]) -> None:
        received.append(message)
        arrived.set()

    await owner.start(on_message)
    await other.start(on_message)
    await asyncio.sleep(0.2)  # subscriptions settle
    lease = await owner.create(record(), LEASE_S, TTL_S)
    watch = await other.watch("s1")
    await asyncio.sleep(0.1)
    events = [(n, ListenerInput(f"line {n}")) for n in range(1, 11)]
    await owner.save({"s1": (lease, Changes(events=events))}, 4)
    async with asyncio.timeout(2):
        await watch.wait()
    assert [n for n, _e in (await other.load("s1"))[1]] == [7, 8, 9, 10]
    await watch.close()
    await other.send(owner.process_id, {"op": "hello", "n": 1})
    async with asyncio.timeout(2):
        await arrived.wait()
    assert received == [{"op": "hello", "n": 1}]


async def test_an_unreachable_redis_is_a_clear_error(redis_url: str) -> None:
    store = RedisStore("redis://127.0.0.1:1/0", timeout_s=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            await store.create(record(), LEASE_S, TTL_S)
        with pytest.raises(StoreUnavailable):
            await store.find("resume-me")
        assert await store.healthy() is False
    finally:
        await store.close()
