"""One lean load client: a session over the signaling subset, its audio counted, not played.

Over WebRTC it is a real aiortc peer (ICE, consent checks, DTLS, the SRTP session, RTCP), but
the receiver's whole RTP path is bypassed: the UDP socket's callback reads each SRTP packet's
header (seq, timestamp: SRTP encrypts only the payload) and logs it with the kernel's receive
timestamp; no queue, no task, no decryption, no jitter buffer, no decoder. (aioice and aiortc
cost ~50-100 us a packet on that path, which would make the clients, not the server, the
bottleneck.) Over the WebSocket it logs each binary message from the raw socket's callback,
with the time it was read. Nothing is decoded but what time to first audio needs (a probe's
packets after its `speak`, until one is audible) and, in the `record` role (the quality
check), the whole track.

Roles: `speaking` (asks for the load's speech once connected), `silent` (only listens),
`probe` (speaks short utterances one after another, timing each to its first audible packet),
`record` (decodes and keeps what it hears, at 16 kHz for PESQ).
"""

import asyncio
import contextlib
import fcntl
import secrets
import struct
import time
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler

from ..transports.websocket import HEADER
from .audible import AudibleDetector
from .packets import PacketLog
from .signaling import Refused, Signaling

Role = Literal["speaking", "silent", "probe", "record"]
RTP_RATE = 48000
_RTP_SEQ_TS = struct.Struct("!HI")
_WS_SEQ = struct.Struct("!I")
RECORD_RATE = 16000  # what PESQ wide-band scores
SIOCGSTAMPNS = 0x8907  # Linux: the receive timestamp of the last packet read, a timespec
_TIMESPEC = struct.Struct("qq")
_TIMESPEC_BUFFER = bytes(_TIMESPEC.size)
_REALTIME_AHEAD = time.time() - time.monotonic()  # kernel stamps are on the realtime clock


def kernel_arrival(fd: int) -> float:
    """When the kernel received the last datagram read from socket `fd` (SIOCGSTAMPNS), on the
    monotonic clock: a client that was busy or descheduled does not make packets look late."""
    seconds, nanoseconds = _TIMESPEC.unpack(fcntl.ioctl(fd, SIOCGSTAMPNS, _TIMESPEC_BUFFER))
    return float(seconds + nanoseconds / 1e9 - _REALTIME_AHEAD)


def http_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def ws_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/ws", "", ""))


def choose_codec(wanted: str, offered: list[str]) -> str:
    """`auto`: Opus when the server offers it on the WebSocket, else PCM."""
    if wanted != "auto":
        return wanted
    return "opus" if "opus" in offered else "pcm_s16le"


