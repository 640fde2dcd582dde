"""What a Python client plays: the audio each transport delivers, as 22050 Hz mono PCM frames
handed to a sink, and the last frame played, which is the position the client reports.

The position is what makes a new transport resume at the first frame the listener has not
heard: the seq of the last WebSocket frame, or the RTP timestamp of the last WebRTC packet
decoded (absolute, as browsers report it), each with the id of the transport that played it.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from aiortc import RTCRtpReceiver
from av import AudioFrame, AudioResampler

from ..audio import SAMPLE_RATE, SAMPLE_WIDTH
from ..opus import FrameDecoder
from ..transports.websocket import Codec, pcm_of, unpack
from .events import TransportKind

FrameId = tuple[int, int, int]  # (seq, utterance id, frame index), as WebSocket frames say


@dataclass(frozen=True, slots=True)
class PlayedFrame:
    """About 20 ms of audio the client played."""

    pcm: bytes  # 22050 Hz, mono, s16le
    arrival: float  # time.monotonic() when it arrived
    frame_id: FrameId | None = None  # WebSocket frames name themselves; WebRTC packets do not
    wire_bytes: int = 0  # of the WebSocket message that carried it


class AudioSink(Protocol):
    """Where a client's played audio goes, frame by frame (a Recording, a sound card, ...).
    Called on the event loop as each frame arrives: it must not block."""

    def play(self, frame: PlayedFrame) -> None:
        """Take one played frame."""


class Playback:
    """The client's one player: the current transport's frames in, played frames out."""

    def __init__(self, sink: AudioSink, on_played: Callable[[], None] = lambda: None) -> None:
        """`on_played`: called after each frame the sink took, once `position` names it."""
        self.sink = sink
        self._on_played = on_played
        self.transport_id = 0  # the transport playing now, as the server named it; 0: not yet
        self._kind: TransportKind | None = None  # frames from any other are not played
        self._last: tuple[str, int] | None = None  # ("seq", n) or ("rtp_timestamp", t)
        self._last_seq = -1  # of the last WebSocket frame played, over every transport
        self._decoder: FrameDecoder | None = None  # for an Opus WebSocket stream
        self._resampler: AudioResampler | None = None  # for a WebRTC track

    @property
    def position(self) -> dict[str, int] | None:
        """What to report (`position` messages, hello.position): the last frame the current
        (or last) transport played; None until it has played one and been named."""
        if self._last is None or not self.transport_id:
            return None
        key, value = self._last
        return {"transport_id": self.transport_id, key: value}

    def begin(self, kind: TransportKind) -> None:
        """A new transport starts: what the old one played has been reported."""
        self._kind = kind
        self.transport_id = 0
        self._last = None
        self._decoder = None
        self._resampler = None

    def stop(self) -> None:
        """The transport is gone: what it still delivers was never played. Its position is
        kept, for the hello that resumes."""
        self._kind = None

    def forget_session(self) -> None:
        """A new session: its frames count from 0 again."""
        self._last = None
        self._last_seq = -1

    def websocket_frame(self, data: bytes) -> None:
        """A binary message of the signaling socket: one frame (header, payload)."""
        if self._kind != "websocket":
            return
        frame = unpack(data)
        if frame.codec is Codec.OPUS and self._decoder is None:
            self._decoder = FrameDecoder()
        pcm = pcm_of(frame, self._decoder)  # warm-up frames too: they prime the decoder
        if frame.warm_up or frame.seq <= self._last_seq:
            return  # played already: sent again to warm the decoder up, or replayed
        self._last_seq = frame.seq
        self._last = ("seq", frame.seq)
        frame_id = (frame.seq, frame.utterance_id, frame.index)
        self.sink.play(PlayedFrame(pcm, time.monotonic(), frame_id, len(data)))
        self._on_played()

    def webrtc_frame(self, frame: AudioFrame, receiver: RTCRtpReceiver) -> None:
        """A frame aiortc decoded from `receiver`'s track."""
        if self._kind != "webrtc" or frame.pts is None:
            return
        if self._resampler is None:
            self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        arrival = time.monotonic()
        pcm = b"".join(
            bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH]
            for out in self._resampler.resample(frame)
        )
        self._last = ("rtp_timestamp", (rtp_origin(receiver) + frame.pts) % 2**32)
        self.sink.play(PlayedFrame(pcm, arrival))
        self._on_played()


RECEIVER_TIMESTAMP_MAPPER: Final = "_RTCRtpReceiver__timestamp_mapper"


def rtp_origin(receiver: RTCRtpReceiver) -> int:
    """The first RTP timestamp `receiver` got: aiortc stamps frames relative to it and keeps
    it private; the server speaks absolute timestamps, as browsers report them.
    tests/test_library_internals.py checks that it is still there."""
    mapper = getattr(receiver, RECEIVER_TIMESTAMP_MAPPER)
    return int(mapper._origin or 0)
