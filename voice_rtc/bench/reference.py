"""The reference server: the same job done the plain way, to measure voice-rtc against.

    python -m voice_rtc.bench.reference --port 0 [--tts tone|espeak]

A small aiohttp app speaking the signaling subset the load clients use (hello, offer, transport,
speak, ping, position; welcome, answer, transport, queued, pong, utterance events). Per session:

- WebRTC: a plain aiortc peer whose `AudioStreamTrack` sleeps to each 20 ms deadline
  (t0 + n x 20 ms) and returns an `av.AudioFrame` of 441 samples at 22050 Hz — the tone, the
  speech, or silence — so aiortc's default path does the rest: resampling to 48 kHz, its Opus
  encoder on the default thread pool, the audio-level loop, RTP, SRTP.
- WebSocket: one coroutine sleeping to the same deadlines, `send_bytes` of each speech frame
  (voice-rtc's 14-byte header + the 882 bytes of PCM); silence is not sent.

Speech: with `--tts tone` the tone voice-rtc's tone provider makes (`440hz 3600s`), read from a
one-second table; with `--tts espeak`, eSpeak NG synthesized at most a second ahead. It exports
what the bench reads from voice-rtc's /metrics, in the same names and buckets: the pacing
lateness histogram and the frames sent, counted in plain ints.
"""

import argparse
import asyncio
import bisect
import contextlib
import fractions
import functools
import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import AudioFrame

from ..audio import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, SILENT_FRAME, Reframer
from ..transports.webrtc import use_host_addresses
from ..transports.websocket import FORMAT_VERSION, HEADER, Codec
from ..tts.base import TTSProvider
from ..tts.tone import tone_pcm, tone_spec

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
# voice-rtc's pacing histogram buckets (voice_rtc/metrics.py), so that quantiles compare.
LATENESS_BOUNDS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02),
    *(0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.25, 1.0),
)
AHEAD_FRAMES = 50  # synthesized speech kept ahead of playback: one second
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class Counters:
    """The reference's metrics: a lateness histogram and frame counts, plain ints."""

    def __init__(self) -> None:
        self.lateness = [0] * (len(LATENESS_BOUNDS) + 1)
        self.lateness_sum = 0.0
        self.frames = {(t, k): 0 for t in ("webrtc", "websocket") for k in ("speech", "silence")}

    def tick(self, lateness_s: float, transport: str, speech: bool) -> None:
        self.lateness[bisect.bisect_left(LATENESS_BOUNDS, lateness_s)] += 1
        self.lateness_sum += lateness_s
        self.frames[transport, "speech" if speech else "silence"] += 1

    def exposition(self) -> str:
        name = "voice_rtc_pacing_lateness_seconds"
        lines = [f"# TYPE {name} histogram"]
        total = 0
        for bound, count in zip((*LATENESS_BOUNDS, float("inf")), self.lateness, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{name}_bucket{{le="{le}"}} {total}')
        lines += [f"{name}_count {total}", f"{name}_sum {self.lateness_sum}"]
        frames = "voice_rtc_audio_frames_sent_total"
        lines.append(f"# TYPE {frames} counter")
        for (transport, kind), count in self.frames.items():
            lines.append(f'{frames}{{transport="{transport}",kind="{kind}"}} {count}')
        return "\n".join(lines) + "\n"


class Frame(NamedTuple):
    seq: int
    utterance_id: int
    frame_index: int  # within its utterance
    pcm: bytes


@functools.lru_cache(maxsize=16)
def tone_table(hz: float) -> tuple[bytes, ...]:
    """One second of the tone as 50 frames; a whole-hertz tone loops on it without a click."""
    pcm = tone_pcm(0, SAMPLE_RATE, hz)
    return tuple(pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES))


class Utterance(Protocol):
    id: int

    def next_pcm(self) -> bytes | None: ...

    @property
    def finished(self) -> bool: ...

    def cancel(self) -> None: ...


