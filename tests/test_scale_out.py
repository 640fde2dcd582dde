"""Sessions independent of the process serving them: real servers sharing a real redis-server,
a load balancer in front: the shipped nginx configuration in Debian's nginx where the balancer
chooses (a crash, a rolling restart), a TCP proxy that a test points at one server or another
where the test chooses; the Python client as the listener (headless Chromium in
test_browser_scale_out.py). What it plays is read back frame by frame from the frame-code signal:
no frame may be skipped, whatever happens to the server it was on."""

import asyncio
import itertools
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis.asyncio as redis

from tests.conftest import RedisServer, RunningServer, StartServer, dev_token
from tests.fake_cartesia import FakeCartesia
from tests.framecode import symbols, unwrap
from tests.listener import Listener
from tests.nginx import StartNginx
from tests.nginx import start_nginx_fixture as start_nginx_fixture  # the start_nginx fixture
from tests.signal_analysis import rms
from tests.tcp_proxy import TcpProxy, tcp_proxy
from tests.test_resume import played_out
from voice_rtc.agent import Agent, create_session
from voice_rtc.client import PlayedFrame, Recording

LEASE_S = 1.5


def port_of(server: RunningServer) -> int:
    return urlsplit(server.url).port or 0


@pytest.fixture
async def cluster(start_server: StartServer, redis_url: str) -> list[RunningServer]:
    """Two servers sharing Redis (and, through the test's state dir, the dev-mode secret)."""
    env = {"VOICE_RTC_REDIS_URL": redis_url}
    return [await start_server(env=env, session_lease_s=LEASE_S) for _ in range(2)]


@pytest.fixture
async def balancer(cluster: list[RunningServer]) -> AsyncIterator[TcpProxy]:
    async with tcp_proxy("127.0.0.1", port_of(cluster[0])) as proxy:
        yield proxy


def move(proxy: TcpProxy, to: RunningServer) -> None:
    proxy.retarget("127.0.0.1", port_of(to))


def check_every_frame_heard(listener: Listener, frames: int, max_repeat: int = 20) -> None:
    playback = unwrap(symbols(listener.recording.pcm))
    print(f"repeats {playback.repeats}, unclear {playback.unclear}")
    assert playback.skipped == []
    assert playback.covered == set(range(frames)), (
        f"missing {set(range(frames)) - playback.covered}"
    )
    assert max(playback.repeats, default=0) <= max_repeat


class TimedRecording(Recording):
    """A recording that also keeps when each frame of speech (not silence) was played."""

    def __init__(self) -> None:
        super().__init__()
        self.speech: list[float] = []

    def play(self, frame: PlayedFrame) -> None:
        super().play(frame)
        if rms(frame.pcm) > 1000:
            self.speech.append(frame.arrival)


