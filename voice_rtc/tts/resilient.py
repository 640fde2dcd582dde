"""A remote provider that cannot fail the listener: retries, a circuit breaker, a fallback voice.

Text goes a sentence per request (first audio comes early, and a failure costs one sentence at
most). Audio reaches the playout the moment it arrives. When a request fails:
- before any of its audio went out: retry with backoff (retryable failures, a few times, not
  waiting out a long Retry-After);
- partway: the word timings say which words were spoken whole; the partial word is retracted
  from the playout and the rest of the text goes on from it, by a retry or by the fallback;
- while the breaker is open, or once retries are spent: the fallback voice speaks the rest.
No word is spoken twice and none is dropped.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import metrics
from ..audio import SAMPLE_RATE, SAMPLE_WIDTH
from ..backoff import backoff_delay
from .base import (
    Retract,
    Speech,
    StreamingProvider,
    TTSFailure,
    TTSProvider,
    WordMark,
    WordTimings,
)
from .breaker import CircuitBreaker
from .sentences import split_sentences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_s: float = 0.25
    cap_s: float = 2.0
    max_retry_after_s: float = 2.0  # a listener should not wait longer: the fallback speaks
    first_audio_timeout_s: float = 3.0
    stall_timeout_s: float = 2.0


@dataclass
class _Attempt:
    """One request's progress: bytes handed over, and the words timed so far."""

    delivered: int = 0
    starts: list[int] = field(default_factory=list)  # byte offsets of each word
    ends: list[int] = field(default_factory=list)

    def add(self, timings: WordTimings) -> None:
        self.starts += [_bytes_at(s) for s in timings.start]
        self.ends += [_bytes_at(e) for e in timings.end]

    def words_finished(self) -> int:
        return sum(1 for end in self.ends if end <= self.delivered)

    def cut(self) -> int:
        """Where the whole words end: the start of the first unfinished word, if timed."""
        finished = self.words_finished()
        if finished < len(self.starts):
            return min(self.starts[finished], self.delivered)
        return self.ends[finished - 1] if finished else 0


def _bytes_at(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE) * SAMPLE_WIDTH


def _after(item: Speech, words: int, samples: int) -> Speech:
    """`item` of an attempt that starts `words` words and `samples` samples into its sentence."""
    return (
        WordMark(words + item.index, samples + item.sample) if isinstance(item, WordMark) else item
    )


def _without_words(text: str, count: int) -> str:
    return " ".join(text.split()[count:])


class ResilientTTS:
    def __init__(
        self,
        primary: StreamingProvider,
        fallback: TTSProvider,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = primary.name
        self.deterministic = False  # a remote voice says the same text differently each time
        self.retracts = True  # a remote stream that fails mid-word: the partial word goes
        self._primary = primary
        self._fallback = fallback
        self.breaker = breaker
        self._policy = policy
        self._sleep = sleep

    def status(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "breaker": self.breaker.state.value,
            "fallback": self._fallback.name,
        }

    async def synthesize(self, text: str) -> AsyncIterator[Speech]:
        words_before = samples_before = 0  # of the sentences before this one
        for sentence in split_sentences(text):
            samples = 0  # of this sentence's audio: its marks count from its start already
            async for item in self._sentence(sentence):
                if isinstance(item, WordMark):
                    item = WordMark(words_before + item.index, samples_before + item.sample)
                elif isinstance(item, Retract):
                    samples -= item.byte_count // SAMPLE_WIDTH
                else:
                    samples += len(item) // SAMPLE_WIDTH
                yield item
            words_before += len(sentence.split())
            samples_before += samples

    async def close(self) -> None:
        await self._primary.close()
        await self._fallback.close()

    async def _sentence(self, text: str) -> AsyncIterator[Speech]:
        failures = 0
        reason = "breaker_open"
        # What earlier attempts at this sentence said, whole words of it: the rest starts there.
        words_done = samples_done = 0
        while text and self.breaker.allow_request():
            attempt = _Attempt()
            settled = False
            try:
                async for item in self._attempt(text, attempt):
                    yield _after(item, words_done, samples_done)
                self.breaker.record_success()
                settled = True
                metrics.TTS_REQUESTS.labels(self.name, "ok").inc()
                return
            except TTSFailure as failure:
                self.breaker.record_failure()
                settled = True
                failures += 1
                reason = failure.reason
                metrics.TTS_REQUESTS.labels(self.name, "failed").inc()
                metrics.TTS_FAILURES.labels(self.name, failure.reason).inc()
                log.warning(
                    "tts_request_failed",
                    extra={"provider": self.name, "reason": reason, "delivered": attempt.delivered},
                )
                if attempt.delivered:
                    # Part of the sentence was spoken: go on from the first word not finished.
                    cut = attempt.cut()
                    if attempt.delivered > cut:
                        yield Retract(attempt.delivered - cut)
                    text = _without_words(text, attempt.words_finished())
                    words_done += attempt.words_finished()
                    samples_done += cut // SAMPLE_WIDTH
                delay = self._retry_delay(failure, failures)
                if delay is None:
                    break
                await self._sleep(delay)
            finally:
                if not settled:
                    self.breaker.abandon()  # cancelled: neither a success nor a failure
        if text:
            metrics.TTS_FALLBACKS.labels(reason).inc()
            async for spoken in self._fallback.synthesize(text):
                yield _after(spoken, words_done, samples_done)

    async def _attempt(self, text: str, attempt: _Attempt) -> AsyncIterator[bytes | WordMark]:
        """The primary's audio for `text`; a slow first chunk or a stall is a failure."""
        loop = asyncio.get_running_loop()
        stream = self._primary.stream(text)
        deadline = loop.time() + self._policy.first_audio_timeout_s
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    reason = "stall" if attempt.delivered else "first_audio_timeout"
                    raise TTSFailure(reason, retryable=True) from None
                except TTSFailure:
                    raise
                except Exception as exc:  # a bug or a surprise in the provider: not worth retrying
                    raise TTSFailure("provider_error", retryable=False) from exc
                if isinstance(item, WordTimings):
                    first = len(attempt.starts)
                    attempt.add(item)
                    for index, start in enumerate(attempt.starts[first:], first):
                        yield WordMark(index, start // SAMPLE_WIDTH)
                    continue
                attempt.delivered += len(item)
                yield item
                # Timed from when we ask again: the playout may pace itself between chunks.
                deadline = loop.time() + self._policy.stall_timeout_s
        finally:
            await stream.aclose()

    def _retry_delay(self, failure: TTSFailure, failures: int) -> float | None:
        """Seconds to wait before retrying, or None to let the fallback speak."""
        policy = self._policy
        if not failure.retryable or failures > policy.max_retries:
            return None
        delay = backoff_delay(failures - 1, policy.base_s, policy.cap_s)
        if failure.retry_after_s is not None:
            if failure.retry_after_s > policy.max_retry_after_s:
                return None
            delay = max(delay, failure.retry_after_s)
        return delay
