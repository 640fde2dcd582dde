"""WebRTC transport: an aiortc peer connection playing a session's frames to one listener.

aiortc's sender pulls `recv()` from our track as fast as it returns; the track waits for each
20 ms deadline of its pacer, so the track sets the pace and aiortc encodes (Opus), packetizes and
sends. RTP, ICE and DTLS handle jitter, loss and NAT from there.
"""

import bisect
import fractions
import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.sdp import SessionDescription
from av import AudioFrame

from .. import metrics
from ..audio import FRAME_SAMPLES, SAMPLE_RATE, SILENT_FRAME
from ..clock import Clock, MonotonicClock, Pacer
from ..playout import Frame
from ..session import PlayedPosition

log = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
RTP_TICKS_PER_FRAME = 960  # Opus RTP runs at 48 kHz whatever the audio's rate
_all_host_addresses = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer exactly these IPs as ICE host candidates (None: every interface but loopback).

    aioice has no option for this and skips 127.0.0.1, which a loopback deployment (and every
    test) needs; pods and multi-homed hosts need to choose too. Process-wide, like aioice's.
    """
    if addresses is None:
        aioice.ice.get_host_addresses = _all_host_addresses
    else:
        chosen = list(addresses)
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [
            a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
        ]


def ice_configuration(
    urls: Sequence[str], username: str = "", credential: str = ""
) -> RTCConfiguration:
    """ICE servers from settings only: an empty list, never aiortc's public STUN default."""
    servers = [
        RTCIceServer(urls=url, username=username or None, credential=credential or None)
        for url in urls
    ]
    return RTCConfiguration(iceServers=servers)


class FrameSource(Protocol):
    def next_frame(self) -> Frame | None: ...


class InvalidOffer(ValueError):
    pass


class PlayoutTrack(AudioStreamTrack):
    """Returns the source's next frame at each 20 ms deadline; silence when nothing is queued.

    Silence keeps the RTP stream live, which keeps NAT bindings open and the listener's jitter
    buffer primed, so speech starts without a glitch. The track remembers which speech frame it
    sent as its n-th frame, so a listener's played RTP timestamp can be turned into a frame seq.
    """

    def __init__(self, source: FrameSource, clock: Clock | None = None, memory: int = 600) -> None:
        super().__init__()
        self._source = source
        self._pacer = Pacer(clock or MonotonicClock())
        self._index = 0  # frames returned so far
        self._sent_indexes: deque[int] = deque(maxlen=memory)  # track index of each speech frame
        self._sent_seqs: deque[int] = deque(maxlen=memory)  # ...and its seq
        self._sender: RTCRtpSender | None = None
        self._rtp_origin: int | None = None
        self.on_frame: Callable[[Frame | None], None] = lambda _frame: None

    def bind(self, sender: RTCRtpSender) -> None:
        self._sender = sender

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        lateness_ns = await self._pacer.tick()
        if self.readyState != "live":
            raise MediaStreamError
        if self._rtp_origin is None:
            self._learn_rtp_origin()
        frame = self._source.next_frame()
        audio = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        audio.planes[0].update(frame.pcm if frame else SILENT_FRAME)
        audio.sample_rate = SAMPLE_RATE
        audio.time_base = TIME_BASE
        audio.pts = self._index * FRAME_SAMPLES
        if frame is not None:
            self._sent_indexes.append(self._index)
            self._sent_seqs.append(frame.seq)
        self._index += 1
        metrics.PACING_LATENESS.observe(lateness_ns / 1e9)
        metrics.FRAMES_SENT.labels("webrtc", "speech" if frame else "silence").inc()
        self.on_frame(frame)
        return audio

    def played_seq(self, rtp_timestamp: int) -> int | None:
        """The last speech frame fully played once the packet with this timestamp has played."""
        if self._rtp_origin is None:
            return None
        packet = ((rtp_timestamp - self._rtp_origin) % 2**32) // RTP_TICKS_PER_FRAME
        # Opus looks ahead 6.5 ms, so packet n ends before frame n does: count frames to n - 1.
        last_played = packet - 1
        i = bisect.bisect_right(self._sent_indexes, last_played)
        return self._sent_seqs[i - 1] if i else None

    def _learn_rtp_origin(self) -> None:
        # aiortc starts RTP timestamps at a random origin it keeps to itself (RTCRtpSender's
        # private __rtp_timestamp is the last one sent). Its Opus resampler holds one frame, so
        # entering recv(n) the packet of frame n - 2, stamped origin + 960 (n - 2), was just sent.
        if self._sender is None or self._index < 2:
            return
        last_sent = getattr(self._sender, "_RTCRtpSender__rtp_timestamp", None)
        if isinstance(last_sent, int):
            self._rtp_origin = (last_sent - RTP_TICKS_PER_FRAME * (self._index - 2)) % 2**32


# A browser hides its host addresses behind random `<uuid>.local` names, which only multicast DNS
# on its own link resolves. A server never can, yet aioice tries for a second before answering;
# connectivity checks from the browser reveal its address anyway (peer-reflexive candidates).
_MDNS_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ \S+\.local \d+ .*\r?\n", re.MULTILINE)


def without_mdns_candidates(sdp: str) -> str:
    return _MDNS_CANDIDATE.sub("", sdp)


def _check_offer(sdp: str, max_bytes: int) -> None:
    if len(sdp.encode()) > max_bytes:
        raise InvalidOffer(f"the offer is over {max_bytes} bytes")
    if not sdp.startswith("v=0"):
        raise InvalidOffer("the offer is not SDP (it must start with v=0)")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:
        raise InvalidOffer(f"the offer does not parse ({type(exc).__name__}: {exc})") from None
    receives_audio = any(
        m.kind == "audio" and m.direction in (None, "sendrecv", "recvonly")
        for m in description.media
    )
    if not receives_audio:
        raise InvalidOffer("the offer has no audio section that receives audio")


class WebRTCPeer:
    """One peer connection sending a session's audio: an `AudioTransport`, created per offer."""

    kind = "webrtc"

    def __init__(
        self, source: FrameSource, configuration: RTCConfiguration, max_sdp_bytes: int
    ) -> None:
        self._pc = RTCPeerConnection(configuration)
        self._max_sdp_bytes = max_sdp_bytes
        self.track = PlayoutTrack(source)
        self._inbound = MediaBlackhole()  # unread inbound frames would pile up in memory
        self.on_state: Callable[[str], None] = lambda _state: None

        self._pc.on("track", self._inbound.addTrack)

        @self._pc.on("connectionstatechange")
        def on_state_change() -> None:
            self.on_state(self._pc.connectionState)

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    async def answer(self, offer_sdp: str) -> str:
        """Accept the listener's offer; returns the answer SDP (with every ICE candidate in it)."""
        _check_offer(offer_sdp, self._max_sdp_bytes)
        try:
            offer = RTCSessionDescription(without_mdns_candidates(offer_sdp), "offer")
            await self._pc.setRemoteDescription(offer)
        except Exception as exc:
            raise InvalidOffer(f"the offer was refused: {exc}") from None
        await self._inbound.start()  # tracks the offer sends arrive during setRemoteDescription
        self.track.bind(self._pc.addTrack(self.track))
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return str(self._pc.localDescription.sdp)

    def start(self) -> None:
        pass  # aiortc pulls from the track once the connection is up

    def played_seq(self, position: PlayedPosition) -> int | None:
        if position.rtp_timestamp is None:
            return None
        return self.track.played_seq(position.rtp_timestamp)

    async def close(self) -> None:
        self.track.stop()
        await self._inbound.stop()
        await self._pc.close()
