"""WebRTC transport: an aiortc peer connection playing a session's frames to one listener.

aiortc's sender pulls `recv()` from our track as fast as it returns; the track waits for each
20 ms deadline of its pacer, so the track sets the pace and aiortc encodes (Opus), packetizes and
sends. RTP, ICE and DTLS handle jitter, loss and NAT from there.
"""

import fractions
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.sdp import SessionDescription
from av import AudioFrame

from .. import metrics
from ..audio import FRAME_SAMPLES, SAMPLE_RATE, SILENT_FRAME
from ..clock import Clock, MonotonicClock, Pacer
from ..playout import Frame

log = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
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
    buffer primed, so speech starts without a glitch.
    """

    def __init__(self, source: FrameSource, clock: Clock | None = None) -> None:
        super().__init__()
        self._source = source
        self._pacer = Pacer(clock or MonotonicClock())
        self._pts = 0
        self.on_frame: Callable[[Frame | None], None] = lambda _frame: None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        lateness_ns = await self._pacer.tick()
        if self.readyState != "live":
            raise MediaStreamError
        frame = self._source.next_frame()
        audio = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        audio.planes[0].update(frame.pcm if frame else SILENT_FRAME)
        audio.sample_rate = SAMPLE_RATE
        audio.time_base = TIME_BASE
        audio.pts = self._pts
        self._pts += FRAME_SAMPLES
        metrics.PACING_LATENESS.observe(lateness_ns / 1e9)
        metrics.FRAMES_SENT.labels("webrtc", "speech" if frame else "silence").inc()
        self.on_frame(frame)
        return audio


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
    """One peer connection sending a session's audio. Created per offer; closed by its owner."""

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
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:
            raise InvalidOffer(f"the offer was refused: {exc}") from None
        await self._inbound.start()  # tracks the offer sends arrive during setRemoteDescription
        self._pc.addTrack(self.track)
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return str(self._pc.localDescription.sdp)

    async def close(self) -> None:
        self.track.stop()
        await self._inbound.stop()
        await self._pc.close()
