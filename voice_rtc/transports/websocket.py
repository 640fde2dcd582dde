"""WebSocket fallback transport: audio frames as binary messages on the signaling socket.

For listeners WebRTC cannot reach (UDP blocked, ICE failing) or cannot serve well (sustained
loss). Each speech frame is one binary message, a 14-byte header then the payload:

    offset  size  field
    0       1     format version (1)
    1       1     codec: 0 = pcm_s16le (882 bytes), 1 = mu-law (441 bytes)
    2       4     seq: session-wide frame number (what the listener reports as played)
    6       4     utterance id
    10      4     frame index within the utterance

all big-endian. Frames leave on the session's pacer, one per 20 ms, with a bounded burst after a
stall. Silence is not sent: the listener's jitter buffer plays it.
"""

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum

from .. import metrics
from ..audio import mulaw_decode, mulaw_encode
from ..clock import Clock, MonotonicClock, Pacer
from ..playout import Frame
from ..session import PlayedPosition
from .webrtc import FrameSource

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
HEADER = struct.Struct("!BBIII")
MAX_BURST_FRAMES = 10  # after a stall, catch up by at most 200 ms at once


class Codec(IntEnum):
    PCM_S16LE = 0
    MULAW = 1

    @property
    def label(self) -> str:
        return {Codec.PCM_S16LE: "pcm_s16le", Codec.MULAW: "mulaw"}[self]

    @classmethod
    def from_label(cls, label: str) -> "Codec":
        return {"pcm_s16le": cls.PCM_S16LE, "mulaw": cls.MULAW}[label]


CODEC_LABELS = tuple(codec.label for codec in Codec)


@dataclass(frozen=True, slots=True)
class AudioMessage:
    seq: int
    utterance_id: int
    index: int
    pcm: bytes  # decoded: s16le


def pack(frame: Frame, codec: Codec) -> bytes:
    payload = mulaw_encode(frame.pcm) if codec is Codec.MULAW else frame.pcm
    return HEADER.pack(FORMAT_VERSION, codec, frame.seq, frame.utterance_id, frame.index) + payload


def unpack(data: bytes) -> AudioMessage:
    version, codec, seq, utterance_id, index = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ValueError(f"audio message format {version}, expected {FORMAT_VERSION}")
    payload = data[HEADER.size :]
    pcm = mulaw_decode(payload) if codec == Codec.MULAW else payload
    return AudioMessage(seq, utterance_id, index, pcm)


class WebSocketAudio:
    """An `AudioTransport` sending a session's frames as binary messages through `send`."""

    kind = "websocket"

    def __init__(
        self,
        source: FrameSource,
        send: Callable[[bytes], Awaitable[None]],
        codec: Codec,
        clock: Clock | None = None,
    ) -> None:
        self._source = source
        self._send = send
        self.codec = codec
        self._clock = clock or MonotonicClock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="websocket-audio")

    def played_seq(self, position: PlayedPosition) -> int | None:
        return position.seq

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        pacer = Pacer(self._clock, max_burst=MAX_BURST_FRAMES)
        while True:
            lateness_ns = await pacer.tick()
            frame = self._source.next_frame()
            metrics.PACING_LATENESS.observe(lateness_ns / 1e9)
            if frame is None:
                continue
            await self._send(pack(frame, self.codec))
            metrics.FRAMES_SENT.labels("websocket", "speech").inc()
