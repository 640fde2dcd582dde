"""The one PCM format voice-rtc speaks, and helpers to cut and convert it.

Everything between the TTS provider and the transports is 16-bit signed little-endian mono PCM
at 22050 Hz, moved in 20 ms frames of 441 samples (882 bytes).
"""

from collections.abc import Iterator
from typing import Final

import numpy as np

SAMPLE_RATE: Final = 22050
CHANNELS: Final = 1
SAMPLE_WIDTH: Final = 2  # bytes, s16le
FRAME_MS: Final = 20
FRAME_SAMPLES: Final = SAMPLE_RATE * FRAME_MS // 1000  # 441
FRAME_BYTES: Final = FRAME_SAMPLES * SAMPLE_WIDTH * CHANNELS  # 882
FRAME_NS: Final = FRAME_MS * 1_000_000
SILENT_FRAME: Final = bytes(FRAME_BYTES)


def duration_s(pcm_bytes: int) -> float:
    """Seconds of audio in this many bytes of PCM."""
    return pcm_bytes / (SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS)


def frames_for(seconds: float) -> int:
    """Whole frames needed to hold this many seconds."""
    return -(-round(seconds * SAMPLE_RATE) // FRAME_SAMPLES)


class Reframer:
    """Re-chunks PCM of any chunk size into exact FRAME_BYTES frames.

    Chunks may split a sample between them (an odd byte count); the remainder carries over.
    `flush()` returns the tail zero-padded to a whole frame, or nothing if there is no tail.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def push(self, chunk: bytes) -> Iterator[bytes]:
        self._pending += chunk
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            yield bytes(self._pending[start : start + FRAME_BYTES])
        del self._pending[:whole]

    def retract(self, byte_count: int) -> int:
        """Drop up to `byte_count` of the newest bytes not yet framed; returns how many."""
        dropped = min(byte_count, len(self._pending))
        del self._pending[len(self._pending) - dropped :]
        return dropped

    def restore(self, data: bytes) -> None:
        """Put bytes taken back out of a frame in front of what is pending."""
        self._pending[:0] = data

    def flush(self) -> Iterator[bytes]:
        if self._pending:
            tail = bytes(self._pending).ljust(FRAME_BYTES, b"\0")
            self._pending.clear()
            yield tail


# G.711 mu-law, for the WebSocket fallback at half the bandwidth of s16.
_MULAW_BIAS: Final = 0x84
_MULAW_CLIP: Final = 32635


def _build_mulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


_MULAW_DECODE: Final = _build_mulaw_decode_table()


def mulaw_encode(pcm: bytes | bytearray) -> bytes:
    """s16le PCM -> 8-bit mu-law (ITU-T G.711), one byte per sample."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), _MULAW_CLIP) + _MULAW_BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    codes: np.ndarray = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return codes.astype(np.uint8).tobytes()


def mulaw_decode(data: bytes) -> bytes:
    """8-bit mu-law -> s16le PCM."""
    return _MULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()
