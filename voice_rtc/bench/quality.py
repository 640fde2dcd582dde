"""`--quality`: does voice-rtc's codec path sound as good as aiortc's default? An objective
check, PESQ wide-band (ITU-T P.862.2, the `pesq` package; `pip install -e .[bench]`).

The same eSpeak NG speech goes through real WebRTC twice: from voice-rtc with its settings
(whatever `--opus-bitrate` and the like say, or its defaults) and from the reference server
(aiortc's default encoder: resampled to 48 kHz, Opus at its default bitrate). Each is recorded,
decoded, at an aiortc client, resampled to 16 kHz, aligned to the original by
cross-correlation and scored against it. 4.64 is PESQ-WB's ceiling; above ~4 is
indistinguishable from the original for most listeners. Loopback loses nothing: how the speech
survives loss, with the FEC a lossy link gets and without, is measured offline (`loss.py`).
"""

import asyncio
import contextlib
import importlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from ..audio import SAMPLE_RATE
from ..transports.webrtc import use_host_addresses
from . import BenchError
from .listener import RECORD_RATE, LeanListener
from .loss import LossScore, format_under_loss, under_loss
from .options import Target
from .processes import Placement, server_command, start_server
from .speech import QUALITY_TEXT

TAIL_S = 0.6  # recorded after the utterance ended: the jitter buffer's worth and some


@dataclass(frozen=True)
class Score:
    target: str
    pesq_wb: float
    delay_ms: float  # where the recording matched the original best
    correlation: float  # normalized, at that delay: near 1 when the alignment is right
    seconds: float  # of original speech scored


@dataclass(frozen=True)
class QualityReport:
    scores: list[Score]
    settings: dict[str, str]
    settings_skipped: list[str]
    under_loss: list[LossScore]


def optional(module: str) -> Any:
    """A module of the `bench` extra, or a BenchError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BenchError(f"--quality needs {module}: pip install -e '.[bench]'") from exc


def to_16k(pcm: bytes) -> np.ndarray:
    """22050 Hz s16 -> float at 16 kHz (polyphase resampling)."""
    signal = optional("scipy.signal")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    g = gcd(RECORD_RATE, SAMPLE_RATE)
    resampled: np.ndarray = signal.resample_poly(samples, RECORD_RATE // g, SAMPLE_RATE // g)
    return resampled


def align(reference: np.ndarray, recorded: np.ndarray) -> tuple[np.ndarray, int, float]:
    """The stretch of `recorded` that lines up with `reference` (zero-padded where the
    recording is short), the delay in samples, and the normalized correlation there."""
    signal = optional("scipy.signal")
    padded = np.concatenate([recorded, np.zeros(len(reference))])
    correlation = signal.correlate(padded, reference, mode="valid", method="fft")
    delay = int(np.argmax(correlation))
    segment = padded[delay : delay + len(reference)]
    norm = float(np.linalg.norm(reference) * np.linalg.norm(segment)) or 1.0
    return segment, delay, float(correlation[delay]) / norm


def score(target: str, reference: np.ndarray, recorded: np.ndarray) -> Score:
    pesq = optional("pesq").pesq
    segment, delay, correlation = align(reference, recorded)
    value = float(pesq(RECORD_RATE, reference, segment, "wb"))
    return Score(
        target, value, delay * 1000 / RECORD_RATE, correlation, len(reference) / RECORD_RATE
    )


async def synthesize(text: str) -> bytes:
    """The original: what the servers' eSpeak NG makes of `text` (same voice, same rate)."""
    from ..tts.espeak import EspeakProvider

    provider = EspeakProvider()
    pcm = bytearray()
    try:
        async for chunk in provider.synthesize(text):
            if isinstance(chunk, bytes):
                pcm += chunk
    finally:
        await provider.close()
    return bytes(pcm)


async def record(url: str, text: str) -> np.ndarray:
    """What an aiortc listener decoded of `text`, at 16 kHz."""
    use_host_addresses(["127.0.0.1"])
    async with aiohttp.ClientSession() as http:
        listener = LeanListener(url, "webrtc", "opus", "record")
        try:
            await listener.connect(http)
            await asyncio.sleep(0.3)  # the jitter buffer settles on silence first
            await listener.time_to_audio(text, timeout=60)
            await asyncio.sleep(TAIL_S)
        finally:
            await listener.close()
    return np.frombuffer(bytes(listener.recorded), dtype="<i2").astype(np.float64) / 32768


async def run_quality(
    settings: Mapping[str, str], pin: bool = True, text: str = QUALITY_TEXT
) -> QualityReport:
    optional("pesq")
    speech = await synthesize(text)
    original = to_16k(speech)
    placement = Placement.choose(pin)
    scores = []
    skipped: list[str] = []
    targets: tuple[Target, ...] = ("voice-rtc", "reference")
    for target in targets:
        log_path = Path(tempfile.gettempdir()) / f"voice-rtc-quality-{target}-{os.getpid()}.log"
        async with contextlib.AsyncExitStack() as stack:
            args, skipped_here = server_command(target, "espeak", settings, 1)
            skipped = skipped_here or skipped
            url, _ = await start_server(stack, args, log_path, placement.server_setup())
            recorded = await record(url, text)
        log_path.unlink(missing_ok=True)
        scores.append(score(target, original, recorded))
    lossy = under_loss(speech, settings, lambda got: score("", original, got).pesq_wb)
    return QualityReport(scores, dict(settings), skipped, lossy)


def format_quality(report: QualityReport) -> str:
    lines = ["quality: eSpeak NG speech through WebRTC, PESQ wide-band against the original"]
    for s in report.scores:
        lines.append(
            f"  {s.target:<10} PESQ-WB {s.pesq_wb:.2f}   (aligned at {s.delay_ms:.1f} ms, "
            f"correlation {s.correlation:.3f}, {s.seconds:.1f} s scored)"
        )
    if len(report.scores) == 2:
        a, b = report.scores
        lines.append(f"  {a.target} - {b.target}: {a.pesq_wb - b.pesq_wb:+.2f}")
    given = ", ".join(f"{k}={v}" for k, v in report.settings.items()) or "its defaults"
    lines.append(f"voice-rtc ran with {given}; the reference with aiortc's default encoder.")
    if report.settings_skipped:
        lines.append(f"this server does not accept {', '.join(report.settings_skipped)}")
    lines += format_under_loss(report.under_loss)
    return "\n".join(lines)
