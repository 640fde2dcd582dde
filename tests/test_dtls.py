"""One DTLS identity per process (transports/dtls.py): every peer the server makes answers with
the same certificate, from one OpenSSL context that keeps no session cache, renewed before it
expires; listeners connect and hear it as before."""

import asyncio
import datetime
import re

import aiortc.rtcpeerconnection
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from tests.test_webrtc import ListSource, real_options
from voice_rtc.clock import Ticker
from voice_rtc.transports.dtls import RENEW_BEFORE, SharedCertificate, share_one_certificate
from voice_rtc.transports.webrtc import Silence, WebRTCPeer, use_host_addresses

FINGERPRINT = re.compile(r"^a=fingerprint:sha-256 (\S+)", re.MULTILINE)


async def test_every_peer_answers_with_one_certificate_and_listeners_still_hear_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_host_addresses(["127.0.0.1"])
    # The listeners' own certificates are made before the server's peers share one.
    listeners = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    # share_one_certificate() is process-wide: undone when the test ends.
    monkeypatch.setattr(aiortc.rtcpeerconnection, "RTCCertificate", aiortc.RTCCertificate)
    monkeypatch.setattr(SharedCertificate, "_current", None)
    share_one_certificate()
    options = real_options(Silence.PACKET)
    ticker = Ticker()
    ticker.start()
    peers = [WebRTCPeer(ListSource([]), ticker, options) for _ in listeners]
    try:
        answers = []
        for listener, peer in zip(listeners, peers, strict=True):
            listener.addTransceiver("audio", direction="recvonly")
            await listener.setLocalDescription(await listener.createOffer())
            answer = await peer.answer(listener.localDescription.sdp)
            await listener.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            answers.append(answer)
        ours = {FINGERPRINT.findall(answer)[0] for answer in answers}
        theirs = {FINGERPRINT.findall(pc.localDescription.sdp)[0] for pc in listeners}
        assert len(ours) == 1 and not ours & theirs
        # A packet every 20 ms, decrypted with keys from the shared identity's handshakes.
        for listener in listeners:
            assert await packets_received(listener, at_least=25, within_s=10.0) >= 25
        certificate = SharedCertificate._current
        assert certificate is not None
        (context,) = certificate._contexts.values()  # both connections, one context
        assert context.get_session_cache_mode() == SSL.SESS_CACHE_OFF  # nothing piles up
    finally:
        for listener in listeners:
            await listener.close()
        for peer in peers:
            await peer.close()
        await ticker.stop()


async def packets_received(listener: RTCPeerConnection, at_least: int, within_s: float) -> int:
    """RTP packets the listener has received, once `at_least` (or the time is up)."""
    received = 0
    for _ in range(int(within_s / 0.1)):
        stats = await listener.getStats()
        received = sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")
        if received >= at_least:
            break
        await asyncio.sleep(0.1)
    return received


def valid_for(days: int) -> SharedCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "voice-rtc test")])
    now = datetime.datetime.now(tz=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return SharedCertificate(key, certificate)


def test_the_certificate_is_renewed_for_new_peers_before_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh = valid_for(RENEW_BEFORE.days + 10)
    monkeypatch.setattr(SharedCertificate, "_current", fresh)
    assert SharedCertificate.generateCertificate() is fresh
    ageing = valid_for(RENEW_BEFORE.days - 1)
    monkeypatch.setattr(SharedCertificate, "_current", ageing)
    renewed = SharedCertificate.generateCertificate()
    assert renewed is not ageing and renewed.expires > ageing.expires
    assert SharedCertificate.generateCertificate() is renewed
