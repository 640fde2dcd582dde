"""What the process's aiortc senders put on the wire beyond the audio, and keep for it: for the
whole process (the server's; the benchmark's stock reference keeps aiortc's defaults), like
aioice's host addresses.

- No RTP history: aiortc keeps each sender's last 128 RTP packets to answer NACKs, which it
  negotiates for video only: for our audio senders nobody asks, and the history is ~50 KB a
  session. One will do.
- No MID header extension: aiortc negotiates it for audio and writes it into every packet, 8 of
  the 36 bytes each packet costs beyond its Opus payload (0.4 KB/s a listener). An answer with
  one audio section names its SSRC, by which receivers route its packets without the MID (as
  libwebrtc's own senders stop sending it once the receiver has reported on the stream).
"""

from typing import Final

from aiortc import codecs, rtcrtpsender

MID_EXTENSION: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"


def keep_no_rtp_history() -> None:
    rtcrtpsender.RTP_HISTORY_SIZE = 1  # type: ignore[attr-defined]  # imported from aiortc.rtp


def send_no_mid() -> None:
    audio = codecs.HEADER_EXTENSIONS["audio"]
    codecs.HEADER_EXTENSIONS["audio"] = [e for e in audio if e.uri != MID_EXTENSION]
