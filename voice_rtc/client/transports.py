"""The two ways speech reaches a Python client, each negotiated on a signaling connection:
WebRTC (an aiortc peer connection; aiortc decodes the Opus) and the WebSocket fallback (binary
frames on the signaling socket itself, decoded by playback.py)."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .events import FallbackReason
from .playback import Playback
from .signaling import Signaling

WebSocketCodec = Literal["opus", "pcm_s16le", "mulaw"]
WEBRTC_CONNECT_TIMEOUT_S: Final = 10.0


class WebRTCAudio:
    """Speech over WebRTC: one peer connection, receive-only, its track played."""

    kind: Final = "webrtc"

    def __init__(
        self,
        playback: Playback,
        ice_servers: list[dict[str, Any]],
        relay_only: bool,
        on_failed: Callable[[], Awaitable[None]],
    ) -> None:
        """`relay_only`: TURN relay candidates only (iceTransportPolicy "relay"); `on_failed`:
        the peer connection failed after connecting (the client then reconnects)."""
        servers = [RTCIceServer(**server) for server in ice_servers]
        policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        self._playback = playback
        self._relay_only = relay_only
        self._on_failed = on_failed
        self._connected = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._closed = False
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def start(self, signaling: Signaling, _reason: FallbackReason) -> None:
        """Offer (recvonly audio, every candidate in it: aiortc does not trickle), take the
        answer, and return once ICE and DTLS have connected."""
        pc = self.pc
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        if self._relay_only and " typ relay" not in pc.localDescription.sdp:
            # aiortc never starts ICE without a candidate: say why now, not after a timeout.
            raise ConnectionError("no TURN relay candidate: check the TURN server and credentials")
        offer = {"type": "offer", "sdp": pc.localDescription.sdp}
        answer = await signaling.request(offer, "answer")
        self._playback.transport_id = int(answer["transport_id"])
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        async with asyncio.timeout(WEBRTC_CONNECT_TIMEOUT_S):
            await self._connected.wait()

    async def close(self) -> None:
        """Stop playing its track, and close the peer connection."""
        self._closed = True
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
        await self.pc.close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._recorder = asyncio.create_task(self._record(track, receiver), name="client-webrtc")

    async def _record(self, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        with contextlib.suppress(MediaStreamError):
            while not self._closed:
                frame = await track.recv()
                # What a closed peer still delivers was never played.
                if not self._closed and isinstance(frame, AudioFrame):
                    self._playback.webrtc_frame(frame, receiver)

    async def _on_connection_state(self) -> None:
        if self.pc.connectionState == "connected":
            self._connected.set()
        elif self.pc.connectionState == "failed" and not self._closed:
            await self._on_failed()


class WebSocketAudio:
    """Speech over the signaling socket: frames as binary messages (played by Playback)."""

    kind: Final = "websocket"

    def __init__(self, playback: Playback, codec: WebSocketCodec) -> None:
        self._playback = playback
        self._codec = codec

    async def start(self, signaling: Signaling, reason: FallbackReason) -> None:
        """Ask for the audio on the signaling socket; `reason` says why (for the server's
        fallback metrics). Frames follow the reply."""
        request = {"type": "transport", "mode": "websocket", "codec": self._codec, "reason": reason}
        reply = await signaling.request(request, "transport")
        self._playback.transport_id = int(reply["transport_id"])

    async def close(self) -> None:
        """Nothing to release: the next transport replaces it at the server."""


AudioTransport = WebRTCAudio | WebSocketAudio
