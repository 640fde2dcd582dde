"""Input that used to get a wrong answer, each reproduced with one message, and what it gets
now: a stable code, the connection still usable, nothing of it in the log."""

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from tests.conftest import RunningServer, StartServer, dev_token
from voice_rtc.client import VoiceClient

TOKEN_TAIL = "the-end-of-a-secret-token"


async def send(ws: aiohttp.ClientWebSocketResponse, raw: str) -> dict[str, Any]:
    await ws.send_str(raw)
    body: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 10)
    return body


async def still_usable(ws: aiohttp.ClientWebSocketResponse) -> None:
    pong = await send(ws, '{"type": "ping", "ts": 1.5}')
    assert pong["type"] == "pong" and pong["ts"] == 1.5


async def joined(
    server: RunningServer, http: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(server.ws_url)
    token = await dev_token(http, server)
    welcome = await send(ws, json.dumps({"type": "hello", "version": 1, "token": token}))
    assert welcome["type"] == "welcome", welcome
    return ws


async def audio_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def test_deep_nesting_is_invalid_json_and_logs_nothing_of_the_message(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(server.ws_url) as ws:
        for raw in (
            "[" * 980 + "]" * 980,
            '{"type": "hello", "token": "' + TOKEN_TAIL + '", "x": ' + "[" * 5000 + "]" * 5000,
            '{"a": ' * 3000 + "1" + "}" * 3000,
        ):
            error = await send(ws, raw)
            assert error["code"] == "INVALID_JSON", error
            await still_usable(ws)
    log = server.log()
    assert "INTERNAL_ERROR" not in log and "Traceback" not in log
    assert TOKEN_TAIL not in log


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_are_refused_not_echoed(
    server: RunningServer, http: aiohttp.ClientSession, number: str
) -> None:
    async with http.ws_connect(server.ws_url) as ws:
        error = await send(ws, '{"type": "ping", "id": 9, "ts": ' + number + "}")
        assert (error["code"], error["id"]) == ("INVALID_FIELD", 9)
        await still_usable(ws)


async def test_an_offer_aiortc_chokes_on_is_invalid_sdp_and_its_peer_closed(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    offer = await audio_offer()
    media = offer[offer.index("m=audio") :]
    twice = offer + media  # two audio sections sharing one a=mid
    ws = await joined(server, http)
    async with ws:
        before = (await (await http.get(server.url + "health")).json())["tasks"]
        error = await send(ws, json.dumps({"type": "offer", "sdp": twice}))
        assert error["code"] == "INVALID_SDP", error
        await still_usable(ws)
        await asyncio.sleep(0.5)
        after = (await (await http.get(server.url + "health")).json())["tasks"]
        assert after <= before  # the peer connection and its tasks are gone
    assert "INTERNAL_ERROR" not in server.log() and '"level": "error"' not in server.log()


async def test_an_offer_without_a_dtls_fingerprint_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    offer = "".join(
        line
        for line in (await audio_offer()).splitlines(keepends=True)
        if not line.startswith("a=fingerprint")
    )
    ws = await joined(server, http)
    async with ws:
        error = await send(ws, json.dumps({"type": "offer", "sdp": offer}))
        assert error["code"] == "INVALID_SDP" and "fingerprint" in error["detail"], error
        await still_usable(ws)
        await asyncio.sleep(0.5)
    assert '"level": "error"' not in server.log() and "Task exception" not in server.log()


async def chunked(body: bytes, pieces: int) -> Any:
    step = -(-len(body) // pieces)
    for start in range(0, len(body), step):
        yield body[start : start + step]
        await asyncio.sleep(0.01)


async def test_a_telemetry_body_in_pieces_is_read_whole(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {await dev_token(http, server)}"}
    batch = json.dumps({"events": [{"type": "reconnect", "attempt": 1}] * 50}).encode()
    async with http.post(
        server.url + "api/analytics", data=chunked(batch, 7), headers=headers
    ) as response:
        assert response.status == 202, await response.text()
    too_large = json.dumps({"events": [{"type": "error", "code": "X" * 60}] * 1000}).encode()
    assert len(too_large) > 64 * 1024
    async with http.post(
        server.url + "api/analytics", data=chunked(too_large, 9), headers=headers
    ) as response:
        assert response.status == 413
        assert (await response.json())["code"] == "MESSAGE_TOO_LARGE"


async def test_empty_pieces_of_streamed_text_spend_the_character_budget(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(limit_chars_per_minute=50)
    ws = await joined(server, http)
    async with ws:
        opened = await send(ws, '{"type": "speak", "text": "", "final": false}')
        utterance = opened["utterance_id"]
        codes = []
        for _ in range(60):
            piece = {"type": "speak", "text": "", "utterance_id": utterance, "final": False}
            answer = await send(ws, json.dumps(piece))
            codes.append(answer.get("code", answer["type"]))
    assert codes[:48] == ["queued"] * 48  # a character each, the opening one included
    assert set(codes[49:]) == {"RATE_LIMIT_EXCEEDED"}


async def test_empty_open_utterances_do_not_hold_a_drain(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(drain_timeout_s=20, max_queued_utterances=16)
    async with VoiceClient(server.url, transport="websocket") as client:
        for _ in range(16):
            await client.speak("", final=False)
        started = time.monotonic()
        assert await server.stop(timeout=15) == 0
        stopped_after = time.monotonic() - started
    assert stopped_after < 5, f"the drain waited {stopped_after:.1f} s for speech nobody sent"


async def test_a_dev_mode_restart_keeps_everyones_tokens(
    start_server: StartServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    state = tmp_path / "kept"
    first = await start_server(state_dir=state)
    token = await dev_token(http, first)
    os.kill(first.process.pid, signal.SIGKILL)
    await first.process.wait()
    second = await start_server(state_dir=state)
    async with http.ws_connect(second.ws_url) as ws:
        welcome = await send(ws, json.dumps({"type": "hello", "version": 1, "token": token}))
        assert welcome["type"] == "welcome", welcome
    assert oct((state / "dev-jwt-secret").stat().st_mode & 0o777) == "0o600"
