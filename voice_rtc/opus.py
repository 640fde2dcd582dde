"""Voice-tuned Opus: speech frames encoded once, as they are synthesized, off the event loop.

Each 20 ms frame (441 samples at 22050 Hz) becomes exactly one Opus packet, so a packet's
position in its utterance is the frame's index, and an RTP timestamp maps back to a frame
exactly. Frames are resampled 22050 -> 16000 Hz, so Opus codes wide-band speech (to 8 kHz) with
SILK alone, mono, at a bitrate and complexity from the settings, with in-band FEC while the
listener's link loses packets (`fec.py`). At 24 kHz it would code super-wide-band (SILK and
CELT together, to 12 kHz): eSpeak NG puts 0.2% of its energy above 8 kHz, and that band cost
half as much encoding again and scored lower on PESQ-WB at the same bitrate (3.64 against 3.90
at 24 kbps, `python -m voice_rtc.bench --quality`). The packets are what WebRTC sends (aiortc
only packs them) and what the WebSocket fallback sends to browsers that decode Opus;
`FrameDecoder` turns them back into 22050 Hz PCM for the others.

The resampler is causal and exact (`resample.py`): every frame in gives one frame out, with a
delay of a millisecond.
"""

import fractions
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Protocol, TypeAlias

from . import libopus
from .audio import FRAME_MS, SAMPLE_RATE, SAMPLE_WIDTH, SILENT_FRAME
from .config import OPUS_BITRATE, OPUS_COMPLEXITY
from .encoding import EncodingThread
from .fec import LinkLoss
from .resample import Resampler

OPUS_RATE: Final = 16000  # the encoder's input rate; RTP still counts Opus at 48 kHz
OPUS_FRAME_SAMPLES: Final = OPUS_RATE * FRAME_MS // 1000  # 320
OPUS_LOOKAHEAD: Final = libopus.Encoder(OPUS_RATE).lookahead  # what libopus holds back (6.5 ms)
RTP_CLOCK_RATE: Final = 48000
# A packet's pts counts RTP ticks: aiortc's Opus sender then stamps it as it is, where another
# time base costs it a conversion through Fractions (~6 us a packet, on the loop).
RTP_TIME_BASE: Final = fractions.Fraction(1, RTP_CLOCK_RATE)


@dataclass(frozen=True)
class OpusSettings:
    bitrate: int = OPUS_BITRATE  # bits per second
    complexity: int = OPUS_COMPLEXITY  # 0 (cheapest) .. 10 (best)
    # In-band forward error correction (a lost packet is rebuilt from the next), coded while the
    # listener's link reports loss (fec.py).
    fec: bool = True


# A frame a playout kept as PCM instead of encoding it (its listener took PCM): sent as it is
# to a listener taking PCM, encoded by `CatchUpEncoder` for one taking packets. Its type is what
# tells it from a packet (bytes), and a bytearray because that is untracked by the garbage
# collector, as bytes are, where a bytes subclass is tracked: a second of PCM ahead for each of
# hundreds of listeners made every young collection walk tens of thousands of them (4 ms at 400
# listeners, and 20-40 ms for the older generations). Never written to once made.
PcmFrame: TypeAlias = bytearray
Packet: TypeAlias = bytes | PcmFrame  # what a playout holds for a frame: encoded, or kept as PCM


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

    def new_stream(self, link: LinkLoss | None = None) -> FrameEncoder:
        """`link`: the listener's, whose loss says whether to code FEC (None: a lossless one)."""

    async def encode(
        self, stream: FrameEncoder, frames: Sequence[bytes], urgent: bool = False
    ) -> list[bytes]:
        """`urgent`: first audio, or a playout about to run dry: ahead of routine batches."""

    @property
    def silent_packet(self) -> bytes: ...


def _split(pcm: bytes, frame_bytes: int) -> list[bytes]:
    return [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]


class OpusFrameEncoder:
    """libopus for one stream. Not thread-safe: one batch at a time."""

    def __init__(self, settings: OpusSettings, link: LinkLoss | None = None) -> None:
        self._encoder = libopus.Encoder(OPUS_RATE)
        self._encoder.configure(settings.bitrate, settings.complexity, settings.fec)
        self._link = link if settings.fec else None
        self._coded_loss_percent = 0
        self._resampler = Resampler(SAMPLE_RATE, OPUS_RATE)

    def encode(self, frames: Sequence[bytes]) -> list[bytes]:
        if self._link is not None and self._link.coded_loss_percent != self._coded_loss_percent:
            self._coded_loss_percent = self._link.coded_loss_percent
            self._encoder.expect_loss(self._coded_loss_percent)
        # libopus answers every 20 ms frame with one packet at once (its look-ahead is inside
        # the codec, not in the API), which is what keeps packets and frames 1:1.
        pcm = self._resampler.push(b"".join(frames))
        return [self._encoder.encode(p) for p in _split(pcm, OPUS_FRAME_SAMPLES * SAMPLE_WIDTH)]


class OpusCodec:
    """The process's speech codec: settings, and the thread its batches run on."""

    name = "opus"
    delay_samples = math.ceil(
        (OPUS_LOOKAHEAD + Resampler(SAMPLE_RATE, OPUS_RATE).delay) * SAMPLE_RATE / OPUS_RATE
    )

    def __init__(self, settings: OpusSettings, thread: EncodingThread) -> None:
        self.settings = settings
        self._thread = thread

    def new_stream(self, link: LinkLoss | None = None) -> OpusFrameEncoder:
        return OpusFrameEncoder(self.settings, link)

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


class CatchUpEncoder:
    """Packets for the frames a playout kept as PCM, made where they are sent: on the event
    loop, one a tick, by a stream of its own. Only for the second or so a listener moving from
    PCM to a transport that takes packets still has PCM ahead of it: the playout encodes again
    from the move on. Packets pass through as they are."""

    def __init__(self, new_stream: Callable[[], FrameEncoder]) -> None:
        self._new_stream = new_stream
        self._stream: FrameEncoder | None = None

    def packet(self, packet: Packet) -> bytes:
        if not isinstance(packet, PcmFrame):
            return packet
        if self._stream is None:
            self._stream = self._new_stream()
        return self._stream.encode([bytes(packet)])[0]  # a copy, for the second after a move


class FrameDecoder:
    """Opus packets back to 22050 Hz frames (882 bytes each), for listeners that want PCM."""

    def __init__(self) -> None:
        self._decoder = libopus.Decoder(OPUS_RATE)
        self._resampler = Resampler(OPUS_RATE, SAMPLE_RATE)

    def decode(self, packet: bytes) -> bytes:
        return self._resampler.push(self._decoder.decode(packet))


class PassthroughCodec:
    """No coding: the 'packet' is the PCM frame itself. For tests of everything but the codec."""

    name = "pcm"
    delay_samples = 0

    class _Stream:
        def encode(self, frames: Sequence[bytes]) -> list[bytes]:
            return list(frames)

    def new_stream(self, link: LinkLoss | None = None) -> FrameEncoder:
        return self._Stream()

    async def encode(
        self, stream: FrameEncoder, frames: Sequence[bytes], urgent: bool = False
    ) -> list[bytes]:
        return stream.encode(frames)

    @property
    def silent_packet(self) -> bytes:
        return SILENT_FRAME
