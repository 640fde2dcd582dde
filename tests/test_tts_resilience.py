"""TTS that does not fail the listener: the real Cartesia SDK against a local fake of its API,
with retries, a circuit breaker and the fallback voice."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.fake_cartesia import Behaviour, FakeCartesia, word_audio
from voice_rtc.audio import FRAME_BYTES, FRAME_MS
from voice_rtc.opus import PassthroughCodec
from voice_rtc.playout import Playout
from voice_rtc.tts.breaker import BreakerState, CircuitBreaker
from voice_rtc.tts.cartesia import CartesiaProvider
from voice_rtc.tts.resilient import ResilientTTS, RetryPolicy

SENTENCE = "one two three four five six"
WORDS = SENTENCE.split()
FALLBACK_AUDIO = b"\x7f\x00" * 441

CODEC = PassthroughCodec()  # the playout's logic, exactly: frames stay PCM


class RecordingFallback:
    """The fallback voice: remembers what it was asked to say; one frame of audio per text."""

    name = "fallback"

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.texts.append(text)
        yield FALLBACK_AUDIO

    def status(self) -> dict[str, Any]:
        return {"provider": self.name}

    async def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeCartesia]:
    async with FakeCartesia().serve() as fake:
        yield fake


def resilient(
    fake: FakeCartesia,
    fallback: RecordingFallback,
    breaker: CircuitBreaker | None = None,
    api_key: str = "test-key",
    **policy: Any,
) -> ResilientTTS:
    policy = {"base_s": 0.01, "first_audio_timeout_s": 1.0, "stall_timeout_s": 1.0, **policy}
    provider = CartesiaProvider(
        api_key, "sonic-2", "voice-1", fake.url, stall_timeout_s=policy["stall_timeout_s"]
    )
    return ResilientTTS(
        provider, fallback, breaker or CircuitBreaker("cartesia"), RetryPolicy(**policy)
    )


async def spoken(tts: ResilientTTS, text: str) -> bytes:
    """Everything the listener gets for `text`, through a real playout taken at the pacer's
    pace: a frame each 20 ms. (Taken faster than real time, it would play audio that a retry
    takes back before the retract could arrive.)"""
    playout = Playout(tts, CODEC, lambda _e: None)
    playout.enqueue(text)
    pcm = bytearray()
    while not playout.idle:
        frame = playout.next_frame()
        if frame is not None:
            pcm += frame.packet
        await asyncio.sleep(FRAME_MS / 1000)
    return bytes(pcm)


def words_audio(words: list[str], first_index: int = 0) -> bytes:
    """The fake's audio for `words`, numbered within their request from `first_index`."""
    return b"".join(word_audio(first_index + i, w) for i, w in enumerate(words))


def padded(pcm: bytes) -> bytes:
    return pcm + bytes(-len(pcm) % FRAME_BYTES)


async def test_a_good_stream_is_spoken_and_first_audio_comes_before_the_stream_ends(
    fake: FakeCartesia,
) -> None:
    fake.plan = [Behaviour(chunk_delay=0.06)]  # slow generation: over a second for the sentence
    measured_before = first_audio_count()
    playout = Playout(resilient(fake, RecordingFallback()), CODEC, lambda _e: None)
    started = time.monotonic()
    playout.enqueue(SENTENCE)
    for _ in range(1000):  # pull as the pacer would
        if playout.next_frame() is not None:
            break
        await asyncio.sleep(0.002)
    first_audio = time.monotonic() - started
    assert first_audio < 0.5  # the first chunk played long before the last was made
    assert first_audio_count() == measured_before + 1  # time to first audio was measured
    body = fake.requests[0].body
    assert body["output_format"] == {
        "container": "raw",
        "encoding": "pcm_s16le",
        "sample_rate": 22050,
    }
    assert body["add_timestamps"] is True and body["voice"] == "voice-1"
    await playout.close()
    assert await spoken(resilient(fake, RecordingFallback()), SENTENCE) == padded(
        words_audio(WORDS)
    )


def first_audio_count() -> float:
    value = REGISTRY.get_sample_value(
        "voice_rtc_tts_first_audio_seconds_count", {"provider": "cartesia"}
    )
    return value or 0.0


async def test_a_slow_first_byte_within_the_timeout_is_waited_for(fake: FakeCartesia) -> None:
    fake.plan = [Behaviour(first_byte_delay=0.4)]
    fallback = RecordingFallback()
    assert await spoken(resilient(fake, fallback), SENTENCE) == padded(words_audio(WORDS))
    assert len(fake.requests) == 1 and fallback.texts == []


