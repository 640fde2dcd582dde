"""Voice-tuned Opus: speech frames encoded once, as they are synthesized, off the event loop.

Each 20 ms frame (441 samples at 22050 Hz) becomes exactly one Opus packet, so a packet's
position in its utterance is the frame's index, and an RTP timestamp maps back to a frame
exactly. Opus takes 24 kHz at the least for our band (speech up to 11 kHz): frames are resampled
22050 -> 24000 Hz, mono, with in-band FEC, at a bitrate and complexity from the settings. The
packets are what WebRTC sends (aiortc only packs them) and what the WebSocket fallback sends to
browsers that decode Opus; `FrameDecoder` turns them back into 22050 Hz PCM for the others.

libswresample holds back a few samples (its filter's delay); priming each stream with that many
zeros makes every frame in give one frame out, at the cost of a delay of under a millisecond.
"""

import fractions
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Protocol

import av
from av import AudioFrame, AudioResampler

from .audio import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, SILENT_FRAME
from .encoding import EncodingThread

OPUS_RATE: Final = 24000  # the encoder's input rate; RTP still counts Opus at 48 kHz
OPUS_FRAME_SAMPLES: Final = OPUS_RATE * FRAME_MS // 1000  # 480
OPUS_LOOKAHEAD: Final = OPUS_RATE * 65 // 10_000  # 6.5 ms: libopus holds this much back
DECODE_RATE: Final = 48000  # what Opus decoders give
RTP_CLOCK_RATE: Final = 48000
TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)


@dataclass(frozen=True)
class OpusSettings:
    bitrate: int = 24000  # bits per second
    complexity: int = 8  # 0 (cheapest) .. 10 (best)
    fec: bool = True  # in-band forward error correction: a lost packet is rebuilt from the next
    expected_loss_percent: int = 5  # how much redundancy FEC carries


class FrameEncoder(Protocol):
    """One stream of frames (an utterance) in, one packet per frame out, in order."""

    def encode(self, frames: Sequence[bytes]) -> list[bytes]: ...


class Codec(Protocol):
    """What the playout encodes speech with: a stream per utterance, batches off the loop.

    `delay_samples`: how far (at 22050 Hz) a packet's audio lags its frame. The last frame of
    an utterance needs that much silence after the audio, or its end stays in the encoder.
    """

    name: str
    delay_samples: int

    def new_stream(self) -> FrameEncoder: ...

    async def encode(
        self, stream: FrameEncoder, frames: Sequence[bytes], urgent: bool = False
    ) -> list[bytes]:
        """`urgent`: first audio, or a playout about to run dry: ahead of routine batches."""

    @property
    def silent_packet(self) -> bytes: ...


def _pcm_frame(pcm: bytes, rate: int) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // SAMPLE_WIDTH)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    return frame


@cache
def _resampler_lag(from_rate: int, from_samples: int, to_rate: int) -> int:
    """Samples libswresample keeps back on the first frame of a stream: what to prime it with."""
    resampler = AudioResampler(format="s16", layout="mono", rate=to_rate)
    got = sum(f.samples for f in resampler.resample(_pcm_frame(bytes(from_samples * 2), from_rate)))
    return from_samples * to_rate // from_rate - got


class _Rechunker:
    """Resamples a stream of frames, giving back exactly one frame of `out_samples` per frame
    in (a batch of them per call: one call into libswresample for the lot)."""

    def __init__(self, from_rate: int, from_samples: int, to_rate: int, out_samples: int) -> None:
        self._from_rate = from_rate
        self._resampler = AudioResampler(format="s16", layout="mono", rate=to_rate)
        self._out_bytes = out_samples * SAMPLE_WIDTH
        self._pending = bytearray(_resampler_lag(from_rate, from_samples, to_rate) * SAMPLE_WIDTH)

    def push(self, pcm: bytes, frames: int = 1) -> list[bytes]:
        """`pcm` holding `frames` frames in: as many frames out."""
        for out in self._resampler.resample(_pcm_frame(pcm, self._from_rate)):
            self._pending += bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH]
        size = self._out_bytes
        chunks = [
            bytes(self._pending[i * size : (i + 1) * size]).ljust(size, b"\0")
            for i in range(frames)
        ]
        del self._pending[: frames * size]
        return chunks


