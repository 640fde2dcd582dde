"""Sessions independent of the process serving them: real servers sharing a real redis-server,
a load balancer in front (a TCP proxy that tests point at one server or another), the Python
client as the listener. What it plays is read back frame by frame from the frame-code signal:
no frame may be skipped, whatever happens to the server it was on."""

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis.asyncio as redis

from tests.conftest import RedisServer, RunningServer, StartServer, dev_token
from tests.framecode import symbols, unwrap
from tests.listener import Listener
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
    assert '"event": "session_handed_off"' in first.log()
    assert '"event": "session_taken_over"' in second.log()


async def test_a_crash_loses_no_frame_and_the_listener_hears_again_within_5_s(
    cluster: list[RunningServer], balancer: TcpProxy
) -> None:
    first, second = cluster
    async with Listener(balancer.url, codec="opus", sink=TimedRecording()) as listener:
        utterance = await listener.speak("framecode 8s")
        await asyncio.sleep(2.5)
        move(balancer, second)
        first.process.kill()  # kill -9: nothing is handed off, the lease has to lapse
        killed_at = time.monotonic()
        await listener.wait_until_up(timeout=20)
        await played_out(listener, utterance)
    check_every_frame_heard(listener, 400, max_repeat=25)
    silent = speech_gap(listener, killed_at)
    print(f"heard again {silent:.2f} s after the kill")
    assert silent < 5.0


async def test_a_rolling_restart_hands_every_session_off_at_once(
    start_server: StartServer, redis_url: str
) -> None:
    """Three replicas restarted in turn during one utterance: each handoff is a short gap, and
    not a frame is lost."""
    env = {"VOICE_RTC_REDIS_URL": redis_url}
    replicas = [await start_server(env=env, session_lease_s=LEASE_S) for _ in range(3)]
    gaps = []
    async with (
        tcp_proxy("127.0.0.1", port_of(replicas[0])) as proxy,
        Listener(proxy.url, codec="opus", sink=TimedRecording()) as listener,
    ):
        utterance = await listener.speak("framecode 24s")
        for turn in range(3):
            await asyncio.sleep(4.0)
            serving, following = replicas[turn], replicas[(turn + 1) % 3]
            move(proxy, following)
            stopped_at = time.monotonic()
            assert await serving.stop() == 0  # SIGTERM: hands off and exits, waits for nobody
            exited_s = time.monotonic() - stopped_at
            await listener.wait_until_up(timeout=15)
            await asyncio.sleep(1.0)
            gaps.append((round(speech_gap(listener, stopped_at), 3), round(exited_s, 2)))
            replicas[turn] = await start_server(env=env, session_lease_s=LEASE_S)
        await played_out(listener, utterance)
    print(f"handoffs (gap s, exit s): {gaps}")
    check_every_frame_heard(listener, 1200)
    assert all(gap < 1.0 for gap, _exit in gaps), gaps
    assert all(exit_s < 3.0 for _gap, exit_s in gaps), gaps


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
