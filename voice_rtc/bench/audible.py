"""Is this packet audible? Decoding only for the question time to first audio asks.

Load clients never decode; a probe decodes the packets that follow its `speak` until one holds
sound above AUDIBLE_PEAK (about -40 dBFS), and then stops.
"""

import av
import numpy as np

from ..audio import mulaw_decode

AUDIBLE_PEAK = 0.01  # of full scale
OPUS_RATE = 48000


class AudibleDetector:
    """Decodes payloads of one codec ("opus", "pcm_s16le", "mulaw") and says whether any holds
    sound. One per utterance: a fresh Opus decoder needs no history to decode a packet."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._opus: av.AudioCodecContext | None = None
        if codec == "opus":
            self._opus = av.CodecContext.create("opus", "r")
            self._opus.sample_rate = OPUS_RATE
            self._opus.layout = "mono"
        elif codec not in ("pcm_s16le", "mulaw"):
            raise ValueError(f"no decoder for {codec!r}")

    def audible(self, payload: bytes) -> bool:
        if self._opus is not None:
            if not payload:
                return False
            try:
                frames = self._opus.decode(av.Packet(payload))
            except av.error.FFmpegError:
                return False
            return any(float(np.abs(f.to_ndarray()).max()) > AUDIBLE_PEAK for f in frames)
        pcm = mulaw_decode(payload) if self.codec == "mulaw" else payload
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        return bool(samples.size) and int(np.abs(samples.astype(np.int32)).max()) > (
            AUDIBLE_PEAK * 32768
        )
