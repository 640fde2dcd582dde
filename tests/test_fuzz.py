"""The signaling protocol under generated and mutated messages of every type: wrong types, huge
and non-finite numbers, deep nesting, unicode, long arrays, garbage. Property: every message
gets a reply or an error with a stable code (never INTERNAL_ERROR), the server logs no
traceback, the connection stays usable after every non-fatal error, and another listener's
audio goes on undisturbed.

A bounded number of examples per run (VOICE_RTC_FUZZ_EXAMPLES, 1500 by default); set it higher
for a longer run on demand. Hypothesis drives a synchronous test; the sockets live on an event
loop in a thread of their own.
"""

import asyncio
import json
import math
import os
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.listener import Listener
from voice_rtc.errors import ErrorCode

EXAMPLES = int(os.environ.get("VOICE_RTC_FUZZ_EXAMPLES", "1500"))
KNOWN_CODES = {code.value for code in ErrorCode} - {"INTERNAL_ERROR"}
REPLIES = {"welcome", "answer", "transport", "queued", "pong", "error"}
T = TypeVar("T")

pytestmark = [pytest.mark.solo, pytest.mark.timeout(600)]


class Loop:
    """An event loop in a thread, for a synchronous test to run coroutines on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class Fuzzer:
    """Two sockets on one server: one before hello, one after, each re-opened if closed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http: aiohttp.ClientSession | None = None
        self.sockets: dict[bool, aiohttp.ClientWebSocketResponse] = {}
        self.token = ""
        self.probes = 0

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        async with self.http.get(self.url + "api/dev-token", params={"user": "fuzz"}) as reply:
            self.token = (await reply.json())["token"]

    async def socket(self, after_hello: bool) -> aiohttp.ClientWebSocketResponse:
        ws = self.sockets.get(after_hello)
        if ws is None or ws.closed:
            assert self.http is not None
            ws = await self.http.ws_connect(self.url.replace("http", "ws", 1) + "ws")
            if after_hello:
                hello = {"type": "hello", "version": 1, "token": self.token}
                await ws.send_json(hello)
                assert (await self.next_text(ws))["type"] == "welcome"
            self.sockets[after_hello] = ws
        return ws

    async def next_text(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        """The next JSON message (binary audio, if the fuzz switched to it, is skipped)."""
        while True:
            message = await asyncio.wait_for(ws.receive(), 10)
            if message.type == aiohttp.WSMsgType.TEXT:
                body: dict[str, Any] = json.loads(message.data)
                if body["type"] not in ("utterance_started", "utterance_ended"):
                    return body
            elif message.type != aiohttp.WSMsgType.BINARY:
                return {"type": "closed", "code": ws.close_code}

    async def exchange(self, raw: str, after_hello: bool) -> tuple[list[dict[str, Any]], bool]:
        """Send `raw`, then a ping: what the server said in between (a reply, an error, or
        nothing: a position report has no answer), and whether the ping was answered. A socket
        the server closed (its budget, or the hello timeout on a socket that never says hello)
        is opened again first; one it closes after `raw` comes back as a `closed` reply."""
        self.probes += 1
        probe = f"probe-{self.probes}"
        for _ in range(2):
            ws = await self.socket(after_hello)
            try:
                await ws.send_str(raw)
                await ws.send_str(json.dumps({"type": "ping", "ts": 7, "id": probe}))
            except ConnectionError:
                await ws.close()
                continue
            said = []
            while True:
                reply = await self.next_text(ws)
                if reply.get("id") == probe:
                    return said, reply["type"] == "pong"
                said.append(reply)
                if reply["type"] == "closed":
                    return said, False
        raise AssertionError("the server would not take the message on a new socket")

    async def close(self) -> None:
        for ws in self.sockets.values():
            await ws.close()
        if self.http is not None:
            await self.http.close()


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "\ud7ff", "😀" * 30, "v=0", "hello", "websocket"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)
FIELDS = {
    "hello": ["version", "token", "resume", "position", "last_event", "id"],
    "offer": ["sdp", "id"],
    "transport": ["mode", "codec", "reason", "id"],
    "speak": ["text", "utterance_id", "final", "id"],
    "cancel": ["id"],
    "position": ["transport_id", "seq", "rtp_timestamp", "id"],
    "ping": ["ts", "rtt_ms", "id"],
}
GOOD = {
    "version": 1, "token": "x", "resume": "r", "last_event": 0, "sdp": "v=0\r\n",
    "mode": "websocket", "codec": "opus", "reason": "other", "text": "hi", "final": True,
    "utterance_id": 1, "transport_id": 1, "seq": 3, "rtp_timestamp": 960, "ts": 1.0,
    "rtt_ms": 3.0, "position": {"transport_id": 1, "seq": 1}, "id": 5,
}  # fmt: skip


