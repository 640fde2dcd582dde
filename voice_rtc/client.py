"""A Python voice-rtc client: signaling over the WebSocket, audio over WebRTC (aiortc) or over
the WebSocket fallback.

It asks for speech and records what it plays as 22050 Hz mono PCM, with the arrival time of
every frame. It keeps its session through drops: it reconnects with exponential backoff and full
jitter, resumes with its token, tells the server the last thing it played and the last event it
got, and negotiates a new transport. Tests, the benchmark and the command line use it:

    python -m voice_rtc.client --url http://127.0.0.1:8080 --text "Hello" --out hello.wav
"""

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from .audio import SAMPLE_RATE, SAMPLE_WIDTH
from .backoff import backoff_delay
from .client_audio import Listener, Recording
from .transports.webrtc import use_host_addresses

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_HTTP_SCHEME = {"ws:": "http", "wss": "https"}
STABLE_AFTER_S = 10.0  # a connection up this long resets the reconnection attempts
CLOSE_REPLACED = 4001  # the server says another connection took the session over


class ServerError(Exception):
    """The server answered a request with an `error` message."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"{body.get('code')}: {body.get('detail') or body.get('message')}")
        self.code: str = body.get("code", "")
        self.body = body


def signaling_url(server_url: str) -> str:
    parts = urlsplit(server_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/ws") else parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


class _Link:
    """One connection: the signaling socket, its audio transport and the tasks serving them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pc: RTCPeerConnection | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def close(self) -> None:
        # A link's own task (its heartbeat, say) may be the one closing it: it is left to end.
        others = [task for task in self.tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self.pc is not None:
            await self.pc.close()
        await self.ws.close()
        self.closed.set()


class VoiceClient:
    def __init__(
        self,
        server_url: str,
        transport: str = "webrtc",
        codec: str = "pcm_s16le",
        max_attempts: int | None = None,
        relay_only: bool = False,
        token: str | Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        """`relay_only`: use TURN relay candidates only (iceTransportPolicy "relay").
        `token`: the JWT for hello, or a coroutine function giving a fresh one at every
        (re)connection; without one, a dev-mode server's /api/dev-token is asked."""
        self.url = signaling_url(server_url)
        self.relay_only = relay_only
        self.token = token
        self.user_id = f"client-{secrets.token_hex(4)}"  # the dev-mode user, kept on reconnect
        self.transport = transport  # "webrtc" or "websocket"
        self.codec = codec
        self.listener = Listener()
        self.events: list[dict[str, Any]] = []  # utterance events, in order, each once
        self.errors: list[dict[str, Any]] = []  # errors that answered no request
        self.states: list[str] = []  # every state this client went through
        self.on_state: Callable[[str], None] = lambda _state: None
        self.welcome: dict[str, Any] = {}
        self.rtt: float | None = None  # of the last heartbeat, in seconds
        self.reconnects = 0
        self.drain_notice: dict[str, Any] | None = None
        self._max_attempts = max_attempts
        self._http: aiohttp.ClientSession | None = None
        self._link: _Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}  # by id
        self._request_ids = itertools.count(1)
        self._changed = asyncio.Condition()  # notified on events and on state changes
        self._last_event = 0
        self._closing = False
        if _is_loopback(urlsplit(self.url).hostname or ""):
            use_host_addresses(["127.0.0.1"])  # aioice skips loopback by default

    @property
    def recording(self) -> Recording:
        return self.listener.recording

    @property
    def state(self) -> str:
        return self.states[-1] if self.states else "new"

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect (signaling, then audio); afterwards stay connected until close()."""
        self._http = aiohttp.ClientSession()
        await self._set_state("connecting")
        try:
            self._link = await asyncio.wait_for(self._open_link(), timeout)
        except BaseException:
            await self.close()  # nothing left open by a connection that never was
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="client-supervisor")

    async def speak(self, text: str, utterance_id: int | None = None, final: bool = True) -> int:
        """Queue `text`; returns its utterance id. To stream text as it is generated, send the
        first piece with `final=False`, then more with its `utterance_id`, the last `final`."""
        body: dict[str, Any] = {"type": "speak", "text": text, "final": final}
        if utterance_id is not None:
            body["utterance_id"] = utterance_id
        reply = await self.request(body, "queued")
        return int(reply["utterance_id"])

    async def cancel(self) -> None:
        await self.send({"type": "cancel"})

    async def ping(self) -> float:
        """Round-trip time of a heartbeat, in seconds."""
        sent = time.monotonic()
        ping: dict[str, Any] = {"type": "ping", "ts": sent}
        if self.rtt is not None:
            ping["rtt_ms"] = round(self.rtt * 1000, 1)  # for the server's RTT histogram
        await self.request(ping, "pong")
        self.rtt = time.monotonic() - sent
        return self.rtt

    async def wait_for_event(
        self, type_: str, utterance_id: int, timeout: float = 30.0
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for event in self.events:
                if event["type"] == type_ and event["utterance_id"] == utterance_id:
                    return event
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(find), timeout)
        event = find()
        assert event is not None
        return event

    async def wait_for_state(self, state: str, timeout: float = 30.0) -> None:
        """Wait for `state`; "reconnecting" matches any attempt ("reconnecting 2/10")."""

        def reached() -> bool:
            return self.state == state or self.state.startswith(state + " ")

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(reached), timeout)

    async def say(self, text: str, tail: float = 0.3, timeout: float = 60.0) -> dict[str, Any]:
        """Speak `text`; wait until it has all been sent, then `tail` seconds for it to arrive."""
        utterance_id = await self.speak(text)
        ended = await self.wait_for_event("utterance_ended", utterance_id, timeout)
        await asyncio.sleep(tail)
        return ended

    async def drop(self) -> None:
        """Lose the connection as a network failure would; the client then reconnects."""
        if self._link is not None:
            await self._link.close()

    async def switch_transport(self, transport: str, reason: str = "other") -> None:
        """Move the audio to `transport` ("webrtc" or "websocket"), keeping the session;
        `reason` says why, for the server's fallback metrics."""
        link = self._link
        assert link is not None, "connect() first"
        await self._stop_webrtc(link)
        await self._report_position(link)  # the last frame the old transport played
        self.transport = transport
        await self._start_audio(link, reason)

    async def send(self, body: dict[str, Any]) -> None:
        link = self._link
        if link is None or link.ws.closed:
            raise ConnectionError("not connected")
        await link.ws.send_json(body)

    async def request(
        self, body: dict[str, Any], reply_type: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send `body`; return the server's `reply_type` answer, or raise ServerError."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        request_id = next(self._request_ids)
        self._pending[request_id] = (reply_type, future)
        try:
            await self.send({**body, "id": request_id})
            return await asyncio.wait_for(future, timeout)
        finally:
            del self._pending[request_id]

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._link is not None:
            await self._link.close()
        if self._http is not None:
            await self._http.close()
        await self._set_state("closed")

    async def __aenter__(self) -> "VoiceClient":
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _open_link(self) -> _Link:
        """Connect signaling, say hello (resuming if we have a session), start the audio."""
        assert self._http is not None
        link = _Link(await self._http.ws_connect(self.url))
        self._link = link
        link.tasks.append(asyncio.create_task(self._read(link), name="client-signaling"))
        hello: dict[str, Any] = {"type": "hello", "version": PROTOCOL_VERSION}
        token = await self._token()
        if token:
            hello["token"] = token
        if self.welcome:
            hello.update(resume=self.welcome["resume_token"], last_event=self._last_event)
            if self.listener.played:
                hello["position"] = self.listener.played
        try:
            welcome = await self.request(hello, "welcome")
        except ServerError as exc:
            if exc.code != "SESSION_NOT_FOUND":
                raise
            log.warning("session_lost", extra={"detail": str(exc)})
            self._last_event = 0
            del hello["resume"], hello["last_event"]
            hello.pop("position", None)
            welcome = await self.request(hello, "welcome")
        self.welcome = welcome
        link.tasks.append(asyncio.create_task(self._heartbeat(link), name="client-heartbeat"))
        link.tasks.append(asyncio.create_task(self._report_positions(link), name="client-position"))
        await self._start_audio(link)
        await self._set_state("connected")
        return link

    async def _token(self) -> str | None:
        if callable(self.token):
            return await self.token()
        if self.token:
            return self.token
        assert self._http is not None
        base = urlunsplit(urlsplit(self.url)._replace(path="", scheme=_HTTP_SCHEME[self.url[:3]]))
        async with self._http.get(f"{base}/api/dev-token", params={"user": self.user_id}) as reply:
            return str((await reply.json())["token"]) if reply.status == 200 else None

    async def _supervise(self) -> None:
        """Whenever the connection drops, reconnect with backoff until max attempts."""
        attempt = 0
        while True:
            link = self._link
            assert link is not None
            connected_at = time.monotonic()
            await link.closed.wait()
            if self._closing or link.ws.close_code == CLOSE_REPLACED:
                await self._set_state("closed")
                return
            if time.monotonic() - connected_at >= STABLE_AFTER_S:
                attempt = 0
            reconnect = self.welcome["reconnect"]
            max_attempts = self._max_attempts or reconnect["max_attempts"]
            told_to_wait = 0.0  # a rate limit's retry_after_s: not sooner than that
            while True:
                if attempt >= max_attempts:
                    await self._set_state("failed")
                    return
                attempt += 1
                await self._set_state(f"reconnecting {attempt}/{max_attempts}")
                base_s, cap_s = reconnect["base_ms"] / 1000, reconnect["cap_ms"] / 1000
                await asyncio.sleep(max(told_to_wait, backoff_delay(attempt - 1, base_s, cap_s)))
                try:
                    self._link = await asyncio.wait_for(self._open_link(), 15)
                    self.reconnects += 1
                    break
                except (OSError, aiohttp.ClientError, TimeoutError, ServerError) as exc:
                    log.info("reconnect_failed", extra={"attempt": attempt, "error": repr(exc)})
                    if isinstance(exc, ServerError):
                        told_to_wait = float(exc.body.get("retry_after_s", 0))
                    if self._link is not None:
                        await self._link.close()

    async def _start_audio(self, link: _Link, reason: str = "forced") -> None:
        self.listener.new_transport()  # what the old one played was reported (hello, or a switch)
        if self.transport == "websocket":
            request = {"type": "transport", "mode": "websocket", "codec": self.codec}
            request["reason"] = reason
            self.listener.transport_id = (await self.request(request, "transport"))["transport_id"]
            return
        servers = [RTCIceServer(**server) for server in self.welcome.get("ice_servers", [])]
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        pc = link.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)
        )
        connected = asyncio.Event()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            playing = self.listener.play_webrtc(track, receiver, lambda: link.pc is pc)
            link.tasks.append(asyncio.create_task(playing, name="client-recorder"))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState == "failed" and link.pc is pc:
                await link.close()  # reconnect from scratch

        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        if self.relay_only and " typ relay" not in pc.localDescription.sdp:
            # aiortc never starts ICE without a candidate: say why now, not after a timeout.
            raise ConnectionError("no TURN relay candidate: check the TURN server and credentials")
        answer = await self.request({"type": "offer", "sdp": pc.localDescription.sdp}, "answer")
        self.listener.transport_id = answer["transport_id"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(connected.wait(), 10)

    async def _stop_webrtc(self, link: _Link) -> None:
        pc, link.pc = link.pc, None
        if pc is not None:
            await pc.close()

    async def _read(self, link: _Link) -> None:
        try:
            async for msg in link.ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self.listener.play_websocket_frame(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await self._handle(msg.json())
        finally:
            for _, future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("signaling closed"))
            link.closed.set()

    async def _handle(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind == "drain":
            self.drain_notice = body  # the server is going: it will close, and we reconnect
            return
        if kind in ("utterance_started", "utterance_ended"):
            async with self._changed:
                if body["event_id"] > self._last_event:
                    self._last_event = body["event_id"]
                    self.events.append(body)
                    self._changed.notify_all()
            return
        reply_type, future = self._pending.get(body.get("id", -1), ("", None))
        if future is not None and not future.done() and kind in (reply_type, "error"):
            if kind == "error":
                future.set_exception(ServerError(body))
            else:
                future.set_result(body)
        elif kind == "error":
            self.errors.append(body)

    async def _report_positions(self, link: _Link) -> None:
        interval = self.welcome["position_interval_ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            await self._report_position(link)

    async def _report_position(self, link: _Link) -> None:
        if self.listener.played and not link.ws.closed:
            with contextlib.suppress(ConnectionError):
                await link.ws.send_json({"type": "position", **self.listener.played})

    async def _heartbeat(self, link: _Link) -> None:
        interval = self.welcome["heartbeat"]["interval_ms"] / 1000
        timeout = self.welcome["heartbeat"]["timeout_ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.ping(), timeout)
            except (TimeoutError, ConnectionError):
                log.info("heartbeat_missed")
                await link.close()  # the server is unreachable: reconnect
                return

    async def _set_state(self, state: str) -> None:
        if self.state == state:
            return
        self.states.append(state)
        self.on_state(state)
        async with self._changed:
            self._changed.notify_all()


async def _main(args: argparse.Namespace) -> None:
    async with VoiceClient(args.url, transport=args.transport) as client:
        ended = await client.say(args.text)
        client.recording.save_wav(args.out)
        seconds = len(client.recording.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)
        print(f"utterance {ended['utterance_id']} {ended['reason']}: {seconds:.2f} s in {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Ask a voice-rtc server to speak; record it.")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's address")
    parser.add_argument("--text", required=True, help="what to say")
    parser.add_argument("--out", default="out.wav", help="WAV file to write what arrived to")
    parser.add_argument("--transport", choices=("webrtc", "websocket"), default="webrtc")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
