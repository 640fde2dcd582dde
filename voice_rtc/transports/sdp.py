"""What the WebRTC transport checks of a listener's SDP offer and changes in it, and in its own
answer: text edits aiortc has no option for."""

import re
from typing import Final

from aiortc.sdp import SessionDescription


class InvalidOffer(ValueError):
    pass


# A browser hides its host addresses behind random `<uuid>.local` names, which only multicast DNS
# on its own link resolves. A server never can, yet aioice tries for a second before answering;
# connectivity checks from the browser reveal its address anyway (peer-reflexive candidates).
_MDNS_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ \S+\.local \d+ .*\r?\n", re.MULTILINE)
_END_OF_CANDIDATES = re.compile(r"^a=end-of-candidates\r?\n", re.MULTILINE)
_OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000/2\r?\n", re.MULTILINE | re.IGNORECASE)
# What our Opus is: mono (sprop-stereo=0), and mono preferred (stereo=0); FEC in-band.
OPUS_FMTP: Final = "stereo=0;sprop-stereo=0;useinbandfec=1"


def without_mdns_candidates(sdp: str) -> str:
    kept, dropped = _MDNS_CANDIDATE.subn("", sdp)
    # "That was every candidate" would then be false: aioice, told the listener has none,
    # prunes the component and gathers none of its own (Firefox ends its list so).
    return _END_OF_CANDIDATES.sub("", kept) if dropped else kept


def with_opus_parameters(sdp: str) -> str:
    """Our answer, saying what our Opus is (aiortc's answer has no fmtp line for it)."""
    return _OPUS_RTPMAP.sub(lambda m: f"{m.group(0)}a=fmtp:{m.group(1)} {OPUS_FMTP}\r\n", sdp)


def check_offer(sdp: str, max_bytes: int) -> None:
    """Refuse, with a reason a client can act on, an offer we cannot or should not answer."""
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
    for media in description.media:
        # Without these, aiortc would answer and then fail in a task of its own, later.
        if media.dtls is None or not media.dtls.fingerprints:
            raise InvalidOffer(f"the {media.kind} section has no DTLS fingerprint")
        if media.ice is None or not (media.ice.usernameFragment and media.ice.password):
            raise InvalidOffer(f"the {media.kind} section has no ICE credentials")