def speech_gap(listener: Listener, moment: float, window_s: float = 6.0) -> float:
    """The longest the listener heard no speech in the `window_s` after `moment` (monotonic),
    counted from the last speech before it, in seconds."""
    recording = listener.recording
    assert isinstance(recording, TimedRecording)
    times = [t for t in recording.speech if t <= moment][-1:]
    times += [t for t in recording.speech if moment < t <= moment + window_s]
    assert len(times) >= 2 and times[-1] > moment, "nothing was heard after it"
    return max(b - a for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_listener_resuming_on_another_process_loses_no_frame(
    cluster: list[RunningServer], balancer: TcpProxy, transport: str
) -> None:
    first, second = cluster
    async with Listener(balancer.url, transport=transport, codec="opus") as listener:
        utterance = await listener.speak("framecode 6s")
        await asyncio.sleep(2.0)
        move(balancer, second)  # its next connection lands on the other server
        await listener.drop()
        await listener.wait_until_up(timeout=15)
        assert listener.welcome["resumed"] is True
        await played_out(listener, utterance)
    check_every_frame_heard(listener, 300)
    if transport == "webrtc":  # the new process's transport is not taken for the old one's
        synced = [m["transport_id"] for m in listener.messages if m["type"] == "sync"]
        assert synced == sorted(synced) and len(set(synced)) == 2, synced
    assert '"event": "session_handed_off"' in first.log()
    assert '"event": "session_taken_over"' in second.log()


async def serving(http: aiohttp.ClientSession, servers: list[RunningServer]) -> RunningServer:
    """The one of `servers` that serves the (one) session."""
    for _ in range(100):
        for server in servers:
            if server.process.returncode is None:
                async with http.get(server.url + "health") as response:
                    if (await response.json())["sessions"]:
                        return server
        await asyncio.sleep(0.05)
    raise AssertionError("no server serves the session")


async def test_a_crash_behind_nginx_loses_no_frame_and_the_listener_hears_again_within_5_s(
    cluster: list[RunningServer], start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    nginx = await start_nginx([server.url for server in cluster])
    async with Listener(nginx.url, codec="opus", sink=TimedRecording()) as listener:
        utterance = await listener.speak("framecode 8s")
        await asyncio.sleep(2.5)
        owner = await serving(http, cluster)
        owner.process.kill()  # kill -9: nothing is handed off, the lease has to lapse
        killed_at = time.monotonic()
        await listener.wait_until_up(timeout=20)
        await played_out(listener, utterance)
    check_every_frame_heard(listener, 400, max_repeat=25)
    silent = speech_gap(listener, killed_at)
    print(f"heard again {silent:.2f} s after the kill")
    assert silent < 5.0
    (survivor,) = (server for server in cluster if server is not owner)
    assert '"event": "session_taken_over"' in survivor.log()


async def rolling_restart(
    replicas: list[RunningServer],
    restart: Callable[[RunningServer], Awaitable[RunningServer]],
    http: aiohttp.ClientSession,
    between_s: float,
) -> list[tuple[float, float]]:
    """Restart every replica once (SIGTERM, then again on its port), `between_s` apart, the one
    serving the session first whenever it has not been restarted yet, so the session moves at
    each turn it can. Returns (when it was stopped, how long it took to exit) per turn."""
    stops = []
    left = list(range(len(replicas)))
    while left:
        await asyncio.sleep(between_s)
        owner = replicas.index(await serving(http, replicas))
        turn = owner if owner in left else left[0]
        left.remove(turn)
        stopped_at = time.monotonic()
        assert await replicas[turn].stop() == 0  # SIGTERM: hands off and exits, waits for nobody
        stops.append((stopped_at, time.monotonic() - stopped_at))
        replicas[turn] = await restart(replicas[turn])
    return stops


@pytest.mark.solo
async def test_a_rolling_restart_behind_nginx_hands_every_session_off_at_once(
    start_server: StartServer, redis_url: str, start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    """Three replicas behind nginx restarted in turn during one 36 s utterance: each handoff is
    a short gap, and not a frame is lost."""
    env = {"VOICE_RTC_REDIS_URL": redis_url}
    replicas = [await start_server(env=env, session_lease_s=LEASE_S) for _ in range(3)]
    nginx = await start_nginx([server.url for server in replicas])

    async def restart(old: RunningServer) -> RunningServer:
        return await start_server(env=env, session_lease_s=LEASE_S, port=port_of(old))

    async with Listener(nginx.url, codec="opus", sink=TimedRecording()) as listener:
        utterance = await listener.speak("framecode 36s")
        stops = await rolling_restart(replicas, restart, http, between_s=5.0)
        await played_out(listener, utterance, timeout=90)
    gaps = [round(speech_gap(listener, stopped_at), 3) for stopped_at, _ in stops]
    exits = [round(exit_s, 2) for _, exit_s in stops]
    print(f"gaps in the speech at each restart, s: {gaps}; exits, s: {exits}")
    check_every_frame_heard(listener, 1800)
    assert listener.reconnects >= 1
    assert all(gap < 1.0 for gap in gaps), gaps
    assert all(exit_s < 3.0 for _, exit_s in stops), stops


async def test_an_agent_on_another_process_drives_the_listeners_session(
    cluster: list[RunningServer], http: aiohttp.ClientSession
) -> None:
    listeners_server, agents_server = cluster
    async with http.get(
        listeners_server.url + "api/dev-token", params={"role": "service"}
    ) as response:
        credential = (await response.json())["token"]
    grant = await create_session(listeners_server.url, credential, "dana", http)
    assert grant.listener_token and grant.agent_token
    async with (
        Listener(listeners_server.url, token=grant.listener_token) as listener,
        Agent(agents_server.url, grant.session_id, grant.agent_token) as agent,
    ):
        events = agent.events()
        utterance = await agent.speak("440hz 0.5s")
        await listener.wait_for_event("utterance_ended", utterance)
        seen = []
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event["type"])
                if event["type"] == "utterance_heard":
                    break
        assert "utterance_queued" in seen and "utterance_started" in seen
        await listener.send_input("hello from the listener")
        async with asyncio.timeout(10):
            async for event in events:
                if event["type"] == "listener_input":
                    assert event["text"] == "hello from the listener"
                    break
        state = await agent.state()
        assert state["listener"]["connected"] is True and state["agents"] == 1
    # The session was served where the listener is, and never moved.
    assert '"event": "session_taken_over"' not in agents_server.log()


async def speech_frames_sent(http: aiohttp.ClientSession, server: RunningServer) -> float:
    async with http.get(server.url + "metrics") as response:
        text = await response.text()
    line = 'voice_rtc_audio_frames_sent_total{kind="speech",transport="webrtc"}'
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))


