"""WebSocket fallback transport: audio frames as binary messages on the signaling socket.

For listeners WebRTC cannot reach (UDP blocked, ICE failing) or cannot serve well (sustained
loss). Each speech frame is one binary message, a 14-byte header then the payload:

    offset  size  field
    0       1     format version (1)
    1       1     codec: 0 = pcm_s16le (882 bytes), 1 = mu-law (441 bytes), 2 = opus (one
                  20 ms packet, mono; decode at 48 kHz); bit 7 set (0x80): a warm-up frame
    2       4     seq: session-wide frame number (what the listener reports as played)
    6       4     utterance id
    10      4     frame index within the utterance

all big-endian. The process's one clock hands the stream a frame each 20 ms (with a bounded
burst after a stall); it is written to the socket there and then, without waiting, so one slow
listener cannot hold up the tick: a listener whose socket is backed up is skipped (its audio
waits, nothing is lost) until it drains. Silence is not sent: the listener's jitter buffer
plays it, and while its session has nothing queued the stream sleeps off the clock until the
session wakes it. Opus is the frame as it was encoded; pcm_s16le and mu-law are the frame as it
was synthesized (the playout keeps PCM for such a listener), or decoded from the packet made
before.

After a resume, an Opus stream starts with up to two warm-up frames (bit 7 of the codec byte):
frames the listener played already, sent again so that a new decoder starts in step with the
stream. Decode them; do not play them.
"""

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from aiohttp import web

from .. import metrics
from ..audio import mulaw_decode, mulaw_encode
from ..clock import Ticker
from ..opus import CatchUpEncoder, FrameDecoder, FrameEncoder, Packet, PcmFrame
from ..playout import Frame
from ..session import PlayedPosition
from .webrtc import FrameSource

log = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
HEADER: Final = struct.Struct("!BBIII")
WARM_UP: Final = 0x80  # in the codec byte: decode this frame, do not play it
MAX_BACKLOG_BYTES: Final = 32 * 1024  # unsent on a listener's socket: past it, its audio waits
IDLE_CHECK_FRAMES: Final = 50  # an idle stream looks again after a second, woken or not


class Codec(IntEnum):
    PCM_S16LE = 0
    MULAW = 1
    OPUS = 2

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> "Codec":
        return next(codec for codec, name in _LABELS.items() if name == label)


_LABELS: Final = {Codec.PCM_S16LE: "pcm_s16le", Codec.MULAW: "mulaw", Codec.OPUS: "opus"}
CODEC_LABELS: Final = tuple(_LABELS.values())


@dataclass(frozen=True, slots=True)
class AudioMessage:
    seq: int
    utterance_id: int
    index: int
    codec: Codec
    payload: bytes  # as sent: pcm_s16le, mu-law or an Opus packet
    warm_up: bool = False  # played already: for the decoder only


class Sink:
    """Where a stream's messages go, written at once or not at all (never awaited)."""

    def __init__(self, write: Callable[[bytes], None], backlog: Callable[[], int]) -> None:
        self.write = write  # one whole binary WebSocket message
        self.backlog = backlog  # bytes written but not yet taken by the network


def websocket_sink(ws: web.WebSocketResponse, transport: asyncio.Transport) -> Sink:
    """A sink writing binary messages straight onto an aiohttp WebSocket's transport.

    aiohttp's `send_bytes` is a coroutine; a tick cannot await one per listener. A server's
    frame is unmasked and small, so it is written here as RFC 6455 frames it: FIN + binary,
    then the length. Writes are whole frames, so they never interleave with aiohttp's own.
    """

    def write(message: bytes) -> None:
        if ws.closed or transport.is_closing():
            return
        size = len(message)
        if size < 126:
            header = _SHORT.pack(_FIN_BINARY, size)
        elif size < 1 << 16:
            header = _MEDIUM.pack(_FIN_BINARY, 126, size)
        else:
            header = _LONG.pack(_FIN_BINARY, 127, size)
        transport.write(header + message)

    return Sink(write, transport.get_write_buffer_size)


_FIN_BINARY: Final = 0x82

_SHORT, _MEDIUM, _LONG = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")


def pack(frame: Frame, codec: Codec, payload: Packet) -> bytes:
    codec_byte = codec | (WARM_UP if frame.preroll else 0)
    return (
        HEADER.pack(FORMAT_VERSION, codec_byte, frame.seq, frame.utterance_id, frame.index)
        + payload
    )


def unpack(data: bytes) -> AudioMessage:
    version, codec, seq, utterance_id, index = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ValueError(f"audio message format {version}, expected {FORMAT_VERSION}")
    warm_up = bool(codec & WARM_UP)
    return AudioMessage(
        seq, utterance_id, index, Codec(codec & ~WARM_UP), data[HEADER.size :], warm_up
    )


def pcm_of(message: AudioMessage, decoder: FrameDecoder | None = None) -> bytes:
    """A message's audio as s16le PCM at 22050 Hz (Opus needs the stream's decoder)."""
    if message.codec is Codec.MULAW:
        return mulaw_decode(message.payload)
    if message.codec is Codec.OPUS:
        if decoder is None:
            raise ValueError("an Opus stream needs its decoder")
        return decoder.decode(message.payload)
    return message.payload


class WebSocketAudio:
    """An `AudioTransport` sending a session's frames as binary messages into a `Sink`: each
    frame an Opus packet, or a `PcmFrame` the playout kept unencoded for a listener taking PCM
    (`new_stream`: the speech codec's, for the PCM frames an Opus listener still has ahead)."""

    kind = "websocket"

    def __init__(
        self,
        source: FrameSource,
        sink: Sink,
        codec: Codec,
        ticker: Ticker,
        new_stream: Callable[[], FrameEncoder],
    ) -> None:
        self._source = source
        self._sink = sink
        self.codec = codec
        self.plays_pcm = codec is not Codec.OPUS
        self._ticker = ticker
        self._decoder: FrameDecoder | None = None  # made when first needed: PCM kept needs none
        self._catch_up = CatchUpEncoder(new_stream)
        self.held = 0  # slots skipped because the listener's socket was backed up

    def start(self) -> None:
        self._ticker.add(self)

    def played_seq(self, position: PlayedPosition) -> int | None:
        return position.seq

    def wake(self) -> None:
        self._ticker.wake(self)

    async def close(self) -> None:
        self._ticker.discard(self)

    def on_tick(self) -> None:
        if self._sink.backlog() > MAX_BACKLOG_BYTES:
            self.held += 1
            return
        frame = self._source.next_frame()
        if frame is None:
            if self._source.idle:
                self._ticker.sleep(self, IDLE_CHECK_FRAMES)
            return
        if frame.preroll and self.plays_pcm:
            self._pcm(frame.packet)  # warms a decoder up, if it takes one; the listener had it
            return
        payload = self._payload(frame.packet)
        self._sink.write(pack(frame, self.codec, payload))
        metrics.COUNTERS.frames["websocket", "speech"] += 1
        metrics.COUNTERS.bytes["websocket"] += len(payload)

    def _payload(self, packet: Packet) -> Packet:
        if not self.plays_pcm:
            return self._catch_up.packet(packet)
        pcm = self._pcm(packet)
        return mulaw_encode(pcm) if self.codec is Codec.MULAW else pcm

    def _pcm(self, packet: Packet) -> Packet:
        """A frame as PCM: as the playout kept it, or its packet decoded."""
        if isinstance(packet, PcmFrame):
            return packet
        if self._decoder is None:
            self._decoder = FrameDecoder()
        return self._decoder.decode(packet)
