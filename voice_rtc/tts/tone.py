"""A deterministic test signal standing in for speech: a sine tone.

The text says what to play: a frequency like `660hz` and a duration like `1.5s` or `300ms`
anywhere in it; otherwise the default frequency, for 60 ms per character of text (so longer
text gives longer audio, as with speech).

With the word `framecode` the tone names its frames instead: frame k of the utterance is a sine
of `framecode_hz(k)`, a whole number of cycles per 20 ms frame (so frames join without clicks),
which survives Opus. A listener's recording then says which frames it played, in what order.
"""

import asyncio
import functools
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from ..audio import FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH
from .base import Speech

_FREQUENCY = re.compile(r"(\d+(?:\.\d+)?)\s*hz\b", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
SECONDS_PER_CHAR = 0.06
AMPLITUDE = 0.5
# An odd chunk size on purpose: it exercises the playout's re-chunking into 882-byte frames.
# About half a second, as the embedded voice hands it over: an encoder batch's worth.
CHUNK_SAMPLES = 11111
FRAMECODE_BASE_HZ = 400
FRAMECODE_STEP_HZ = 100  # two FFT bins of a 20 ms window apart
FRAMECODE_SYMBOLS = 32  # frames k and k + 32 sound alike: 640 ms between look-alikes


def framecode_hz(frame_index: np.ndarray) -> np.ndarray:
    return FRAMECODE_BASE_HZ + FRAMECODE_STEP_HZ * (frame_index % FRAMECODE_SYMBOLS)


def tone_spec(text: str, default_frequency_hz: float) -> tuple[float, float]:
    """(frequency Hz, duration s) that `text` asks for."""
    frequency = _FREQUENCY.search(text)
    duration = _DURATION.search(text)
    hz = float(frequency.group(1)) if frequency else default_frequency_hz
    if duration:
        seconds = float(duration.group(1)) / (1000 if duration.group(2).lower() == "ms" else 1)
    else:
        seconds = max(0.2, SECONDS_PER_CHAR * len(text.strip()))
    return hz, seconds


@functools.lru_cache(maxsize=16)
def _one_period(hz: float, framecode: bool) -> bytes | None:
    """The signal over whole periods (it repeats exactly after one), made once: every utterance
    and every listener then copies slices of it, where computing each sample's sine cost more
    than the rest of a WebSocket stream's work. None where the period is not a whole number of
    samples within a second (a fractional frequency): such a tone is computed as it goes."""
    if framecode:
        samples = FRAMECODE_SYMBOLS * FRAME_SAMPLES
    elif hz == int(hz):
        samples = SAMPLE_RATE // math.gcd(int(hz), SAMPLE_RATE)
    else:
        return None
    repeats = -(-SAMPLE_RATE // samples)  # a second at least: a chunk is a slice or two of it
    return _computed(0, samples * repeats, hz, framecode)


def _computed(start: int, end: int, hz: float, framecode: bool) -> bytes:
    n = np.arange(start, end)
    if framecode:
        frequency = framecode_hz(n // FRAME_SAMPLES)
        phase = 2 * np.pi * frequency * (n % FRAME_SAMPLES) / SAMPLE_RATE
    else:
        phase = 2 * np.pi * hz * n / SAMPLE_RATE
    pcm: bytes = (AMPLITUDE * 32767 * np.sin(phase)).astype("<i2").tobytes()
    return pcm


def tone_pcm(start: int, end: int, hz: float, framecode: bool = False) -> bytes:
    """Samples `start` to `end` of the tone (or of the frame code), 16-bit mono."""
    period = _one_period(hz, framecode)
    if period is None:
        return _computed(start, end, hz, framecode)
    samples = len(period) // SAMPLE_WIDTH
    pieces = []
    while start < end:
        offset = start % samples
        take = min(end - start, samples - offset)
        pieces.append(period[offset * SAMPLE_WIDTH : (offset + take) * SAMPLE_WIDTH])
        start += take
    return b"".join(pieces)


class ToneProvider:
    name = "tone"
    deterministic = True  # the same text gives the same audio
    retracts = False

    def __init__(self, default_frequency_hz: float = 440.0) -> None:
        self._default_frequency_hz = default_frequency_hz

    async def synthesize(self, text: str) -> AsyncIterator[Speech]:
        hz, seconds = tone_spec(text, self._default_frequency_hz)
        total = round(seconds * SAMPLE_RATE)
        framecode = "framecode" in text.lower()
        for start in range(0, total, CHUNK_SAMPLES):
            yield tone_pcm(start, min(start + CHUNK_SAMPLES, total), hz, framecode)
            await asyncio.sleep(0)  # computing is all it does: let the event loop breathe

    def status(self) -> dict[str, Any]:
        return {"provider": self.name}

    async def close(self) -> None:
        pass
