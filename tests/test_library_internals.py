"""Where voice-rtc reaches inside aiortc and aioice, checked one by one: if an upgrade renames
or reshapes any of it, these fail loudly here, instead of resuming silently starting to lose or
repeat audio. (The versions tested are pinned in constraints.txt; see the README.)"""

import inspect
import selectors
import socket
from pathlib import Path

import aioice.ice
import aiortc.rtcpeerconnection
import av
from aiortc import (
    RTCCertificate,
    RTCPeerConnection,
    RTCRemoteInboundRtpStreamStats,
    RTCRtpReceiver,
    rtcrtpsender,
)
from aiortc.codecs import CODECS, get_encoder
from aiortc.codecs.opus import TIME_BASE as OPUS_PACKING_TIME_BASE
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

from voice_rtc import libopus
from voice_rtc.client.playback import RECEIVER_TIMESTAMP_MAPPER
from voice_rtc.event_loop import CappedEpollSelector, _CappedEpoll
from voice_rtc.opus import RTP_TIME_BASE
from voice_rtc.transports.rtp import keep_no_rtp_history
from voice_rtc.transports.webrtc import RTP_TICKS_PER_FRAME, RTP_TIMESTAMP_ATTRIBUTE


async def test_the_sender_keeps_the_last_rtp_timestamp_where_the_track_reads_it() -> None:
    # PacketTrack learns aiortc's random RTP origin from this name-mangled attribute.
    pc = RTCPeerConnection()
    try:
        sender = pc.addTrack(AudioStreamTrack())
        assert hasattr(sender, RTP_TIMESTAMP_ATTRIBUTE)
    finally:
        await pc.close()


async def test_a_receiver_reports_fraction_lost_is_kept_as_its_8_bit_field() -> None:
    # PacketTrack reads the sender's remote-inbound stats for the listener's loss, and takes
    # fractionLost as RTCP carries it (lost / 256), where WebRTC's stats give a share (0..1).
    pc = RTCPeerConnection()
    try:
        sender = pc.addTrack(AudioStreamTrack())
        lost = RtcpReceiverInfo(
            ssrc=sender._ssrc,
            fraction_lost=64,
            packets_lost=9,
            highest_sequence=99,
            jitter=0,
            lsr=0,
            dlsr=0,
        )
        await sender._handle_rtcp_packet(RtcpRrPacket(ssrc=1, reports=[lost]))
        stats = (await sender.getStats()).values()
        remote = [s for s in stats if isinstance(s, RTCRemoteInboundRtpStreamStats)]
        assert [s.fractionLost for s in remote] == [64]
    finally:
        await pc.close()


def test_a_packets_pts_becomes_its_rtp_timestamp_unchanged() -> None:
    # recv() may return an av.Packet; aiortc's Opus encoder then only packs it, stamping it
    # with its pts (in RTP ticks already): slot n -> 960 n, the exact map played positions need.
    opus = next(c for c in CODECS["audio"] if c.mimeType == "audio/opus")
    encoder = get_encoder(opus)
    packet = av.Packet(b"\x68\x07")
    packet.pts, packet.time_base = 7 * RTP_TICKS_PER_FRAME, RTP_TIME_BASE
    payloads, timestamp = encoder.pack(packet)
    assert payloads == [b"\x68\x07"] and timestamp == 7 * RTP_TICKS_PER_FRAME
    assert RTP_TIME_BASE == OPUS_PACKING_TIME_BASE  # so it converts nothing (no Fractions)


def test_aioices_host_address_hook_is_still_what_it_replaces() -> None:
    # use_host_addresses() swaps this function out: same name, same parameters.
    parameters = list(inspect.signature(aioice.ice.get_host_addresses).parameters)
    assert parameters == ["use_ipv4", "use_ipv6"]


async def test_the_receivers_timestamp_origin_is_where_the_python_client_reads_it() -> None:
    # The Python client reports absolute RTP timestamps, as browsers do, from this origin.
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        receiver: RTCRtpReceiver = transceiver.receiver
        mapper = getattr(receiver, RECEIVER_TIMESTAMP_MAPPER)
        assert hasattr(mapper, "_origin")
    finally:
        await pc.close()


def test_the_event_loops_epoll_is_where_the_server_caps_it() -> None:
    # voice_rtc.event_loop wraps selectors.EpollSelector's private epoll object.
    selector = CappedEpollSelector(cap=2)
    try:
        assert isinstance(selector._selector, _CappedEpoll)
        readers = [socket.socketpair() for _ in range(5)]
        for a, b in readers:
            b.send(b"x")
            selector.register(a, selectors.EVENT_READ)
        assert len(selector.select(0)) == 2  # five are ready; two a turn
        for a, b in readers:
            a.close()
            b.close()
    finally:
        selector.close()


def test_the_libopus_we_call_is_the_copy_pyav_ships() -> None:
    """`voice_rtc.libopus` loads the libopus inside PyAV's wheel (so a server needs no system
    package for it); if the wheel's layout changed, it would fall back to the system's."""
    path = Path(libopus.library()._name)
    assert path.parent.name == "av.libs", path
    assert libopus.Encoder(16000).lookahead == 104  # the delay voice_rtc.opus pads with (6.5 ms)


def test_aiortc_offers_no_nack_for_audio_so_its_rtp_history_can_go() -> None:
    """The server shrinks the RTP history aiortc's senders keep for NACKs (negotiated for video
    only) to one packet: still the name the sender indexes it by, and still never asked for."""
    assert all(not codec.rtcpFeedback for codec in CODECS["audio"])
    assert "% RTP_HISTORY_SIZE" in inspect.getsource(rtcrtpsender.RTCRtpSender)
    keep_no_rtp_history()
    assert rtcrtpsender.RTP_HISTORY_SIZE == 1


def test_a_peer_connection_still_makes_its_certificate_through_the_name_dtls_replaces() -> None:
    # share_one_certificate() swaps the RTCCertificate rtcpeerconnection imported; the DTLS
    # transport asks that certificate for its context with this signature.
    source = inspect.getsource(aiortc.rtcpeerconnection.RTCPeerConnection.__init__)
    assert "RTCCertificate.generateCertificate()" in source
    assert aiortc.rtcpeerconnection.RTCCertificate is RTCCertificate  # type: ignore[attr-defined]
    parameters = list(inspect.signature(RTCCertificate._create_ssl_context).parameters)
    assert parameters == ["self", "srtp_profiles"]
