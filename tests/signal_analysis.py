"""Measuring what a listener received: where the sound is, and its pitch."""

import numpy as np

from voice_rtc.audio import SAMPLE_RATE


def samples(pcm: bytes | bytearray) -> np.ndarray:
    return np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float64)


def voiced_span(pcm: bytes | bytearray, threshold: float = 1000.0) -> tuple[float, float]:
    """(start, end) in seconds of the part of the recording louder than `threshold`."""
    x = samples(pcm)
    window = SAMPLE_RATE // 100  # 10 ms envelope, so a sine's zero crossings do not count
    frames = np.abs(x[: len(x) // window * window]).reshape(-1, window).max(axis=1)
    loud = np.nonzero(frames > threshold)[0]
    if len(loud) == 0:
        return 0.0, 0.0
    return loud[0] * window / SAMPLE_RATE, (loud[-1] + 1) * window / SAMPLE_RATE


def dominant_frequency(pcm: bytes | bytearray) -> float:
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(x))


def rms(pcm: bytes | bytearray) -> float:
    x = samples(pcm)
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
