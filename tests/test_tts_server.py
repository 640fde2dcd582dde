"""The server with a remote voice: Cartesia (a local fake of its API) behind retries, a breaker
and the embedded fallback voice, as a listener and an operator see it."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server import build_app
from tests.conftest import RunningServer, StartServer
from tests.fake_cartesia import Behaviour, FakeCartesia, word_hz, word_seconds
from tests.listener import Listener
from tests.signal_analysis import dominant_frequency, rms, voiced_span
from voice_rtc.audio import SAMPLE_RATE
from voice_rtc.config import load_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeCartesia]:
    async with FakeCartesia().serve() as fake:
        yield fake


async def cartesia_server(
    start_server: StartServer, fake: FakeCartesia, **settings: Any
) -> RunningServer:
    return await start_server(
        env={"CARTESIA_API_KEY": "test-key"},
        tts="cartesia",
        cartesia_voice="voice-1",
        cartesia_base_url=fake.url,
        **settings,
    )


def tones_heard(pcm: bytes | bytearray, words: list[str]) -> list[int]:
    """The tone in the middle of each word's stretch of the recording, to the nearest 100 Hz
    (the fake's words are 100 Hz apart), starting where the sound starts."""
    start, _ = voiced_span(pcm)
    at = int(start * SAMPLE_RATE)
    heard = []
    for word in words:
        length = round(word_seconds(word) * SAMPLE_RATE)
        middle = pcm[(at + length // 4) * 2 : (at + 3 * length // 4) * 2]
        heard.append(round(dominant_frequency(middle) / 100) * 100)
        at += length
    return heard


async def ready(http: aiohttp.ClientSession, server: RunningServer) -> dict[str, Any]:
    async with http.get(server.url + "ready") as response:
        body: dict[str, Any] = await response.json()
        return body


async def test_speech_from_cartesia_reaches_the_listener_exactly(
    start_server: StartServer, fake: FakeCartesia, http: aiohttp.ClientSession
) -> None:
    server = await cartesia_server(start_server, fake)
    async with Listener(server.url, transport="websocket") as client:
        await client.say("Hello there, friend.")
    words = ["Hello", "there,", "friend."]
    # Each word is a tone naming its place in the request: all three, in order, each once.
    assert tones_heard(client.recording.pcm, words) == [word_hz(i) for i in range(len(words))]
    start, end = voiced_span(client.recording.pcm)
    assert abs((end - start) - sum(word_seconds(w) for w in words)) < 0.03
    assert (await ready(http, server))["tts"] == {
        "provider": "cartesia",
        "breaker": "closed",
        "fallback": "espeak",
    }


async def test_cartesias_word_timestamps_time_the_words_exactly(
    start_server: StartServer, fake: FakeCartesia
) -> None:
    """The fake's words are whole frames long, its timestamps exact: each word is timed at the
    frame its audio begins (they once counted the audio already handed over twice)."""
    server = await cartesia_server(start_server, fake)
    words = "alpha bravo charlie delta. echo foxtrot golf.".split()
    async with Listener(server.url, transport="websocket") as client:
        await client.say(" ".join(words))
    timed = [w for m in client.messages if m["type"] == "utterance_words" for w in m["words"]]
    begins = [round(sum(word_seconds(w) for w in words[:i]) / 0.02) for i in range(len(words))]
    assert [(w["text"], w["frame"]) for w in timed] == list(zip(words, begins, strict=True))


async def test_an_agent_streaming_text_is_spoken_sentence_by_sentence(
    start_server: StartServer, fake: FakeCartesia
) -> None:
    server = await cartesia_server(start_server, fake)
    async with Listener(server.url, transport="websocket") as client:
        utterance = await client.speak("Hello the", final=False)
        await client.speak("re. How are", utterance_id=utterance, final=False)
        await asyncio.sleep(0.3)
        assert [r.transcript for r in fake.requests] == ["Hello there."]  # spoken already
        await client.speak(" you?", utterance_id=utterance, final=True)
        ended = await client.wait_for_event("utterance_ended", utterance)
    assert [r.transcript for r in fake.requests] == ["Hello there.", "How are you?"]
    assert ended["reason"] == "done" and ended["text"] == "Hello there. How are you?"


async def test_when_cartesia_keeps_failing_the_breaker_opens_and_the_embedded_voice_speaks(
    start_server: StartServer, fake: FakeCartesia, http: aiohttp.ClientSession
) -> None:
    server = await cartesia_server(start_server, fake, breaker_failure_threshold=2)
    fake.plan = [Behaviour(status=503)] * 20
    async with Listener(server.url, transport="websocket") as client:
        for _ in range(2):
            ended = await client.say("Are you there?")
            assert ended["reason"] == "done"
        assert (await ready(http, server))["tts"]["breaker"] == "open"
        requests_while_closed = len(fake.requests)
        await client.say("The fallback voice speaks this.")
    assert len(fake.requests) == requests_while_closed  # nothing sent out while open
    assert rms(client.recording.pcm) > 300  # and the listener heard speech throughout
    assert '"event": "breaker_state"' in server.log()


class BrokenVoice:
    name = "broken"
    retracts = False

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        raise RuntimeError("synthesis failed")
        yield b""

    def status(self) -> dict[str, Any]:
        return {"provider": self.name}

    async def close(self) -> None:
        pass


async def test_speech_that_cannot_be_made_ends_failed_with_a_clear_error() -> None:
    settings = load_settings({}, ["--tts", "tone"])
    async with TestServer(build_app(settings, tts=BrokenVoice()), host="127.0.0.1") as test_server:
        async with Listener(str(test_server.make_url("/")), transport="websocket") as client:
            ended = await client.say("Hello.")
            assert ended["reason"] == "failed"
            for _ in range(50):
                if client.errors:
                    break
                await asyncio.sleep(0.05)
    assert [e["code"] for e in client.errors] == ["TTS_SERVICE_UNAVAILABLE"]
    assert client.errors[0]["action"] == "retry_later"