class ToneUtterance:
    def __init__(self, utterance_id: int, hz: float, seconds: float) -> None:
        self.id = utterance_id
        self._table = tone_table(round(hz))
        self._left = max(1, round(seconds / FRAME_S))
        self._index = 0

    def next_pcm(self) -> bytes | None:
        if self._left == 0:
            return None
        self._left -= 1
        pcm = self._table[self._index % len(self._table)]
        self._index += 1
        return pcm

    @property
    def finished(self) -> bool:
        return self._left == 0

    def cancel(self) -> None:
        self._left = 0


class SpeechUtterance:
    """Synthesized as it plays, at most AHEAD_FRAMES ahead."""

    def __init__(self, utterance_id: int, tts: TTSProvider, text: str) -> None:
        self.id = utterance_id
        self._frames: deque[bytes] = deque()
        self._room = asyncio.Event()
        self._room.set()
        self._synthesized = False
        self._task = asyncio.create_task(self._synthesize(tts, text))

    async def _synthesize(self, tts: TTSProvider, text: str) -> None:
        reframer = Reframer()
        try:
            async for chunk in tts.synthesize(text):
                if not isinstance(chunk, bytes):
                    continue
                for pcm in reframer.push(chunk):
                    await self._room.wait()
                    self._frames.append(pcm)
                    if len(self._frames) >= AHEAD_FRAMES:
                        self._room.clear()
            self._frames.extend(reframer.flush())
        finally:
            self._synthesized = True

    def next_pcm(self) -> bytes | None:
        if not self._frames:
            return None
        pcm = self._frames.popleft()
        self._room.set()
        return pcm

    @property
    def finished(self) -> bool:
        return self._synthesized and not self._frames

    def cancel(self) -> None:
        self._task.cancel()


class Session:
    """What one listener hears: its utterances in order, one frame per call."""

    def __init__(self, ws: web.WebSocketResponse, tts: TTSProvider | None) -> None:
        self._ws = ws
        self._tts = tts
        self._queue: deque[Utterance] = deque()
        self._started: set[int] = set()
        self._next_utterance = 1
        self._seq = 0
        self._index = 0
        self._event_id = 0
        self._sends: set[asyncio.Task[None]] = set()

    def speak(self, text: str) -> int:
        utterance_id = self._next_utterance
        self._next_utterance += 1
        if self._tts is None:
            hz, seconds = tone_spec(text, 440.0)
            self._queue.append(ToneUtterance(utterance_id, hz, seconds))
        else:
            self._queue.append(SpeechUtterance(utterance_id, self._tts, text))
        return utterance_id

    def next_frame(self) -> Frame | None:
        while self._queue:
            head = self._queue[0]
            pcm = head.next_pcm()
            if pcm is not None:
                if head.id not in self._started:
                    self._started.add(head.id)
                    self._index = 0
                    self._event("utterance_started", utterance_id=head.id, seq=self._seq)
                frame = Frame(self._seq, head.id, self._index, pcm)
                self._seq += 1
                self._index += 1
                return frame
            if not head.finished:
                return None  # synthesis is behind
            self._queue.popleft()
            self._started.discard(head.id)
            self._event("utterance_ended", utterance_id=head.id, frames=self._index, reason="done")
        return None

    def close(self) -> None:
        for utterance in self._queue:
            utterance.cancel()
        self._queue.clear()

    def _event(self, kind: str, **fields: Any) -> None:
        self._event_id += 1
        body = {"type": kind, "event_id": self._event_id, **fields}
        task = asyncio.ensure_future(send_json(self._ws, body))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)


async def send_json(ws: web.WebSocketResponse, body: dict[str, Any]) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionError):
            await ws.send_str(json.dumps(body))


class ReferenceTrack(AudioStreamTrack):
    """Sleeps to each 20 ms deadline; returns the session's next frame, or silence."""

    def __init__(self, session: Session, counters: Counters) -> None:
        super().__init__()
        self._session = session
        self._counters = counters
        self._t0: float | None = None
        self._n = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        deadline = self._t0 + self._n * FRAME_S
        if deadline > now:
            await asyncio.sleep(deadline - now)
        lateness = max(0.0, time.monotonic() - deadline)
        frame = self._session.next_frame()
        self._counters.tick(lateness, "webrtc", frame is not None)
        audio = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        audio.planes[0].update(frame.pcm if frame is not None else SILENT_FRAME)
        audio.sample_rate = SAMPLE_RATE
        audio.time_base = TIME_BASE
        audio.pts = self._n * FRAME_SAMPLES
        self._n += 1
        return audio