async def test_a_stale_owner_that_wakes_up_sends_nothing(
    cluster: list[RunningServer], balancer: TcpProxy, http: aiohttp.ClientSession
) -> None:
    first, second = cluster
    async with Listener(balancer.url, codec="opus") as listener:
        utterance = await listener.speak("framecode 8s")
        await asyncio.sleep(1.5)
        os.kill(first.process.pid, signal.SIGSTOP)  # frozen, lease and all
        try:
            move(balancer, second)
            await listener.drop()
            await listener.wait_until_up(timeout=15)  # once the frozen lease lapsed
        finally:
            os.kill(first.process.pid, signal.SIGCONT)
        # Awake, it finds its lease gone before it sends another frame.
        woke = await speech_frames_sent(http, first)
        await asyncio.sleep(2.0)
        assert await speech_frames_sent(http, first) == woke
        await played_out(listener, utterance)
    check_every_frame_heard(listener, 400, max_repeat=25)
    stopped = ('"event": "session_lease_lost"', '"event": "session_handed_off"')
    assert any(event in first.log() for event in stopped)


async def ready(http: aiohttp.ClientSession, server: RunningServer) -> dict[str, object]:
    async with http.get(server.url + "ready") as response:
        body: dict[str, object] = await response.json()
        return body


async def test_with_redis_down_sessions_play_on_and_resumes_fail_clearly(
    start_server: StartServer, redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    env = {"VOICE_RTC_REDIS_URL": redis_server.url}
    first, second = [await start_server(env=env, session_lease_s=LEASE_S) for _ in range(2)]
    async with (
        tcp_proxy("127.0.0.1", port_of(first)) as proxy,
        Listener(proxy.url, transport="websocket", codec="opus") as listener,
    ):
        utterance = await listener.speak("framecode 8s")
        await asyncio.sleep(1.0)
        await redis_server.stop()
        await asyncio.sleep(2 * LEASE_S)  # leases go unrenewed: the session plays on
        assert (await ready(http, first))["redis"] == "unavailable"
        # A resume that needs the store fails with a clear code.
        token = await dev_token(http, second, listener.user_id)
        async with http.ws_connect(second.ws_url) as ws:
            resume = {"resume": listener.welcome["resume_token"], "token": token}
            await ws.send_json({"type": "hello", "version": 1, **resume})
            refusal = await ws.receive_json()
        assert refusal["code"] == "SESSION_STORE_UNAVAILABLE" and refusal["retry_after_s"] > 0
        # Redis comes back, empty: the owner writes its session again, and it can move again.
        await redis_server.start()
        store = redis.from_url(redis_server.url)
        try:
            for _ in range(100):  # polled: Redis tells no one
                if await store.exists(f"vrtc:s:{listener.session_id}"):
                    break
                await asyncio.sleep(0.1)
        finally:
            await store.aclose()
        move(proxy, second)
        await listener.drop()
        await listener.wait_until_up(timeout=15)
        await played_out(listener, utterance)
    frames = [index for _seq, _u, index in listener.recording.frame_ids]
    assert frames == list(range(401))  # played on through the outage, then moved: all of it
    assert '"event": "session_taken_over"' in second.log()
    assert (await ready(http, first))["status"] == "ready"


async def test_a_remote_voice_taken_over_goes_on_from_the_word_being_heard(
    start_server: StartServer, redis_url: str
) -> None:
    """Cartesia (its SDK against a local fake) gives other audio at each request: the process
    taking the session over asks again from the word the listener was hearing, none skipped."""
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    async with FakeCartesia().serve() as fake:
        env = {"VOICE_RTC_REDIS_URL": redis_url, "CARTESIA_API_KEY": "test-key"}
        voice = {"tts": "cartesia", "cartesia_voice": "voice-1", "cartesia_base_url": fake.url}
        first, second = [
            await start_server(env=env, session_lease_s=LEASE_S, **voice) for _ in range(2)
        ]
        async with (
            tcp_proxy("127.0.0.1", port_of(first)) as proxy,
            Listener(proxy.url, transport="websocket") as listener,
        ):
            utterance = await listener.speak(" ".join(words) + ".")
            await listener.wait_for_event("utterance_started", utterance, timeout=10)
            await asyncio.sleep(random.uniform(1.0, 2.5))
            move(proxy, second)
            await listener.drop()  # the frames it played so far are all it played there
            last_index = listener.recording.frame_ids[-1][2]
            await listener.wait_until_up(timeout=15)
            await played_out(listener, utterance)
    timed = [w for m in listener.messages if m["type"] == "utterance_words" for w in m["words"]]
    first_timed: dict[int, int] = {}  # each word's frame as the first process timed it
    for word in timed:
        first_timed.setdefault(word["start"], word["frame"])
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
    frames = [first_timed.get(start) for start in starts]
    at_cut = max(i for i, frame in enumerate(frames) if frame is not None and frame <= last_index)
    transcripts = [request.transcript for request in fake.requests]
    print(f"cut in word {at_cut} ({words[at_cut]}); asked for: {transcripts}")
    assert transcripts[0] == " ".join(words) + "."
    assert transcripts[-1] == " ".join(words[at_cut:]) + "."  # from the word being heard
    # ...and the listener hears it to the end: every word timed, the last ones by the new owner.
    assert {w["start"] for w in timed} == set(starts)
    assert '"event": "session_taken_over"' in second.log()
