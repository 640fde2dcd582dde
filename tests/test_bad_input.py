"""Nothing a client sends can crash the server or disturb another client's session."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer, StartServer, dev_token
from tests.listener import Listener
from tests.signal_analysis import voiced_span
from voice_rtc.client import ServerError, VoiceClient

LIMITS = {"max_text_chars": 100, "max_message_bytes": 4096, "max_queued_utterances": 2}


@pytest.fixture
async def limited_server(start_server: StartServer) -> RunningServer:
    return await start_server(**LIMITS)


@pytest.fixture
async def ws(
    limited_server: RunningServer, http: aiohttp.ClientSession
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with http.ws_connect(limited_server.ws_url) as socket:
        yield socket


@pytest.fixture
async def hello_message(limited_server: RunningServer, http: aiohttp.ClientSession) -> str:
    token = await dev_token(http, limited_server)
    return json.dumps({"type": "hello", "version": 1, "token": token})


async def reply(ws: aiohttp.ClientWebSocketResponse, raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes):
        await ws.send_bytes(raw)
    else:
        await ws.send_str(raw)
    body: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 10)
    return body


async def hello(ws: aiohttp.ClientWebSocketResponse, hello_message: str) -> None:
    welcome = await reply(ws, hello_message)
    assert welcome["type"] == "welcome", welcome


BEFORE_HELLO = [
    ("not json", "{nope", "INVALID_JSON"),
    ("not an object", "[1, 2]", "INVALID_JSON"),
    ("unknown type", '{"type": "sing", "text": "la"}', "UNKNOWN_TYPE"),
    ("no type", '{"text": "hi"}', "MISSING_FIELD"),
    ("speak before hello", '{"type": "speak", "text": "hi"}', "HELLO_REQUIRED"),
    ("future version", '{"type": "hello", "version": 2}', "UNSUPPORTED_VERSION"),
    ("oversize", json.dumps({"type": "ping", "ts": 1, "pad": "x" * 5000}), "MESSAGE_TOO_LARGE"),
    ("binary", b"\x00\x01", "INVALID_FIELD"),
]

AFTER_HELLO = [
    ("missing field", '{"type": "speak"}', "MISSING_FIELD"),
    ("wrong type", '{"type": "speak", "text": 42}', "INVALID_FIELD"),
    ("empty text", '{"type": "speak", "text": "   "}', "INVALID_FIELD"),
    ("too long text", json.dumps({"type": "speak", "text": "a" * 101}), "TEXT_TOO_LONG"),
    ("second hello", "HELLO", "ALREADY_STARTED"),
    ("not sdp", '{"type": "offer", "sdp": "hello"}', "INVALID_SDP"),
    ("broken sdp", '{"type": "offer", "sdp": "v=0\\r\\nm=audio nonsense\\r\\n"}', "INVALID_SDP"),
    (
        "sdp without audio",
        json.dumps({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}),
        "INVALID_SDP",
    ),
    (
        "sdp without ice or dtls",
        json.dumps(
            {
                "type": "offer",
                "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
                "a=rtpmap:111 opus/48000/2\r\na=recvonly\r\n",
            }
        ),
        "INVALID_SDP",
    ),
]


@pytest.mark.parametrize(("case", "raw", "code"), BEFORE_HELLO + AFTER_HELLO, ids=lambda v: v)
async def test_bad_message_gets_its_code_and_the_connection_stays_usable(
    ws: aiohttp.ClientWebSocketResponse, hello_message: str, case: str, raw: str | bytes, code: str
) -> None:
    if (case, raw, code) in AFTER_HELLO:
        await hello(ws, hello_message)
    error = await reply(ws, hello_message if raw == "HELLO" else raw)
    assert error["type"] == "error" and error["code"] == code, error
    assert error["message"] and error["detail"]
    assert error["severity"] in ("warning", "error", "fatal") and "recoverable" in error
    # Still usable: a heartbeat is answered, and speech can be queued.
    pong = await reply(ws, '{"type": "ping", "ts": 7}')
    assert (pong["type"], pong["ts"]) == ("pong", 7)
    if case != "future version":
        if (case, raw, code) not in AFTER_HELLO:
            await hello(ws, hello_message)
        queued = await reply(ws, '{"type": "speak", "text": "0.1s", "id": "r1"}')
        assert queued["type"] == "queued" and queued["id"] == "r1"


async def test_an_error_names_the_request_it_answers(
    ws: aiohttp.ClientWebSocketResponse, hello_message: str
) -> None:
    await hello(ws, hello_message)
    assert (await reply(ws, '{"type": "speak", "text": 42, "id": 7}'))["id"] == 7
    assert (await reply(ws, '{"type": "sing", "id": "a"}'))["id"] == "a"
    assert "id" not in await reply(ws, '{"type": "speak", "text": "", "id": {"x": 1}}')


async def test_queue_full_is_refused_until_speech_finishes(limited_server: RunningServer) -> None:
    async with Listener(limited_server.url) as client:
        await client.speak("0.5s")
        last = await client.speak("0.5s")
        with pytest.raises(ServerError) as refused:
            await client.speak("0.5s")
        assert refused.value.code == "QUEUE_FULL"
        await client.wait_for_event("utterance_ended", last)
        await client.speak("0.5s")


async def test_server_busy_when_sessions_are_at_their_limit(start_server: StartServer) -> None:
    server = await start_server(max_sessions=1)
    async with VoiceClient(server.url):
        with pytest.raises(ServerError) as refused:
            await VoiceClient(server.url).connect()
        assert refused.value.code == "SERVER_BUSY"


@pytest.mark.solo
async def test_an_attack_does_not_disturb_another_listener(
    limited_server: RunningServer, http: aiohttp.ClientSession, hello_message: str
) -> None:
    """A listener streams 3 s of tone while another client sends every bad message we know."""
    async with Listener(limited_server.url) as listener:
        utterance = await listener.speak("500hz 3s")
        for _ in range(3):
            async with http.ws_connect(limited_server.ws_url) as attacker:
                for case, raw, _code in BEFORE_HELLO + AFTER_HELLO:
                    if case == "future version":
                        continue
                    if (case, raw, _code) == AFTER_HELLO[0]:
                        await hello(attacker, hello_message)
                    await reply(attacker, hello_message if raw == "HELLO" else raw)
        # Far past the limit the socket itself is closed (1009), and nothing else is.
        async with http.ws_connect(limited_server.ws_url) as attacker:
            await attacker.send_str("x" * 100_000)
            closing = await attacker.receive()
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert attacker.close_code == 1009
        ended = await listener.wait_for_event("utterance_ended", utterance)
        await asyncio.sleep(0.3)
    assert ended["reason"] == "done" and ended["frames"] == 151  # 3 s, then the codec's 7 ms
    start, end = voiced_span(listener.recording.pcm)
    assert abs((end - start) - 3.0) < 0.15  # every frame arrived, on time
    async with Listener(limited_server.url) as second:  # and the server serves newcomers
        assert (await second.say("0.2s"))["reason"] == "done"


async def test_error_table_is_served_with_every_code(
    limited_server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(limited_server.url + "api/errors") as response:
        table = await response.json()
    codes = {code for *_rest, code in BEFORE_HELLO + AFTER_HELLO}
    assert codes | {"QUEUE_FULL", "SERVER_BUSY", "INTERNAL_ERROR"} <= set(table)
    assert all(
        {"severity", "category", "recoverable", "message"} <= set(row) for row in table.values()
    )
