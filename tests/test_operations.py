"""Operating the server: readiness, metrics that move with real traffic, structured logs,
client telemetry, and a graceful drain on SIGTERM."""

import asyncio
import json
import signal
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer, StartServer, dev_token
from tests.listener import Listener
from tests.scrape import delta, scrape
from tests.signal_analysis import voiced_span
from voice_rtc.client import ServerError, VoiceClient


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_metrics_move_as_a_real_client_streams(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, server)
    async with Listener(server.url) as client:
        during = await scrape(http, server)
        assert delta(during, before, "voice_rtc_active_sessions", "transport=webrtc") == 1
        await client.say("2s")
        await client.ping()
        await client.ping()  # carries the RTT the first one measured
        await client.switch_transport("websocket", reason="packet_loss")
        await client.say("0.5s")
        with pytest.raises(ServerError):
            await client.speak("")
        await client.drop()
        await client.wait_until_up(timeout=20)
        after = await scrape(http, server)
    frames = delta(
        after, before, "voice_rtc_audio_frames_sent_total", "kind=speech,transport=webrtc"
    )
    assert 95 <= frames <= 106  # 2 s of speech at 50 frames a second (+ the codec's tail)
    ws_frames = delta(
        after, before, "voice_rtc_audio_frames_sent_total", "kind=speech,transport=websocket"
    )
    assert ws_frames == 26  # 0.5 s, then 7 ms of silence for the codec's look-ahead
    assert delta(after, before, "voice_rtc_tts_first_audio_seconds_count", "provider=tone") == 2
    assert delta(after, before, "voice_rtc_pacing_lateness_seconds_count") >= 125
    assert delta(after, before, "voice_rtc_heartbeat_rtt_seconds_count") == 1
    assert delta(after, before, "voice_rtc_transport_fallbacks_total", "reason=packet_loss") == 1
    assert delta(after, before, "voice_rtc_errors_total", "code=INVALID_FIELD,source=server") == 1
    assert delta(after, before, "voice_rtc_reconnects_total", "outcome=resumed") == 1
    assert delta(after, before, "voice_rtc_active_sessions", "transport=websocket") == 1


async def test_logs_are_json_lines_with_events_and_never_a_token(
    server: RunningServer,
) -> None:
    async with Listener(server.url) as client:
        await client.say("0.3s")
        token = client.welcome["resume_token"]
        session_id = client.welcome["session_id"]
    await server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all({"time", "level", "event"} <= set(line) for line in lines)
    events = {line["event"] for line in lines if line.get("session_id") == session_id}
    assert {"session_started", "audio_attached", "webrtc_state"} <= events
    assert token not in server.log()


