"""Sessions that survive the network: resume, reconnect, heartbeats, the WebSocket fallback."""

import asyncio
import itertools
import os
import random
import signal
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer, StartServer, dev_token, free_port
from tests.framecode import symbols, unwrap
from tests.listener import Listener
from tests.signal_analysis import dominant_frequency, rms
from tests.test_opus import tone_pcm
from voice_rtc.audio import FRAME_BYTES, mulaw_decode, mulaw_encode
from voice_rtc.backoff import backoff_delay
from voice_rtc.client import VoiceClient
from voice_rtc.transports.websocket import HEADER

FRAMES_PER_SECOND = 50


async def health(http: aiohttp.ClientSession, server: RunningServer) -> dict[str, Any]:
    async with http.get(server.url + "health") as response:
        body: dict[str, Any] = await response.json()
        return body


async def played_out(
    client: Listener, utterance_id: int, quiet_s: float = 1.0, timeout: float = 60
) -> None:
    """Wait until the utterance was sent and then nothing was heard for `quiet_s` seconds:
    what arrived in that time (over WebRTC in DTX, a silent frame every 400 ms) was silent."""
    await client.wait_for_event("utterance_ended", utterance_id, timeout=timeout)
    ended = time.monotonic()
    recording = client.recording
    for _ in range(200):
        await asyncio.sleep(0.1)
        since = time.monotonic() - quiet_s
        arrived = sum(1 for _ in itertools.takewhile(since.__lt__, reversed(recording.arrivals)))
        recent = recording.pcm[len(recording.pcm) - arrived * FRAME_BYTES :] if arrived else b""
        if since >= ended and rms(recent) < 50:
            return
    raise AssertionError("audio kept arriving")


@pytest.mark.parametrize(("seed", "codec"), [(11, "pcm_s16le"), (12, "opus")])
async def test_every_frame_is_played_once_in_order_across_cuts_and_switches(
    server: RunningServer, seed: int, codec: str
) -> None:
    """12 s of speech; the connection cut 6 times at random points, over WebRTC and WebSocket
    (`codec`), and the audio moved between them twice each way. What the listener played is
    read back frame by frame from the signal itself."""
    rng = random.Random(seed)
    plan = ["drop", "websocket", "drop", "webrtc", "drop", "websocket"]
    async with Listener(server.url, codec=codec) as client:
        utterance = await client.speak("framecode 12s")
        for step in plan:
            await asyncio.sleep(rng.uniform(0.5, 1.4))
            if step == "drop":
                on = client.transport
                await client.drop()
                assert (await client.wait_until_up(timeout=20)).transport == on  # where it was
            else:
                await client.switch_transport(step)
            # Off the transport it was made for (WebRTC), the client says it is degraded.
            assert client.state == ("connected" if client.transport == "webrtc" else "degraded")
        await played_out(client, utterance)
    playback = unwrap(symbols(client.recording.pcm))
    print(f"frames repeated at each resume or switch: {playback.repeats}")
    print(f"frames played where they belong but not clearly: {playback.unclear}")
    assert client.reconnects == 3
    assert playback.skipped == []
    assert len(playback.unclear) <= 6  # a decoder starting mid-stream, at most a frame a step
    assert playback.covered == set(range(600)), f"missing {set(range(600)) - playback.covered}"
    assert max(playback.repeats, default=0) <= 10, playback.repeats  # <= 200 ms per resume
    assert len(playback.repeats) <= len(plan)