class OpusFrameEncoder:
    """libopus through PyAV for one stream. Not thread-safe: one batch at a time."""

    def __init__(self, settings: OpusSettings) -> None:
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = OPUS_RATE
        context.layout = "mono"
        context.format = "s16"
        context.bit_rate = settings.bitrate
        context.time_base = fractions.Fraction(1, OPUS_RATE)
        context.options = {
            "application": "voip",
            "compression_level": str(settings.complexity),
            "fec": "1" if settings.fec else "0",
            "packet_loss": str(settings.expected_loss_percent if settings.fec else 0),
        }
        self._context = context
        self._rechunker = _Rechunker(SAMPLE_RATE, FRAME_SAMPLES, OPUS_RATE, OPUS_FRAME_SAMPLES)
        self._pts = 0

    def encode(self, frames: Sequence[bytes]) -> list[bytes]:
        packets = []
        for pcm in self._rechunker.push(b"".join(frames), len(frames)):
            frame = _pcm_frame(pcm, OPUS_RATE)
            frame.pts = self._pts
            self._pts += OPUS_FRAME_SAMPLES
            encoded = self._context.encode(frame)
            # libopus answers every 20 ms frame with one packet at once (its look-ahead is
            # inside the codec, not in the API), which is what keeps packets and frames 1:1.
            packets.append(b"".join(bytes(p) for p in encoded))
        return packets


class OpusCodec:
    """The process's speech codec: settings, and the thread its batches run on."""

    name = "opus"
    delay_samples = -(
        -(OPUS_LOOKAHEAD + _resampler_lag(SAMPLE_RATE, FRAME_SAMPLES, OPUS_RATE))
        * SAMPLE_RATE
        // OPUS_RATE
    )

    def __init__(self, settings: OpusSettings, thread: EncodingThread) -> None:
        self.settings = settings
        self._thread = thread

    def new_stream(self) -> OpusFrameEncoder:
        return OpusFrameEncoder(self.settings)

    async def encode(
        self, stream: FrameEncoder, frames: Sequence[bytes], urgent: bool = False
    ) -> list[bytes]:
        return await self._thread.run(lambda: stream.encode(frames), urgent)

    @property
    def silent_packet(self) -> bytes:
        return silent_packet(self.settings)


@cache
def silent_packet(settings: OpusSettings) -> bytes:
    """A 20 ms packet of silence as these settings code it once the encoder has settled: sent
    while nothing is spoken (with `silence: packet`), it costs no encode at all."""
    encoder = OpusFrameEncoder(settings)
    return encoder.encode([SILENT_FRAME] * 10)[-1]


class FrameDecoder:
    """Opus packets back to 22050 Hz frames (882 bytes each), for listeners that want PCM."""

    def __init__(self) -> None:
        self._context = av.CodecContext.create("libopus", "r")
        self._context.sample_rate = DECODE_RATE
        self._context.layout = "mono"
        self._context.format = "s16"
        decode_samples = DECODE_RATE * FRAME_MS // 1000
        self._rechunker = _Rechunker(DECODE_RATE, decode_samples, SAMPLE_RATE, FRAME_SAMPLES)

    def decode(self, packet: bytes) -> bytes:
        pcm = b"".join(
            bytes(f.planes[0])[: f.samples * SAMPLE_WIDTH]
            for f in self._context.decode(av.Packet(packet))
            if isinstance(f, AudioFrame)
        )
        return self._rechunker.push(pcm or bytes(DECODE_RATE * FRAME_MS // 1000 * SAMPLE_WIDTH))[0]


class PassthroughCodec:
    """No coding: the 'packet' is the PCM frame itself. For tests of everything but the codec."""

    name = "pcm"
    delay_samples = 0

    class _Stream:
        def encode(self, frames: Sequence[bytes]) -> list[bytes]:
            return list(frames)

    def new_stream(self) -> FrameEncoder:
        return self._Stream()

    async def encode(
        self, stream: FrameEncoder, frames: Sequence[bytes], urgent: bool = False
    ) -> list[bytes]:
        return stream.encode(frames)

    @property
    def silent_packet(self) -> bytes:
        return SILENT_FRAME
