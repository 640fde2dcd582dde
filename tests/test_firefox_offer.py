"""Firefox's offers, as the server answers them. With its default settings Firefox hides every
host candidate behind an mDNS name and ends the list with `a=end-of-candidates`; the server drops
the mDNS candidates (it cannot resolve them), and aioice, told then that the listener has no
candidate at all, prunes the component and gathers none of its own: the answer has no candidate,
and ICE never starts (seen in Firefox ESR 153, on loopback and across a veth alike). The browser
library leaves `a=end-of-candidates` out of its offers (client/webrtc-audio.js), and the server
drops it with the candidates it drops, so neither depends on the other (tests/test_firefox.py
runs the real browser)."""

import re

from aiortc import RTCConfiguration, RTCPeerConnection

from tests.test_webrtc import real_options
from voice_rtc.clock import Ticker
from voice_rtc.transports.webrtc import WebRTCPeer, use_host_addresses

_HOST_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host.*)$", re.M)


async def firefox_like_offer(end_of_candidates: bool) -> str:
    """A recvonly offer whose host candidates are mDNS names, as Firefox's are by default."""
    listener = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        listener.addTransceiver("audio", direction="recvonly")
        await listener.setLocalDescription(await listener.createOffer())
        sdp = str(listener.localDescription.sdp)
    finally:
        await listener.close()
    sdp = _HOST_CANDIDATE.sub(r"\g<1>0b6b1d8e-3c1f-4e0a-9d41-6f1e2a3b4c5d.local\g<3>", sdp)
    sdp = re.sub(r"^a=end-of-candidates\r\n", "", sdp, flags=re.M)
    if end_of_candidates:
        sdp = sdp.replace("a=ice-ufrag", "a=end-of-candidates\r\na=ice-ufrag", 1)
    assert ".local" in sdp
    return sdp


async def answer_candidates(offer: str) -> list[str]:
    use_host_addresses(["127.0.0.1"])
    options = real_options()
    ticker = Ticker()
    ticker.start()
    peer = WebRTCPeer(_NoFrames(), ticker, options)
    try:
        answer = await peer.answer(offer)
    finally:
        await peer.close()
        await ticker.stop()
    return [line for line in answer.splitlines() if line.startswith("a=candidate")]


class _NoFrames:
    idle = True

    def next_frame(self) -> None:
        return None


async def test_an_mdns_only_offer_as_the_library_sends_it_is_answered_with_candidates() -> None:
    assert await answer_candidates(await firefox_like_offer(end_of_candidates=False))


async def test_an_mdns_only_offer_with_end_of_candidates_is_answered_with_candidates() -> None:
    assert await answer_candidates(await firefox_like_offer(end_of_candidates=True))