async def test_telemetry_feeds_metrics_and_logs(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, server)
    batch = {
        "session_id": "abc123",
        "events": [
            {"type": "error", "code": "AUDIO_PLAYBACK_FAILED", "message": "autoplay", "ts": 1},
            {"type": "error", "code": "SOMETHING_NEW", "ts": 2},
            {"type": "underrun", "transport": "websocket", "count": 3},
            {"type": "stats", "transport": "webrtc", "rtt_ms": 42.5, "packets_lost": 2},
            {"type": "fallback", "to": "websocket", "reason": "ice_timeout"},
            {"type": "reconnect", "attempt": 2},
        ],
    }
    auth = {"Authorization": f"Bearer {await dev_token(http, server)}"}
    async with http.post(server.url + "api/analytics", json=batch, headers=auth) as response:
        assert response.status == 202
        assert (await response.json())["accepted"] == 6
    after = await scrape(http, server)
    code = "code=AUDIO_PLAYBACK_FAILED,source=client"
    assert delta(after, before, "voice_rtc_errors_total", code) == 1
    assert delta(after, before, "voice_rtc_errors_total", "code=OTHER,source=client") == 1
    assert delta(after, before, "voice_rtc_client_underruns_total", "transport=websocket") == 3
    await server.stop()
    logged = [json.loads(line) for line in server.log().splitlines() if "client_event" in line]
    assert {e["client_event"]["type"] for e in logged} >= {"error", "stats", "underrun"}
    assert all(e["session_id"] == "abc123" for e in logged)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "INVALID_JSON"),
        (b"[]", 400, "INVALID_JSON"),
        (b"{}", 400, "MISSING_FIELD"),
        (b'{"events": []}', 400, "INVALID_FIELD"),
        (b'{"events": [{"type": "dance"}]}', 400, "UNKNOWN_TYPE"),
        (
            b'{"events": [{"type": "underrun", "transport": "carrier-pigeon", "count": 1}]}',
            400,
            "INVALID_FIELD",
        ),
        (
            b'{"events": [{"type": "underrun", "transport": "webrtc", "count": -5}]}',
            400,
            "INVALID_FIELD",
        ),
        (
            json.dumps({"events": [{"type": "reconnect", "attempt": 1}] * 101}).encode(),
            400,
            "INVALID_FIELD",
        ),
        (
            json.dumps({"events": [{"type": "error", "code": "X" * 70}]}).encode(),
            400,
            "INVALID_FIELD",
        ),
        (
            b'{"events": [' + b'{"type": "reconnect", "attempt": 1},' * 3000 + b"]}",
            413,
            "MESSAGE_TOO_LARGE",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-events",
        "empty-batch",
        "unknown-type",
        "bad-enum",
        "negative-count",
        "too-many-events",
        "oversize-field",
        "oversize-body",
    ],
)
async def test_bad_telemetry_is_refused_with_a_clear_error(
    server: RunningServer, http: aiohttp.ClientSession, body: bytes, status: int, code: str
) -> None:
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {await dev_token(http, server)}",
    }
    async with http.post(server.url + "api/analytics", data=body, headers=headers) as response:
        assert response.status == status
        error = await response.json()
    assert error["code"] == code and error["detail"], error
    status_after, health = await get_json(http, server.url + "health")
    assert status_after == 200 and health["status"] == "ok"


async def test_drain_tells_clients_lets_speech_finish_refuses_newcomers_and_exits_0(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(drain_timeout_s=20)
    status, body = await get_json(http, server.url + "ready")
    assert status == 200 and body["status"] == "ready"
    async with Listener(server.url, max_attempts=1) as listener:
        utterance = await listener.speak("600hz 3s")
        await asyncio.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        status, body = await get_json(http, server.url + "ready")
        assert status == 503 and body["status"] == "draining"
        with pytest.raises(ServerError) as refused:
            await VoiceClient(server.url).connect()
        assert refused.value.code == "SERVER_DRAINING"
        assert refused.value.body["action"] == "reconnect"
        draining = next(e for e in listener.errors if e["code"] == "SERVER_DRAINING")
        assert "within 20 s" in draining["detail"] and draining["action"] == "reconnect"
        ended = await listener.wait_for_event("utterance_ended", utterance, timeout=10)
        assert ended["reason"] == "done"  # the utterance in progress finished
        assert await asyncio.wait_for(server.process.wait(), 10) == 0
    start, end = voiced_span(listener.recording.pcm)
    assert end - start == pytest.approx(3.0, abs=0.15)  # and the listener heard all of it


async def test_drain_stops_waiting_at_its_timeout(start_server: StartServer) -> None:
    server = await start_server(drain_timeout_s=1)
    async with Listener(server.url, max_attempts=1) as listener:
        await listener.speak("600hz 30s")
        await asyncio.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.process.wait(), 8) == 0
        await listener.wait_for_state("failed", timeout=10)  # closed (1001); nowhere to go


async def test_the_server_hands_freed_heap_back_to_the_os_on_its_own(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(heap_trim_interval_s=0.2)
    async with Listener(server.url) as client:
        await client.say("0.5s")
    for _ in range(50):
        samples = await scrape(http, server)
        trims = samples.get(("voice_rtc_heap_trim_seconds_count", ""), 0)
        if trims >= 2:
            break
        await asyncio.sleep(0.1)
    assert trims >= 2
    # A trim walks the free chunks while the loop's larger mallocs wait: it must stay short.
    assert samples[("voice_rtc_heap_trim_seconds_sum", "")] < trims * 0.05
