"""What a Python client hears: the recording, and the last thing it played, over either transport.

"Played" is what the client reports to the server so that a new transport resumes at the first
frame it has not heard: the seq of the last WebSocket frame, or the RTP timestamp of the last
WebRTC packet decoded (absolute, as browsers report it), each with the transport's id.
"""

import contextlib
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler

from .audio import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from .opus import FrameDecoder
from .transports.websocket import Codec, pcm_of, unpack


@dataclass
class Recording:
    """What the client played: PCM at 22050 Hz mono s16le, and when each frame arrived."""

    pcm: bytearray = field(default_factory=bytearray)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() per received frame
    # WebSocket frames name themselves: (seq, utterance id, frame index) of each, in order.
    frame_ids: list[tuple[int, int, int]] = field(default_factory=list)
    wire_bytes: int = 0  # bytes of WebSocket audio messages received

    def save_wav(self, path: str) -> None:
        with wave.open(path, "wb") as out:
            out.setnchannels(CHANNELS)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(bytes(self.pcm))


class Listener:
    def __init__(self) -> None:
        self.recording = Recording()
        self.transport_id = 0  # the transport now playing, as the server named it
        self.played: dict[str, int] = {}  # the position to report; empty until something plays
        self._decoder: FrameDecoder | None = None  # for an Opus WebSocket stream
        self.last_seq = -1  # of the last WebSocket frame played

    def new_transport(self) -> None:
        """What the old transport played has been reported: positions are the next one's."""
        self.played = {}
        self._decoder = None

    def play_websocket_frame(self, data: bytes) -> None:
        frame = unpack(data)
        if frame.codec is Codec.OPUS and self._decoder is None:
            self._decoder = FrameDecoder()
        pcm = pcm_of(frame, self._decoder)
        if frame.warm_up or frame.seq <= self.last_seq:
            return  # played already: sent again to warm the decoder up, or replayed
        self.last_seq = frame.seq
        self.recording.arrivals.append(time.monotonic())
        self.recording.pcm += pcm
        self.recording.frame_ids.append((frame.seq, frame.utterance_id, frame.index))
        self.recording.wire_bytes += len(data)
        self.played = {"transport_id": self.transport_id, "seq": frame.seq}

    async def play_webrtc(
        self, track: MediaStreamTrack, receiver: RTCRtpReceiver, current: Callable[[], bool]
    ) -> None:
        """Record `track` until it ends, or until `current()` says its peer was replaced (what
        a replaced peer still delivers was never played)."""
        resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not current():
                    return
                assert isinstance(frame, AudioFrame) and frame.pts is not None
                self.recording.arrivals.append(time.monotonic())
                for out in resampler.resample(frame):
                    self.recording.pcm += bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH]
                rtp_timestamp = (_rtp_origin(receiver) + frame.pts) % 2**32
                self.played = {"transport_id": self.transport_id, "rtp_timestamp": rtp_timestamp}


RECEIVER_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"


def _rtp_origin(receiver: RTCRtpReceiver) -> int:
    # aiortc hands out frames stamped relative to the first RTP timestamp it received, and keeps
    # that origin private; the server speaks absolute RTP timestamps, as browsers report them.
    # tests/test_library_internals.py checks that it is still there.
    mapper = getattr(receiver, RECEIVER_TIMESTAMP_MAPPER)
    return int(mapper._origin or 0)