async def push_frames(ws: web.WebSocketResponse, session: Session, counters: Counters) -> None:
    """The naive paced push: one coroutine per listener, a send per speech frame."""
    t0 = time.monotonic()
    n = 0
    while not ws.closed:
        n += 1
        deadline = t0 + n * FRAME_S
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness = max(0.0, time.monotonic() - deadline)
        frame = session.next_frame()
        counters.tick(lateness, "websocket", frame is not None)
        if frame is None:
            continue
        header = HEADER.pack(FORMAT_VERSION, Codec.PCM_S16LE, *frame[:3])
        try:
            await ws.send_bytes(header + frame.pcm)
        except ConnectionError:
            return


class Connection:
    def __init__(
        self, ws: web.WebSocketResponse, tts: TTSProvider | None, counters: Counters
    ) -> None:
        self._ws = ws
        self._counters = counters
        self._session = Session(ws, tts)
        self._pc: RTCPeerConnection | None = None
        self._pusher: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle(json.loads(msg.data))
        finally:
            await self._stop_audio()
            self._session.close()

    async def _handle(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        reply: dict[str, Any] | None = None
        if kind == "hello":
            reply = welcome()
        elif kind == "offer":
            reply = {"type": "answer", "sdp": await self._answer(body["sdp"]), "transport_id": 1}
        elif kind == "transport":
            await self._stop_audio()
            self._pusher = asyncio.create_task(push_frames(self._ws, self._session, self._counters))
            reply = {"type": "transport", "mode": "websocket", "codec": "pcm_s16le"}
            reply["transport_id"] = 1
        elif kind == "speak":
            reply = {"type": "queued", "utterance_id": self._session.speak(str(body["text"]))}
        elif kind == "ping":
            reply = {"type": "pong", "ts": body.get("ts"), "server_time": time.time()}
        if reply is not None:
            if "id" in body:
                reply["id"] = body["id"]
            await send_json(self._ws, reply)

    async def _answer(self, sdp: str) -> str:
        await self._stop_audio()
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        pc.addTrack(ReferenceTrack(self._session, self._counters))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _stop_audio(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            await asyncio.gather(self._pusher, return_exceptions=True)
            self._pusher = None
        if self._pc is not None:
            await self._pc.close()
            self._pc = None


def welcome() -> dict[str, Any]:
    return {
        "type": "welcome",
        "version": 1,
        "session_id": "reference",
        "codecs": ["pcm_s16le"],
        "transport": "auto",
        "heartbeat": {"interval_ms": 10000, "timeout_ms": 5000},
        "position_interval_ms": 250,
    }


def build_app(tts: TTSProvider | None) -> web.Application:
    counters = Counters()

    async def signaling(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await Connection(ws, tts, counters).run()
        return ws

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=counters.exposition(), content_type="text/plain")

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"token": "reference"})  # the reference checks no token

    app = web.Application()
    app.add_routes(
        [
            web.get("/ws", signaling),
            web.get("/metrics", metrics),
            web.get("/api/dev-token", token),
        ]
    )
    return app


async def serve(host: str, port: int, tts_name: str) -> None:
    tts: TTSProvider | None = None
    if tts_name == "espeak":
        from ..tts.espeak import EspeakProvider

        tts = EspeakProvider()
    use_host_addresses([host])
    runner = web.AppRunner(build_app(tts), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    print(f"reference server at http://{bound_host}:{bound_port}/", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        if tts is not None:
            await tts.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m voice_rtc.bench.reference")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tts", choices=("tone", "espeak"), default="tone")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.tts))


if __name__ == "__main__":
    main()