@pytest.mark.parametrize(
    "failure",
    [
        Behaviour(first_byte_delay=2.0),  # slower than the first-audio timeout
        Behaviour(hang=True),  # never answers
        Behaviour(status=503),
        Behaviour(status=429, retry_after=0.3),
        Behaviour(cut_after_words=0),  # the connection drops before any audio
    ],
    ids=["slow-first-byte", "timeout", "5xx", "429", "cut-before-audio"],
)
async def test_a_retryable_failure_before_any_audio_is_retried(
    fake: FakeCartesia, failure: Behaviour
) -> None:
    fake.plan = [failure]
    fallback = RecordingFallback()
    started = time.monotonic()
    assert await spoken(resilient(fake, fallback), SENTENCE) == padded(words_audio(WORDS))
    assert [r.transcript for r in fake.requests] == [SENTENCE, SENTENCE]
    assert fallback.texts == []
    if failure.retry_after:
        assert time.monotonic() - started >= failure.retry_after  # Retry-After was honoured


async def test_unauthorized_is_not_retried_the_fallback_speaks(fake: FakeCartesia) -> None:
    fallback = RecordingFallback()
    pcm = await spoken(resilient(fake, fallback, api_key="wrong-key"), SENTENCE)
    assert len(fake.requests) == 1
    assert fallback.texts == [SENTENCE]
    assert pcm == padded(FALLBACK_AUDIO)


async def test_a_long_retry_after_is_not_waited_out(fake: FakeCartesia) -> None:
    fake.plan = [Behaviour(status=429, retry_after=30)]
    fallback = RecordingFallback()
    started = time.monotonic()
    await spoken(resilient(fake, fallback), SENTENCE)
    assert time.monotonic() - started < 2
    assert len(fake.requests) == 1 and fallback.texts == [SENTENCE]


async def test_retries_are_bounded_then_the_fallback_speaks(fake: FakeCartesia) -> None:
    fake.plan = [Behaviour(status=500)] * 5
    fallback = RecordingFallback()
    await spoken(resilient(fake, fallback, max_retries=2), SENTENCE)
    assert len(fake.requests) == 3  # the request and two retries
    assert fallback.texts == [SENTENCE]


async def test_a_stream_cut_mid_word_goes_on_from_that_word_with_nothing_repeated(
    fake: FakeCartesia,
) -> None:
    fake.plan = [Behaviour(cut_after_words=2, cut_mid_word=True)]
    fallback = RecordingFallback()
    pcm = await spoken(resilient(fake, fallback), SENTENCE)
    # The retry asks for the rest only, from the word that was cut.
    assert [r.transcript for r in fake.requests] == [SENTENCE, "three four five six"]
    # Exactly: "one two" from the first request (the half "three" taken back), then the rest.
    assert pcm == padded(words_audio(WORDS[:2]) + words_audio(WORDS[2:]))
    assert fallback.texts == []


async def test_after_a_partial_failure_the_fallback_speaks_the_rest_once(
    fake: FakeCartesia,
) -> None:
    fake.plan = [Behaviour(cut_after_words=4, cut_mid_word=True), Behaviour(status=401)]
    fallback = RecordingFallback()
    pcm = await spoken(resilient(fake, fallback), SENTENCE)
    assert [r.transcript for r in fake.requests] == [SENTENCE, "five six"]
    assert fallback.texts == ["five six"]
    assert pcm == padded(words_audio(WORDS[:4]) + FALLBACK_AUDIO)


async def test_each_sentence_is_its_own_request(fake: FakeCartesia) -> None:
    await spoken(resilient(fake, RecordingFallback()), "First one here. And a second.")
    assert [r.transcript for r in fake.requests] == ["First one here.", "And a second."]


def test_breaker_opens_after_the_threshold_lets_one_trial_through_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("cartesia", failure_threshold=3, recovery_s=60, clock=clock)
    for _ in range(2):
        assert breaker.allow_request()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()  # a success resets the count: failures must be in a row
    for _ in range(3):
        assert breaker.allow_request()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow_request()
    clock.now += 59.9
    assert not breaker.allow_request()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow_request()  # the one trial...
    assert not breaker.allow_request()  # ...and only one at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # a failed trial opens it again
    clock.now += 60
    assert breaker.allow_request()
    breaker.abandon()  # a cancelled trial frees the slot
    assert breaker.allow_request()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow_request()


async def test_while_the_breaker_is_open_the_fallback_speaks_without_calling_out(
    fake: FakeCartesia,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("cartesia", failure_threshold=2, recovery_s=60, clock=clock)
    fake.plan = [Behaviour(status=500)] * 2
    fallback = RecordingFallback()
    tts = resilient(fake, fallback, breaker=breaker, max_retries=0)
    await spoken(tts, "First.")
    await spoken(tts, "Second.")
    assert breaker.state is BreakerState.OPEN and len(fake.requests) == 2
    assert await spoken(tts, "Third.") == padded(FALLBACK_AUDIO)
    assert len(fake.requests) == 2  # no request while open
    assert fallback.texts == ["First.", "Second.", "Third."]
    assert tts.status() == {"provider": "cartesia", "breaker": "open", "fallback": "fallback"}
    clock.now += 60  # half-open: the next sentence is the trial, and it succeeds
    assert await spoken(tts, "Fourth.") == padded(words_audio(["Fourth."]))
    assert breaker.state is BreakerState.CLOSED