class LeanListener:
    def __init__(self, url: str, transport: str, codec: str, role: Role) -> None:
        self.url = url
        self.transport = transport
        self.wanted_codec = codec
        self.codec = ""  # what the server agreed to (WebSocket), "opus" for WebRTC
        self.role = role
        self.user = f"bench-{secrets.token_hex(5)}"
        self.log = (
            PacketLog(RTP_RATE, media_wrap=2**32, seq_wrap=2**16)
            if transport == "webrtc"
            else PacketLog(1000 / 20)
        )
        self.ttfa: list[tuple[float, float]] = []  # (when speak was sent, seconds to audio)
        self.recorded = bytearray()  # role `record`: s16 mono at RECORD_RATE
        self.dropped = False  # the server closed the signaling socket during the run
        self.welcome: dict[str, Any] = {}
        self._signaling: Signaling | None = None
        self._pc: RTCPeerConnection | None = None
        self._transport_id = 0
        self._last_media: int | None = None
        self._reported_media: int | None = None
        self._detector: AudibleDetector | None = None
        self._heard: asyncio.Future[float] | None = None
        self._ended: dict[int, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_ping = 0.0
        self._srtp_tag = 16  # bytes of SRTP authentication tag, by the profile negotiated

    # --- connecting -------------------------------------------------------------------------

    async def connect(self, http: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        await asyncio.wait_for(self._connect(http), timeout)

    async def _connect(self, http: aiohttp.ClientSession) -> None:
        token = await self._token(http)
        signaling = self._signaling = await Signaling.connect(ws_url(self.url))
        signaling.on_event = self._on_event
        signaling.ws.closed.add_done_callback(lambda _closed: self._on_closed(signaling))
        self.welcome = await signaling.hello(token)
        self._next_ping = time.monotonic() + self._ping_interval()
        if self.transport == "websocket":
            codec = choose_codec(self.wanted_codec, list(self.welcome.get("codecs", [])))
            signaling.ws.on_binary = self._on_frame
            request = {"type": "transport", "mode": "websocket", "codec": codec}
            reply = await signaling.request({**request, "reason": "forced"}, "transport")
            self.codec, self._transport_id = reply["codec"], int(reply["transport_id"])
        else:
            self.codec = "opus"
            await self._negotiate_webrtc(signaling)

    async def _token(self, http: aiohttp.ClientSession) -> str | None:
        url = http_base(self.url) + "/api/dev-token"
        async with http.get(url, params={"user": self.user}) as reply:
            return str((await reply.json())["token"]) if reply.status == 200 else None

    async def _negotiate_webrtc(self, signaling: Signaling) -> None:
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        transceiver = pc.addTransceiver("audio", direction="recvonly")
        dtls: Any = transceiver.receiver.transport  # the peer's one (bundled) DTLS transport
        if self.role == "record":

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                self._tasks.append(asyncio.create_task(self._record(track)))

        else:
            # A probe's packets are decrypted (it decodes some): they all come here, and stop.
            dtls._handle_rtp_data = self._on_rtp
        await pc.setLocalDescription(await pc.createOffer())
        answer = await signaling.request(
            {"type": "offer", "sdp": pc.localDescription.sdp}, "answer"
        )
        self._transport_id = int(answer["transport_id"])
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await connected.wait()
        profile = dtls._ssl.get_selected_srtp_profile()
        self._srtp_tag = 10 if profile == b"SRTP_AES128_CM_SHA1_80" else 16  # else AES-GCM
        if self.role in ("speaking", "silent"):
            self._count_srtp(dtls.transport._connection._protocols)

    def _count_srtp(self, protocols: list[Any]) -> None:
        """The lean path: SRTP packets are counted from their header, which SRTP leaves in
        the clear, straight from the UDP socket's callback; everything else (STUN, DTLS,
        RTCP) goes on to aioice and aiortc as before. No queue, no task, no decryption."""
        for protocol in protocols:
            forward = protocol.datagram_received
            fd = protocol.transport.get_extra_info("socket").fileno()

            def received(data: bytes, addr: Any, forward: Any = forward, fd: int = fd) -> None:
                if 127 < data[0] < 192 and not 191 < data[1] < 209:  # RTP, not RTCP
                    self._on_srtp(data, kernel_arrival(fd))
                else:
                    forward(data, addr)

            protocol.datagram_received = received

    # --- asking for speech ------------------------------------------------------------------

    async def speak(self, text: str) -> int:
        assert self._signaling is not None
        reply = await self._signaling.request({"type": "speak", "text": text}, "queued")
        return int(reply["utterance_id"])

    async def time_to_audio(self, text: str, timeout: float = 15.0) -> float:
        """Speak `text`; seconds from sending the request to the first audible packet. Returns
        once the utterance has ended, so the next one does not queue behind it."""
        loop = asyncio.get_running_loop()
        self._detector = AudibleDetector(self.codec)
        heard: asyncio.Future[float] = loop.create_future()
        self._heard = heard
        sent = time.monotonic()
        try:
            utterance_id = await self.speak(text)
            ended = self._ended.setdefault(utterance_id, loop.create_future())
            arrived: float = await asyncio.wait_for(heard, timeout)
            await asyncio.wait_for(ended, timeout)
        finally:
            self._detector, self._heard = None, None
            self._ended.clear()
        self.ttfa.append((sent, arrived - sent))
        return arrived - sent

    async def probe(self, text: str, pause_s: float) -> None:
        """Time utterance after utterance until cancelled; a failed one is skipped."""
        while True:
            with contextlib.suppress(TimeoutError, Refused):
                await self.time_to_audio(text)
            await asyncio.sleep(pause_s)

    # --- keeping the session alive, as a real listener does --------------------------------

    def keepalive(self, now: float, positions: bool = True) -> None:
        """Report the last packet received as played (what a listener with no buffer would
        say), and ping when due. Called for every listener from one task per worker."""
        signaling = self._signaling
        if signaling is None or self.dropped:
            return
        try:
            if positions and self._last_media not in (None, self._reported_media):
                key = "rtp_timestamp" if self.transport == "webrtc" else "seq"
                signaling.send(
                    {
                        "type": "position",
                        "transport_id": self._transport_id,
                        key: self._last_media,
                    }
                )
                self._reported_media = self._last_media
            if now >= self._next_ping:
                signaling.send({"type": "ping", "ts": now})
                self._next_ping = now + self._ping_interval()
        except ConnectionError:
            self.dropped = True

    def position_interval(self) -> float:
        return float(self.welcome.get("position_interval_ms", 250)) / 1000

    def _ping_interval(self) -> float:
        return float(self.welcome.get("heartbeat", {}).get("interval_ms", 10000)) / 1000

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pc is not None:
            await self._pc.close()
        signaling, self._signaling = self._signaling, None  # its closing is no drop
        if signaling is not None:
            await signaling.close()

    # --- the packets --------------------------------------------------------------------------

    def _on_srtp(self, data: bytes, at: float) -> None:
        first = data[0]
        seq, timestamp = _RTP_SEQ_TS.unpack_from(data, 2)
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
            start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
        self.log.add(at, timestamp, seq, len(data) - start - self._srtp_tag, len(data))
        self._last_media = timestamp

    async def _on_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        """A decrypted RTP packet (probes): logged as it was on the wire, checked if armed."""
        at = time.monotonic()
        first = data[0]
        seq, timestamp = _RTP_SEQ_TS.unpack_from(data, 2)
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
        end = len(data) - (data[-1] if first & 0x20 else 0)
        self.log.add(at, timestamp, seq, end - start, len(data) + self._srtp_tag)
        self._last_media = timestamp
        if self._detector is not None:
            self._check(data[start:end], at)

    def _on_frame(self, data: bytes, at: float) -> None:
        seq = _WS_SEQ.unpack_from(data, 2)[0]
        size = len(data)
        # The WebSocket frame header a server sends: 2 bytes, 4 from 126 bytes of payload on.
        self.log.add(at, seq, seq, size - HEADER.size, size + (2 if size < 126 else 4))
        self._last_media = seq
        if self._detector is not None:
            self._check(data[HEADER.size :], at)

    def _check(self, payload: bytes, at: float) -> None:
        assert self._detector is not None
        if self._heard is not None and not self._heard.done() and self._detector.audible(payload):
            self._heard.set_result(at)
            self._detector = None

    def _on_event(self, body: dict[str, Any]) -> None:
        if body.get("type") == "utterance_ended" and self._heard is not None:
            # It may come before the coroutine that asked for it has read the reply.
            loop = asyncio.get_running_loop()
            future = self._ended.setdefault(int(body.get("utterance_id", -1)), loop.create_future())
            if not future.done():
                future.set_result(None)

    def _on_closed(self, signaling: Signaling) -> None:
        if signaling is self._signaling:  # the server's doing, not our close()
            self.dropped = True

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=RECORD_RATE)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                for out in resampler.resample(frame):
                    pcm = bytes(out.planes[0])[: out.samples * 2]
                    self.recorded += pcm
                    if self._heard is not None and not self._heard.done():
                        if AudibleDetector("pcm_s16le").audible(pcm):
                            self._heard.set_result(time.monotonic())
