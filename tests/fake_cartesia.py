"""A local stand-in for Cartesia's TTS API, speaking the protocol the official SDK uses.

`POST /tts/sse` answers with server-sent events, as the real service does: `chunk` events
(base64 pcm_s16le), `timestamps` events (word timings) and a final `done`. Each word of the
transcript is rendered as a tone whose frequency names the word's index in the *request*, so a
test can read back from the audio which words were spoken. Tests script failures with `plan`:
one `Behaviour` per request, in order (then `good` forever).
"""

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

SAMPLE_RATE = 22050
SECONDS_PER_CHAR = 0.05
WORD_BASE_HZ = 300
WORD_STEP_HZ = 100
WORD_SYMBOLS = 24


def word_hz(index: int) -> int:
    return WORD_BASE_HZ + WORD_STEP_HZ * (index % WORD_SYMBOLS)


def word_seconds(word: str) -> float:
    """Whole 20 ms frames, so that word timings in seconds fall on exact samples."""
    return max(6, round(SECONDS_PER_CHAR * len(word) / 0.02)) * 0.02


@dataclass
class Behaviour:
    status: int = 200  # an error status answers at once with Cartesia's JSON error body
    retry_after: float | None = None  # seconds, sent with a 429
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0  # between chunks: slow generation
    cut_after_words: int | None = None  # drop the connection after this many words' audio...
    cut_mid_word: bool = False  # ...and half of the next word's
    hang: bool = False  # accept the request and never answer


@dataclass
class Request:
    transcript: str
    body: dict[str, object]


def word_audio(index: int, word: str) -> bytes:
    """The audio the fake makes for the `index`-th word of a request."""
    return _tone(word_hz(index), word_seconds(word))


@dataclass
class FakeCartesia:
    plan: list[Behaviour] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    api_key: str = "test-key"
    url: str = ""  # where `serve()` listens

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator["FakeCartesia"]:
        """Listen on a free loopback port (its address in `url`) until the block ends."""
        app = web.Application()
        app.router.add_post("/tts/sse", self._sse)
        runner = web.AppRunner(app, shutdown_timeout=0.5)  # do not wait on hanging requests
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            await runner.cleanup()

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Request(body["transcript"], body))
        behaviour = self.plan.pop(0) if self.plan else Behaviour()
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            behaviour = Behaviour(status=401)
        if behaviour.hang:
            await asyncio.sleep(3600)
        if behaviour.status != 200:
            headers = {"Retry-After": str(behaviour.retry_after)} if behaviour.retry_after else {}
            return web.json_response(
                {"title": "error", "message": f"status {behaviour.status}", "request_id": "r"},
                status=behaviour.status,
                headers=headers,
            )
        await asyncio.sleep(behaviour.first_byte_delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = body["transcript"].split()
        offset = 0.0
        for index, word in enumerate(words):
            cut = behaviour.cut_after_words is not None and index == behaviour.cut_after_words
            if cut and not behaviour.cut_mid_word:
                return await _drop(request, response)
            seconds = word_seconds(word)
            pcm = word_audio(index, word)
            timestamps = {"words": [word], "start": [offset], "end": [offset + seconds]}
            await _event(response, {"type": "timestamps", "word_timestamps": timestamps})
            if cut:
                half = len(pcm) // 4 * 2
                await _event(response, {"type": "chunk", "data": _b64(pcm[:half]), "step_time": 1})
                return await _drop(request, response)
            for start in range(0, len(pcm), 4000):
                chunk = _b64(pcm[start : start + 4000])
                await _event(response, {"type": "chunk", "data": chunk, "step_time": 1.0})
                await asyncio.sleep(behaviour.chunk_delay)
            offset += seconds
        await _event(response, {"type": "done", "done": True})
        return response


async def _drop(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """The connection drops mid-stream, as a network or a crashing upstream would."""
    assert request.transport is not None
    request.transport.close()
    return response


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _event(response: web.StreamResponse, data: dict[str, object]) -> None:
    data = {"done": False, "status_code": 200, **data}
    await response.write(f"data: {json.dumps(data)}\n\n".encode())


def _tone(hz: int, seconds: float) -> bytes:
    n = np.arange(round(seconds * SAMPLE_RATE))
    return (0.5 * 32767 * np.sin(2 * np.pi * hz * n / SAMPLE_RATE)).astype("<i2").tobytes()
