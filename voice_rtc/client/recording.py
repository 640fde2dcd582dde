"""A sink that keeps everything a client played, with when each frame arrived: for the command
line's WAV file, for measuring what a listener heard (tests, quality checks), for short-lived
clients. It grows by 44 KB a second of speech: a long-lived app passes a sink of its own."""

import wave
from dataclasses import dataclass, field

from ..audio import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from .playback import FrameId, PlayedFrame


@dataclass
class Recording:
    """What the client played: PCM at 22050 Hz mono s16le, and when each frame arrived."""

    pcm: bytearray = field(default_factory=bytearray)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() per frame
    # WebSocket frames name themselves: (seq, utterance id, frame index) of each, in order.
    frame_ids: list[FrameId] = field(default_factory=list)
    wire_bytes: int = 0  # bytes of WebSocket audio messages received

    def play(self, frame: PlayedFrame) -> None:
        """Keep `frame` (an AudioSink's one method)."""
        self.pcm += frame.pcm
        self.arrivals.append(frame.arrival)
        if frame.frame_id is not None:
            self.frame_ids.append(frame.frame_id)
        self.wire_bytes += frame.wire_bytes

    @property
    def seconds(self) -> float:
        """How much audio it holds."""
        return len(self.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)

    def save_wav(self, path: str) -> None:
        """Write what it holds as a WAV file (22050 Hz, mono, 16 bits)."""
        with wave.open(path, "wb") as out:
            out.setnchannels(CHANNELS)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(bytes(self.pcm))
