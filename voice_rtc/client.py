"""A Python voice-rtc client: signaling over the WebSocket, audio over WebRTC (aiortc).

It asks for speech and records what it receives as 22050 Hz mono PCM, with the arrival time of
every frame. Tests, the benchmark and the command line use it:

    python -m voice_rtc.client --url http://127.0.0.1:8080 --text "Hello" --out hello.wav
"""

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import time
import wave
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler

from .audio import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from .transports.webrtc import use_host_addresses

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1


class ServerError(Exception):
    """The server answered a request with an `error` message."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"{body.get('code')}: {body.get('detail') or body.get('message')}")
        self.code: str = body.get("code", "")
        self.body = body


@dataclass
class Recording:
    """What the client heard: PCM at 22050 Hz mono s16le, and when each decoded frame arrived."""

    pcm: bytearray = field(default_factory=bytearray)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() per received frame

    def save_wav(self, path: str) -> None:
        with wave.open(path, "wb") as out:
            out.setnchannels(CHANNELS)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(bytes(self.pcm))


def signaling_url(server_url: str) -> str:
    parts = urlsplit(server_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/ws") else parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


class VoiceClient:
    def __init__(self, server_url: str) -> None:
        self.url = signaling_url(server_url)
        self.recording = Recording()
        self.events: list[dict[str, Any]] = []  # utterance_started / utterance_ended, in order
        self.errors: list[dict[str, Any]] = []  # errors that answered no request
        self.welcome: dict[str, Any] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pc: RTCPeerConnection | None = None
        self._pending: deque[tuple[frozenset[str], asyncio.Future[dict[str, Any]]]] = deque()
        self._event_arrived = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        if _is_loopback(urlsplit(self.url).hostname or ""):
            use_host_addresses(["127.0.0.1"])  # aioice skips loopback by default

    async def connect(self, timeout: float = 10.0) -> None:
        """Open signaling, say hello, negotiate WebRTC and start recording what arrives."""
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url)
        self._tasks.append(asyncio.create_task(self._read(), name="client-signaling"))
        self.welcome = await self.request({"type": "hello", "version": PROTOCOL_VERSION}, "welcome")
        servers = [RTCIceServer(**server) for server in self.welcome.get("ice_servers", [])]

        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        connected = asyncio.Event()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.create_task(self._record(track), name="client-recorder"))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.request({"type": "offer", "sdp": pc.localDescription.sdp}, "answer")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(connected.wait(), timeout)

    async def speak(self, text: str) -> int:
        reply = await self.request({"type": "speak", "text": text}, "queued")
        return int(reply["utterance_id"])

    async def cancel(self) -> None:
        await self.send({"type": "cancel"})

    async def ping(self) -> float:
        """Round-trip time of a heartbeat, in seconds."""
        sent = time.monotonic()
        await self.request({"type": "ping", "ts": sent}, "pong")
        return time.monotonic() - sent

    async def wait_for_event(
        self, type_: str, utterance_id: int, timeout: float = 30.0
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in self.events
                    if e["type"] == type_ and e["utterance_id"] == utterance_id
                ),
                None,
            )

        async with self._event_arrived:
            await asyncio.wait_for(self._event_arrived.wait_for(find), timeout)
        event = find()
        assert event is not None
        return event

    async def say(self, text: str, tail: float = 0.3, timeout: float = 60.0) -> dict[str, Any]:
        """Speak `text`; wait until it has all been sent, then `tail` seconds for it to arrive."""
        utterance_id = await self.speak(text)
        ended = await self.wait_for_event("utterance_ended", utterance_id, timeout)
        await asyncio.sleep(tail)
        return ended

    async def send(self, body: dict[str, Any]) -> None:
        assert self._ws is not None, "connect() first"
        await self._ws.send_json(body)

    async def request(
        self, body: dict[str, Any], reply_type: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send `body`; return the server's `reply_type` answer, or raise ServerError."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((frozenset({reply_type}), future))
        await self.send(body)
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pc is not None:
            await self._pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> "VoiceClient":
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            body = msg.json()
            kind = body.get("type")
            if kind in ("utterance_started", "utterance_ended"):
                async with self._event_arrived:
                    self.events.append(body)
                    self._event_arrived.notify_all()
            elif self._pending and (kind in self._pending[0][0] or kind == "error"):
                _, future = self._pending.popleft()
                if not future.done():
                    if kind == "error":
                        future.set_exception(ServerError(body))
                    else:
                        future.set_result(body)
            elif kind == "error":
                self.errors.append(body)
        for _, future in self._pending:
            if not future.done():
                future.set_exception(ConnectionError("signaling closed"))

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                self.recording.arrivals.append(time.monotonic())
                for out in resampler.resample(frame):
                    self.recording.pcm += bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH]


async def _main(args: argparse.Namespace) -> None:
    async with VoiceClient(args.url) as client:
        ended = await client.say(args.text)
        client.recording.save_wav(args.out)
        seconds = len(client.recording.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)
        print(f"utterance {ended['utterance_id']} {ended['reason']}: {seconds:.2f} s in {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Ask a voice-rtc server to speak; record it.")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's address")
    parser.add_argument("--text", required=True, help="what to say")
    parser.add_argument("--out", default="out.wav", help="WAV file to write what arrived to")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
