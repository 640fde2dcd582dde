"""The interfaces speech providers implement, and what flows through them."""

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Retract:
    """Take back the last `byte_count` bytes of audio handed over, where not yet played.

    After a remote stream fails mid-word, the partial word is withdrawn so that the rest of the
    text, spoken from that word on, repeats nothing.
    """

    byte_count: int


@dataclass(frozen=True, slots=True)
class WordMark:
    """Word `index` of the text `synthesize` was given (its whitespace-separated words, from
    0) begins `sample` samples into the audio that call has handed over. From the provider's
    own word timings (eSpeak NG's word events, Cartesia's timestamps): what turns a played
    position into the words the listener heard."""

    index: int
    sample: int


Speech = bytes | Retract | WordMark


class TTSProvider(Protocol):
    """Text in, 22050 Hz s16le mono PCM out, as an async iterator of chunks of any size, with
    word marks where the provider knows its words' timings (before or after their audio).

    The first chunk should come as soon as the provider has it: playout starts on it.
    Closing the iterator early (cancel, barge-in) must stop the synthesis behind it.
    """

    name: str
    # Does the same text always give the same audio? Then a session taken over by another
    # process can skip exactly the frames its listener played (voice_rtc.speech).
    deterministic: bool
    # May it take back audio it handed over (`Retract`)? Only then does the playout keep the
    # newest half second of PCM beside the packets (23 KB a speaking session).
    retracts: bool

    def synthesize(self, text: str) -> AsyncIterator[Speech]: ...

    def status(self) -> dict[str, Any]:
        """What operators should see of it (in /ready)."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WordTimings:
    """Words spoken in a remote stream, each [start, end) in seconds from its first audio."""

    words: list[str]
    start: list[float]
    end: list[float]


class TTSFailure(Exception):
    """A remote provider failed a request. `retryable`: the same request may succeed later."""

    def __init__(self, reason: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason  # a metrics label: few values
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class StreamingProvider(Protocol):
    """A remote provider: audio chunks interleaved with word timings; raises TTSFailure."""

    name: str

    def stream(self, text: str) -> AsyncGenerator[bytes | WordTimings, None]: ...

    async def close(self) -> None: ...
