"""WebRTC transport: an aiortc peer connection playing a session's frames to one listener.

The session's frames are Opus packets already (encoded once, as they were synthesized). The
process's one clock (`Ticker`) hands the track each 20 ms slot's packet; aiortc's sender, which
pulls `recv()` in a loop, gets an `av.Packet` and only packs it into RTP: no encoder, no
resampler, no audio-level loop. The packet's pts is the slot's RTP ticks, so its RTP timestamp
is origin + 960 * slot exactly, and a played RTP timestamp names the frame that was played.

Silence costs nothing to make: the slot's packet is a cached silent one (`silence=packet`), or,
with `silence=dtx`, as Opus DTX does: a few silent packets right after speech (the listener's
decoder settles on silence, and a jitter buffer that holds packets back, like aiortc's four, lets
the last of the speech out), then nothing but a one-byte DTX packet every 400 ms. Browsers know
a packet of two bytes or less for DTX: they play comfort silence and do not count the gaps as
losses, so speech after a long silence starts cleanly. Between those packets, while its session
has nothing queued, the track sleeps off the clock: the session wakes it when speech is queued.

Once a second while it sends speech, the track looks for the listener's latest receiver report
(RTCP RR): the share it lost says whether its speech is coded with in-band FEC (`voice_rtc.fec`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

import aioice.ice
import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRemoteInboundRtpStreamStats,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.stream import Stream

from .. import metrics
from ..clock import Ticker
from ..fec import LinkLoss
from ..opus import RTP_CLOCK_RATE, RTP_TIME_BASE, CatchUpEncoder, FrameEncoder
from ..playout import Frame
from ..session import PlayedPosition
from .sdp import InvalidOffer, check_offer, with_opus_parameters, without_mdns_candidates

log = logging.getLogger(__name__)

RTP_TICKS_PER_FRAME: Final = RTP_CLOCK_RATE // 50  # 960: Opus RTP runs at 48 kHz
DTX_KEEPALIVE_SLOTS: Final = 20  # a packet every 400 ms while silent, as Opus DTX sends
DTX_TRAILING_SLOTS: Final = 5  # silent packets right after speech
MAX_DUE: Final = 8  # packets waiting for aiortc's sender; past it the track holds its frames
REPORTS_EVERY_FRAMES: Final = 50  # how often (a second) the track looks for a new receiver report
_all_host_addresses = aioice.ice.get_host_addresses


def dtx_packet(silent_packet: bytes) -> bytes:
    """An Opus packet with no frame data: just the TOC byte of our stream, "nothing to say"."""
    return bytes([silent_packet[0] & 0xFC])  # code 0: one frame (here of zero bytes)


class Silence(StrEnum):
    PACKET = "packet"  # a cached silent packet every 20 ms: a steady stream, like a microphone
    DTX = "dtx"  # discontinuous transmission: next to nothing while there is nothing to say


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

    @property
    def idle(self) -> bool:
        """Nothing to play, nor soon: a stream may sleep until it is woken."""


@dataclass(slots=True)
class _Run:
    """Speech frames sent in consecutive slots with consecutive seqs: slot -> seq is a line."""

    first_slot: int
    first_seq: int
    length: int


@dataclass(frozen=True, slots=True)
class RunStart:
    """A stretch of speech began at this RTP timestamp with this frame: what a listener needs
    to tell which frame (and so which word) it is playing from the RTP timestamp it plays."""

    rtp_timestamp: int
    seq: int
    utterance_id: int
    index: int


class SentFrames:
    """Which speech frame went out in which slot, for the last `memory` runs of them: what
    maps a listener's played RTP timestamp back to a frame. Runs, not a pair per frame, because
    speech comes in long stretches: a few dozen bytes per utterance instead of per frame."""

    def __init__(self, memory: int = 64) -> None:
        self._runs: deque[_Run] = deque(maxlen=memory)

    def add(self, slot: int, seq: int) -> bool:
        """Note a frame sent; True if it starts a new run."""
        last = self._runs[-1] if self._runs else None
        if last and slot == last.first_slot + last.length and seq == last.first_seq + last.length:
            last.length += 1
            return False
        self._runs.append(_Run(slot, seq, 1))
        return True

    def last_seq_at(self, slot: int) -> int | None:
        """The seq of the last speech frame sent in `slot` or before it."""
        i = bisect.bisect_right(self._runs, slot, key=lambda run: run.first_slot)
        if i == 0:
            return None
        run = self._runs[i - 1]
        return run.first_seq + min(slot - run.first_slot, run.length - 1)


class PacketTrack(MediaStreamTrack):
    """An audio track of pre-encoded packets, one per 20 ms slot of the process's clock.

    It joins the clock when aiortc's sender first asks for a packet (the connection is up) and
    leaves it when stopped. Slot n's packet has pts 960 n (the RTP clock's time base): the RTP
    timestamp of slot n is origin + 960 n.
    """

    kind = "audio"

    def __init__(
        self,
        source: FrameSource,
        ticker: Ticker,
        silent_packet: bytes,
        silence: Silence,
        new_stream: Callable[[], FrameEncoder],
        link: LinkLoss | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._link = link
        self._reports_due = 0  # the clock's frame at which to look for a receiver report
        self._last_report: RTCRemoteInboundRtpStreamStats | None = None
        self._catch_up = CatchUpEncoder(new_stream)
        self._ticker = ticker
        self._silent_packet = silent_packet
        self._dtx_packet = dtx_packet(silent_packet)
        self._silence = silence
        self._slot = 0  # slots since the track joined the clock
        self._silent_slots = 0  # since the last speech frame
        self._slept_in: int | None = None  # the clock's frame the track fell asleep in
        self._due: deque[av.Packet[Stream]] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._ticking = False
        self._sender: RTCRtpSender | None = None
        self._last_pts: int | None = None  # of the packet recv() returned last
        self._rtp_origin: int | None = None
        self.sent = SentFrames()
        self._untold: deque[tuple[int, Frame]] = deque(maxlen=16)  # runs begun, slot and frame
        self.on_run_start: Callable[[RunStart], None] = lambda _run: None

    def bind(self, sender: RTCRtpSender) -> None:
        self._sender = sender

    async def recv(self) -> av.Packet[Stream]:
        if self._rtp_origin is None:
            self._learn_rtp_origin()
        if not self._ticking:
            self._ticking = True
            self._ticker.add(self)
        while not self._due:
            if self.readyState != "live":
                raise MediaStreamError
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        if self.readyState != "live":
            raise MediaStreamError
        packet = self._due.popleft()
        self._last_pts = packet.pts
        # Only while speaking: FEC is for speech, and silence (DTX) has too few packets to say.
        speaking = self._silent_slots == 0
        if self._link is not None and speaking and self._ticker.frame >= self._reports_due:
            self._reports_due = self._ticker.frame + REPORTS_EVERY_FRAMES
            await self._read_receiver_report(self._link)
        return packet

    async def _read_receiver_report(self, link: LinkLoss) -> None:
        """Tell `link` the listener's loss if a receiver report (RTCP RR) came since the last
        look: aiortc keeps the latest in the sender's stats. (getStats never waits: this is a
        look at a dict, in the sender's own loop, not another task.)"""
        if self._sender is None:
            return
        for stats in (await self._sender.getStats()).values():
            if isinstance(stats, RTCRemoteInboundRtpStreamStats) and stats is not self._last_report:
                self._last_report = stats  # a new object for each report
                # aiortc gives the report's own field: lost / 256 since the report before.
                link.report(stats.fractionLost / 256, time.monotonic())

    def on_tick(self) -> None:
        if self._slept_in is not None:  # the slots slept through passed, silent
            slept = self._ticker.frame - self._slept_in - 1
            self._slot += slept
            self._silent_slots += slept
            self._slept_in = None
        slot, self._slot = self._slot, self._slot + 1
        if len(self._due) >= MAX_DUE:
            return  # aiortc is not taking packets (a stall): the audio waits, none is lost
        frame = self._source.next_frame()
        if frame is not None:
            self._silent_slots = 0
            if self.sent.add(slot, frame.seq):
                self._untold.append((slot, frame))
                self._tell_runs()
            payload = self._catch_up.packet(frame.packet)
            metrics.COUNTERS.frames["webrtc", "speech"] += 1
        else:
            self._silent_slots += 1
            payload = self._silent_packet
            if self._silence is Silence.DTX and self._silent_slots > DTX_TRAILING_SLOTS:
                since_speech = self._silent_slots - DTX_TRAILING_SLOTS - 1
                if since_speech % DTX_KEEPALIVE_SLOTS:
                    return
                payload = self._dtx_packet  # at once, then every 400 ms
                if self._source.idle:
                    self._slept_in = self._ticker.frame
                    self._ticker.sleep(self, DTX_KEEPALIVE_SLOTS)
            metrics.COUNTERS.frames["webrtc", "silence"] += 1
        metrics.COUNTERS.bytes["webrtc"] += len(payload)
        packet = av.Packet(payload)
        packet.pts = slot * RTP_TICKS_PER_FRAME
        packet.time_base = RTP_TIME_BASE
        self._due.append(packet)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def wake(self) -> None:
        """Speech is coming: take frames from the next tick on, if asleep."""
        self._ticker.wake(self)

    def stop(self) -> None:
        super().stop()
        self._ticker.discard(self)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def played_seq(self, rtp_timestamp: int) -> int | None:
        """The last speech frame played once the packet with this timestamp has played."""
        if self._rtp_origin is None:
            return None
        slot = ((rtp_timestamp - self._rtp_origin) % 2**32) // RTP_TICKS_PER_FRAME
        return self.sent.last_seq_at(slot)

    def _learn_rtp_origin(self) -> None:
        # aiortc stamps a packet origin + pts (in 48 kHz ticks) from a random origin it keeps
        # private; RTCRtpSender's __rtp_timestamp is the stamp of the last packet it sent. Its
        # sender loop sends what recv() returned before calling recv() again, so here that is
        # the packet returned last. Read once; tests/test_webrtc.py checks the attribute exists.
        if self._sender is None or self._last_pts is None:
            return
        last_sent = getattr(self._sender, RTP_TIMESTAMP_ATTRIBUTE, None)
        if isinstance(last_sent, int):
            self._rtp_origin = (last_sent - self._last_pts) % 2**32
            self._tell_runs()

    def _tell_runs(self) -> None:
        """Say where runs of speech began, once the RTP origin is known."""
        if self._rtp_origin is None:
            return
        while self._untold:
            slot, frame = self._untold.popleft()
            rtp = (self._rtp_origin + slot * RTP_TICKS_PER_FRAME) % 2**32
            self.on_run_start(RunStart(rtp, frame.seq, frame.utterance_id, frame.index))