@st.composite
def mutated_message(draw: st.DrawFn) -> str:
    """A message of a known type, each field good, missing, or replaced by any JSON value."""
    kind = draw(st.sampled_from([*FIELDS, "sing", ""]))
    body: dict[str, Any] = {"type": kind} if draw(st.booleans()) or kind else {}
    for field in FIELDS.get(kind, []):
        choice = draw(st.sampled_from(["good", "missing", "any"]))
        if choice == "good":
            body[field] = GOOD[field]
        elif choice == "any":
            body[field] = draw(json_value)
    for extra in draw(st.lists(st.text(max_size=8), max_size=3)):
        body[extra] = draw(json_value)
    # json.dumps writes NaN and Infinity as the bare words, as a hostile client would.
    return json.dumps(body, ensure_ascii=draw(st.booleans()))


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=5000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"type":', "}")]))
    tail = draw(st.sampled_from(["", "1", "NaN"]))
    return opener * depth + tail + closer * draw(st.integers(min_value=0, max_value=depth))


@st.composite
def long_arrays(draw: st.DrawFn) -> str:
    size = draw(st.integers(min_value=100, max_value=20_000))
    field = draw(st.sampled_from(["text", "sdp", "ts", "position", "junk"]))
    return json.dumps(
        {"type": draw(st.sampled_from(["speak", "ping", "hello"])), field: [0] * size}
    )


@st.composite
def huge_numbers(draw: st.DrawFn) -> str:
    number = draw(st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "9" * 400, "1e-999"]))
    field = draw(
        st.sampled_from(["ts", "rtt_ms", "seq", "rtp_timestamp", "transport_id", "version"])
    )
    kind = draw(st.sampled_from(["ping", "position", "hello"]))
    return '{"type": "%s", "%s": %s, "transport_id": 1}' % (kind, field, number)  # noqa: UP031


garbage = st.one_of(
    st.text(max_size=200), st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
)
messages = st.one_of(mutated_message(), nested(), long_arrays(), huge_numbers(), garbage)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One server for every example, its budgets lifted (the fuzzer is fast by design)."""
    import subprocess
    import sys

    log_path = tmp_path_factory.mktemp("fuzz") / "server.log"
    args = [sys.executable, str(REPO / "server.py"), "--host", "127.0.0.1", "--port", "0"]
    args += ["--tts", "tone", "--state-dir", str(log_path.parent / "state")]
    args += ["--connection-messages-per-second", "100000", "--connection-message-burst", "100000"]
    args += ["--limit-connections-per-minute", "100000", "--limit-chars-per-minute", "10000000"]
    args += ["--limit-speak-per-hour", "1000000", "--sockets-per-second-per-ip", "1000"]
    args += ["--max-pending-per-ip", "1000"]
    with log_path.open("w") as log:
        process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().split()[-1]
    try:
        yield url, str(log_path)
    finally:
        process.terminate()
        process.wait(15)


def test_no_message_breaks_the_protocol_or_another_listener(fuzz_server: tuple[str, str]) -> None:
    url, log_path = fuzz_server
    loop = Loop()
    fuzzer = Fuzzer(url)
    listener = Listener(url, transport="websocket")
    try:
        loop.run(fuzzer.start())
        loop.run(listener.connect())
        utterance = loop.run(listener.speak("framecode 3600s"))  # for as long as the fuzz runs
        seen: dict[str, int] = {}

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(raw=messages, after_hello=st.booleans())
        def one_message(raw: str, after_hello: bool) -> None:
            said, usable = loop.run(fuzzer.exchange(raw, after_hello))
            for reply in said:
                kind = reply["type"]
                seen[reply.get("code", kind)] = seen.get(reply.get("code", kind), 0) + 1
                if kind == "error":
                    assert reply["code"] in KNOWN_CODES, reply
                    assert all(math.isfinite(v) for v in reply.values() if isinstance(v, float))
                elif kind == "closed":
                    assert reply["code"] in (1008, 1009), reply  # the only reasons to close on us
                else:
                    assert kind in REPLIES, reply
            closed = any(reply["type"] == "closed" for reply in said)
            assert usable or closed, said  # after any error that does not close, it still answers

        one_message()
        print(f"{EXAMPLES} examples; replies by type or code: {seen}")
        frames_before = len(listener.recording.arrivals)
        loop.run(asyncio.sleep(1.0))
        assert len(listener.recording.arrivals) - frames_before >= 45  # still streaming
        assert not any(e["utterance_id"] == utterance for e in listener.events[1:])  # not ended
    finally:
        loop.run(listener.close())
        loop.run(fuzzer.close())
        loop.stop()
    log = open(log_path).read()
    assert "Traceback" not in log and "INTERNAL_ERROR" not in log
    assert '"level": "error"' not in log, [line for line in log.splitlines() if '"error"' in line]
