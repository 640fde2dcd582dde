"""One DTLS identity per process: a certificate and an OpenSSL context its peers share.

aiortc gives every RTCPeerConnection a key and certificate of its own, and every DTLS
connection a new OpenSSL context made from it: ~21 KB a listener that nothing needs, since a
listener checks only that the certificate matches the fingerprint in our answer. A browser,
too, may serve all its connections from one certificate (RTCPeerConnection's `certificates`).
The shared context also has OpenSSL give back a connection's record buffers while it is idle
(MODE_RELEASE_BUFFERS: ~14 KB a listener; media goes by SRTP, not through them) and keeps no
session cache (no listener resumes a DTLS session; a shared cache would only grow).

The certificate is renewed well before it expires (aiortc's are valid for 30 days); a
connection made with the old one keeps it.
"""

import datetime
from typing import Final, Self

import aiortc.rtcpeerconnection
from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

RENEW_BEFORE: Final = datetime.timedelta(days=7)  # of its expiry: a new one for new peers


class SharedCertificate(RTCCertificate):
    """An `RTCCertificate` that is the same for every peer until it nears its expiry."""

    _current: "SharedCertificate | None" = None

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        super().__init__(key, cert)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}  # by SRTP profiles offered

    @classmethod
    def generateCertificate(cls) -> Self:
        now = datetime.datetime.now(tz=datetime.UTC)
        current = cls._current
        if not isinstance(current, cls) or current.expires - now < RENEW_BEFORE:
            current = super().generateCertificate()
            cls._current = current
        return current

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        key = tuple(profile.openssl_profile for profile in srtp_profiles)
        if key not in self._contexts:
            context = super()._create_ssl_context(srtp_profiles)
            context.set_mode(SSL.MODE_RELEASE_BUFFERS)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            self._contexts[key] = context
        return self._contexts[key]


def share_one_certificate() -> None:
    """From now on, every peer connection of this process takes the shared identity.

    aiortc has no option for it: its RTCPeerConnection generates through the `RTCCertificate`
    its module imported, which this replaces (tests/test_webrtc.py checks that it still does).
    """
    aiortc.rtcpeerconnection.RTCCertificate = SharedCertificate  # type: ignore[attr-defined]