RTP_TIMESTAMP_ATTRIBUTE: Final = "_RTCRtpSender__rtp_timestamp"


@dataclass(frozen=True)
class WebRTCOptions:
    configuration: RTCConfiguration
    max_sdp_bytes: int
    silent_packet: bytes
    silence: Silence
    new_stream: Callable[[], FrameEncoder]  # the speech codec's, for frames kept as PCM


class WebRTCPeer:
    """One peer connection sending a session's audio: an `AudioTransport`, created per offer."""

    kind = "webrtc"
    plays_pcm = False

    def __init__(
        self,
        source: FrameSource,
        ticker: Ticker,
        options: WebRTCOptions,
        link: LinkLoss | None = None,
    ) -> None:
        """`link`: where the listener's receiver reports go (what its speech is coded for)."""
        self._pc = RTCPeerConnection(options.configuration)
        self._max_sdp_bytes = options.max_sdp_bytes
        self.track = PacketTrack(
            source, ticker, options.silent_packet, options.silence, options.new_stream, link
        )
        self.on_state: Callable[[str], None] = lambda _state: None

        @self._pc.on("connectionstatechange")
        def on_state_change() -> None:
            self.on_state(self._pc.connectionState)

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    async def answer(self, offer_sdp: str) -> str:
        """Accept the listener's offer; returns the answer SDP (with every ICE candidate in it)."""
        check_offer(offer_sdp, self._max_sdp_bytes)
        try:
            offer = RTCSessionDescription(without_mdns_candidates(offer_sdp), "offer")
            await self._pc.setRemoteDescription(offer)
        except Exception as exc:
            raise InvalidOffer(f"the offer was refused: {exc}") from None
        try:
            sender = self._pc.addTrack(self.track)
            self.track.bind(sender)
            for transceiver in self._pc.getTransceivers():
                if transceiver.sender is sender:
                    # We only speak: a listener's microphone is refused in the answer, so its
                    # audio is never sent, let alone decoded.
                    transceiver.direction = "sendonly"
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except Exception as exc:  # aiortc finds more wrong with some offers only here
            raise InvalidOffer(f"no answer to this offer: {type(exc).__name__}") from None
        return with_opus_parameters(str(self._pc.localDescription.sdp))

    def start(self) -> None:
        pass  # aiortc pulls from the track once the connection is up

    def wake(self) -> None:
        self.track.wake()

    def played_seq(self, position: PlayedPosition) -> int | None:
        if position.rtp_timestamp is None:
            return None
        return self.track.played_seq(position.rtp_timestamp)

    async def close(self) -> None:
        self.track.stop()
        await self._pc.close()