async def test_a_session_waits_out_its_grace_period_then_frees_everything(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(session_grace_s=1.5)
    baseline = await health(http, server)
    async with VoiceClient(server.url) as client:
        await client.speak("framecode 30s")
        await asyncio.sleep(0.5)
    # The listener is gone; the session is not, yet.
    await asyncio.sleep(0.5)
    during = await health(http, server)
    assert during["sessions"] == 1
    await asyncio.sleep(2.0)
    after = await health(http, server)
    assert after["sessions"] == 0
    assert after["tasks"] <= baseline["tasks"], (baseline, after)
    assert '"event": "session_expired"' in server.log()


async def test_a_client_whose_session_is_gone_starts_a_new_one(start_server: StartServer) -> None:
    """The server restarted (or the client landed on another replica): resume fails, and the
    client carries on in a new session."""
    port = free_port()
    first = await start_server(port=port)
    async with Listener(first.url) as client:
        first_session = client.welcome["session_id"]
        await first.stop()
        await client.wait_for_state("reconnecting", timeout=10)
        await start_server(port=port)
        await client.wait_for_state("connected", timeout=30)
        assert client.welcome["session_id"] != first_session and not client.welcome["resumed"]
        assert (await client.say("0.3s"))["reason"] == "done"
    assert "SESSION_NOT_FOUND" in [error["code"] for error in client.errors]  # as the browser's


async def test_resume_token_is_unguessable_and_a_wrong_one_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with VoiceClient(server.url) as client:
        assert len(client.welcome["resume_token"]) >= 22  # >= 128 bits, url-safe base64
        token = await dev_token(http, server, user=client.user_id)
        async with http.ws_connect(server.ws_url) as ws:
            await ws.send_json(
                {"type": "hello", "version": 1, "token": token, "resume": "guess" * 8}
            )
            error = await ws.receive_json()
            assert error["code"] == "SESSION_NOT_FOUND"


@pytest.mark.parametrize(
    ("codec", "payload_bytes"), [("opus", range(20, 160)), ("pcm_s16le", [882]), ("mulaw", [441])]
)
async def test_websocket_fallback_streams_paced_audio(
    server: RunningServer, codec: str, payload_bytes: range | list[int]
) -> None:
    async with Listener(server.url, transport="websocket", codec=codec) as client:
        started = time.monotonic()
        await client.say("700hz 2s", tail=0.1)
        elapsed = time.monotonic() - started
    recording = client.recording
    frames = len(recording.frame_ids)
    assert frames == 2 * FRAMES_PER_SECOND + 1  # and the codec's tail
    payload = (recording.wire_bytes - frames * HEADER.size) / frames
    assert min(payload_bytes) <= payload <= max(payload_bytes)  # opus: ~2-5 KB/s, not 44
    assert 1.9 < elapsed < 2.6  # paced in real time, not sent in a burst
    assert recording.arrivals[-1] - recording.arrivals[0] == pytest.approx(1.98, abs=0.1)
    assert abs(dominant_frequency(recording.pcm) - 700) < 3


@pytest.mark.parametrize("codec", ["pcm_s16le", "mulaw"])
async def test_a_listener_taking_pcm_hears_the_voice_exactly_as_it_was_synthesized(
    server: RunningServer, codec: str
) -> None:
    """For a listener taking PCM the server keeps the speech as PCM: not encoded to Opus and
    decoded back (which costs a codec's work and is never bit-exact), but sent as it was made."""
    tone = await tone_pcm("700hz 2s")
    expected = tone if codec == "pcm_s16le" else mulaw_decode(mulaw_encode(tone))
    async with Listener(server.url, transport="websocket", codec=codec) as client:
        await client.say("700hz 2s", tail=0.1)
    assert bytes(client.recording.pcm[: len(expected)]) == expected


async def test_barge_in_stops_audio_within_a_frame_and_the_next_utterance_starts_clean(
    server: RunningServer,
) -> None:
    async with Listener(server.url, transport="websocket") as client:
        long = await client.speak("500hz 20s")
        await asyncio.sleep(1.0)
        cancelled_at = time.monotonic()
        await client.cancel()
        ended = await client.wait_for_event("utterance_ended", long)
        assert ended["reason"] == "cancelled"
        following = await client.speak("900hz 0.5s")
        await client.wait_for_event("utterance_ended", following)
        await asyncio.sleep(0.2)
    heard = list(zip(client.recording.frame_ids, client.recording.arrivals, strict=True))
    late = [1 for (_seq, utterance, _i), at in heard if utterance == long and at > cancelled_at]
    assert len(late) <= 1  # the frame already on its way, at most
    following_frames = [i for (_seq, utterance, i), _at in heard if utterance == following]
    assert following_frames == list(range(26))  # 0.5 s, then the codec's 7 ms tail


async def test_server_detaches_a_silent_client_and_a_pinging_one_stays(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(heartbeat_interval_s=0.5, heartbeat_timeout_s=0.5)
    token = await dev_token(http, server)
    async with VoiceClient(server.url) as pinging, http.ws_connect(server.ws_url) as silent:
        await silent.send_json({"type": "hello", "version": 1, "token": token})
        assert (await silent.receive_json())["type"] == "welcome"
        started = time.monotonic()
        closing = await asyncio.wait_for(silent.receive(), 5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert silent.close_code == 4002
        assert 1.4 < time.monotonic() - started < 3.0  # 2 intervals + timeout = 1.5 s
        assert pinging.state == "connected" and pinging.reconnects == 0
        assert pinging.rtt is not None and 0 < pinging.rtt < 0.5


async def test_client_notices_a_frozen_server_and_resumes_when_it_is_back(
    start_server: StartServer,
) -> None:
    server = await start_server(heartbeat_interval_s=0.5, heartbeat_timeout_s=0.5)
    async with Listener(server.url) as client:
        utterance = await client.speak("framecode 4s")
        await asyncio.sleep(1.0)
        os.kill(server.process.pid, signal.SIGSTOP)  # the server stops answering, socket open
        try:
            await client.wait_for_state("reconnecting", timeout=5)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        await client.wait_for_state("connected", timeout=30)
        assert client.welcome["resumed"]
        await played_out(client, utterance)
    assert {error["code"] for error in client.errors} == {"WEBSOCKET_CONNECTION_FAILED"}
    playback = unwrap(symbols(client.recording.pcm))
    assert playback.covered == set(range(200)) and not playback.skipped


async def test_client_gives_up_after_max_attempts(start_server: StartServer) -> None:
    server = await start_server()
    async with Listener(server.url, max_attempts=2) as client:
        await server.stop()
        await client.wait_for_state("failed", timeout=20)
    assert [(s.state, s.attempt, s.max_attempts) for s in client.states[-4:]] == [
        ("reconnecting", 1, 2),
        ("reconnecting", 2, 2),
        ("failed", None, None),
        ("closed", None, None),
    ]
    assert isinstance(client.states[-2].error, OSError)  # why it failed: nobody listens there


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    random.seed(5)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (3, 8.0), (4, 16.0), (5, 30.0), (9, 30.0)]:
        delays = [backoff_delay(attempt, base_s=1.0, cap_s=30.0) for _ in range(2000)]
        assert 0 <= min(delays) < 0.05 * ceiling  # full jitter reaches down to zero...
        assert 0.95 * ceiling < max(delays) <= ceiling  # ...and up to the ceiling
        assert sum(delays) / len(delays) == pytest.approx(ceiling / 2, rel=0.1)
