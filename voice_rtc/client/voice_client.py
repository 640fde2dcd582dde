"""VoiceClient: a listener's session with a voice-rtc server, in Python, kept through drops.

Signaling is a WebSocket (signaling.py); audio comes over WebRTC or that same socket
(transports.py) and goes to a sink (playback.py; by default a Recording). When the connection
drops, the client reconnects with backoff (reconnection.py), resumes its session with its token,
tells the server the last frame it played and the last event it got, and negotiates the audio
again, so that the listener hears every word once. States and events are the browser
library's (events.py); `word` events follow the frames played (words.py).
"""

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from typing import Any, Final, Self, cast, get_args
from urllib.parse import urlsplit

import aiohttp

from ..errors import ErrorCode
from ..protocol import CLOSE_CODES_GOING_AWAY as CLOSE_GOING_AWAY
from ..transports.webrtc import use_host_addresses
from .errors import ServerError, client_error
from .events import (
    ClientState,
    ErrorBody,
    EventSource,
    FallbackReason,
    StateDetail,
    TransportEvent,
    TransportKind,
    UtteranceEvent,
)
from .playback import AudioSink, Playback
from .reconnection import Reconnector, ReconnectPolicy
from .recording import Recording
from .signaling import CLOSE_REPLACED, PROTOCOL_VERSION, Message, Signaling, signaling_url
from .tokens import TokenSource, dev_token
from .transports import AudioTransport, WebRTCAudio, WebSocketAudio, WebSocketCodec
from .words import Word, WordTracker

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 15.0  # one reconnection attempt: token, socket, hello, audio
# No frame played for this long: nothing plays (the `word` event says None). A Python client
# plays frames as they arrive, with no jitter buffer to smooth their gaps: a pause shorter than
# this is the network's jitter (or a busy event loop), not silence. Over WebRTC the server
# sends silence as packets, which play, so there an utterance's end tells it at once.
WORD_SILENCE_S: Final = 0.25


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


class VoiceClient(EventSource):
    """A listener's connection to a voice-rtc server.

        async with VoiceClient("http://127.0.0.1:8080") as client:
            client.on("utterance", lambda event: print(event["type"], event["text"]))
            utterance_id = await client.speak("Hello there.")

    `state` names where it is (new, connecting, connected, degraded, reconnecting, failed,
    closed) and `state_detail` says more (a StateDetail: see events.py); `on(event, listener)`
    hears `state` (StateDetail), `transport` (TransportEvent), `utterance` (the server's
    utterance_started / utterance_ended, each once across reconnections), `word` (a Word:
    playback reached a word, {utterance_id, index, start, end, text}; or None: no word plays
    now — silence, or a voice without word timings; `current_word` says the same) and `error` (an
    ErrorBody answering no request: the server's, and the client's own
    WEBSOCKET_CONNECTION_FAILED when the connection drops, SERVER_DRAINING when the server is
    shutting down, SESSION_NOT_FOUND when the session was gone and a new one started, and a
    server's refusal of a reconnection attempt). As in the browser library.
    """

    def __init__(
        self,
        server_url: str,
        *,
        transport: TransportKind = "webrtc",
        codec: WebSocketCodec = "pcm_s16le",
        max_attempts: int | None = None,
        relay_only: bool = False,
        token: TokenSource | None = None,
        sink: AudioSink | None = None,
    ) -> None:
        """`server_url`: http(s)://host:port (or the ws(s) URL of its /ws).
        `transport`: the intended one, "webrtc" or "websocket" (unless the server insists on
        the other); switch_transport() moves the audio later. `codec`: of WebSocket audio,
        "opus" (decoded here with libopus, ~4 KB/s), "pcm_s16le" (44 KB/s) or "mulaw" (22).
        `max_attempts`: reconnection attempts before giving up (default: the server's).
        `relay_only`: TURN relay candidates only (iceTransportPolicy "relay").
        `token`: the JWT for hello, or a coroutine function giving a fresh one before every
        connection; without one, a dev-mode server's /api/dev-token is asked.
        `sink`: where played audio goes, frame by frame; default a new Recording, which keeps
        it all in memory (pass your own for a long-lived client)."""
        super().__init__()
        if transport not in get_args(TransportKind):
            raise ValueError(f"transport {transport!r}: expected webrtc or websocket")
        if codec not in get_args(WebSocketCodec):
            raise ValueError(f"codec {codec!r}: expected one of {get_args(WebSocketCodec)}")
        self.url = signaling_url(server_url)
        self.user_id = f"client-{secrets.token_hex(4)}"  # the dev-mode user, kept on reconnect
        self.reconnects = 0  # connections that resumed (or restarted) the session after a drop
        self._transport_option: TransportKind = transport
        self._codec: WebSocketCodec = codec
        self._max_attempts = max_attempts
        self._relay_only = relay_only
        self._token = token
        self._playback = Playback(sink if sink is not None else Recording(), self._frame_played)
        self._words = WordTracker()
        self._silence: asyncio.TimerHandle | None = None  # tells None when no frame comes
        self._state = StateDetail("new")
        self._welcome: Message = {}  # the session's, which outlives connections
        self._last_event = 0
        self._path: TransportKind | None = None  # where audio goes now, or goes next
        self._announced: TransportKind | None = None  # the last `transport` event's
        self._reason: FallbackReason = "forced"  # what the next `transport` request says
        self._drained = False  # the server said it is draining: its closing is no surprise
        self._closing = False  # failed or closed: what drops now stays dropped
        self._http: aiohttp.ClientSession | None = None
        self._signaling: Signaling | None = None
        self._audio: AudioTransport | None = None
        self._supervisor: asyncio.Task[None] | None = None
        if _is_loopback(urlsplit(self.url).hostname or ""):
            use_host_addresses(["127.0.0.1"])  # aioice skips loopback by default

    @property
    def state(self) -> ClientState:
        """Where the client is: new, connecting, connected, degraded, reconnecting, failed or
        closed (the browser library's names)."""
        return self._state.state

    @property
    def state_detail(self) -> StateDetail:
        """The state with its detail, as the last `state` event said."""
        return self._state

    @property
    def transport(self) -> TransportKind | None:
        """Where speech is going, or None when not connected."""
        return self._state.transport if self.state in ("connected", "degraded") else None

    @property
    def session_id(self) -> str | None:
        """The session's id (the same after a resume), or None."""
        return self._welcome.get("session_id")

    @property
    def welcome(self) -> Message:
        """The server's last `welcome` (session, resume token, ICE servers, limits, policies);
        empty before the first connection and after close()."""
        return self._welcome

    @property
    def current_word(self) -> Word | None:
        """The word being heard now, or None: see `word` events."""
        return self._words.current

    @property
    def rtt(self) -> float | None:
        """Round-trip time of the last heartbeat in seconds, or None before the first."""
        return self._signaling.rtt if self._signaling is not None else None

    @property
    def pc(self) -> Any:
        """The RTCPeerConnection in use (aiortc's), or None."""
        return self._audio.pc if isinstance(self._audio, WebRTCAudio) else None

    @property
    def sink(self) -> AudioSink:
        """Where played audio goes: the one given, or the Recording made for it."""
        return self._playback.sink

    @property
    def recording(self) -> Recording:
        """What this client played, when its sink is a Recording (the default)."""
        sink = self._playback.sink
        if not isinstance(sink, Recording):
            raise AttributeError("this client plays into a sink of its own, not a Recording")
        return sink

    async def connect(self, timeout: float = 10.0) -> None:
        """Start the session (or resume it, after `failed`); returns once speech can play
        (`connected`), and afterwards keeps it through drops until close(). Raises, and the
        state is `failed`, if this first connection fails: ServerError if the server refused
        it (AUTHENTICATION_FAILED, SERVER_BUSY, RATE_LIMIT_EXCEEDED, ...)."""
        if self._http is not None:
            raise RuntimeError(f"VoiceClient is already {self.state}")
        self._http = aiohttp.ClientSession()
        self._set_state(StateDetail("connecting"))
        self._closing = False
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation (a
            # close()) that comes as the attempt succeeds. Here and below.
            async with asyncio.timeout(timeout):
                signaling = await self._open()
        except BaseException as exc:
            await self._shutdown("failed", exc)
            raise
        reconnector = Reconnector(
            policy=lambda: ReconnectPolicy.from_welcome(
                self._welcome["reconnect"], self._max_attempts
            ),
            connect=self._reconnect,
            on_drop=self._dropped,
            on_attempt=lambda attempt, most: self._set_state(
                StateDetail("reconnecting", attempt=attempt, max_attempts=most)
            ),
            on_attempt_failed=self._attempt_failed,
            on_give_up=lambda error: self._shutdown("failed", error),
            going_away=lambda gone: gone.close_code == CLOSE_GOING_AWAY,
        )
        self._supervisor = asyncio.create_task(reconnector.run(signaling), name="client-supervisor")

    async def speak(self, text: str, utterance_id: int | None = None, final: bool = True) -> int:
        """Queue `text` after anything queued before it; returns its utterance id, as in
        `utterance` events. To stream text as it is generated, send the first piece with
        `final=False`, then more with its `utterance_id`, the last one `final` (pieces are
        joined as sent: send the spaces). Raises ServerError when the server refuses it
        (TEXT_TOO_LONG, QUEUE_FULL, RATE_LIMIT_EXCEEDED with `retry_after_s`, ...) and
        ConnectionError when not connected."""
        body: Message = {"type": "speak", "text": text, "final": final}
        if utterance_id is not None:
            body["utterance_id"] = utterance_id
        reply = await self._live_signaling().request(body, "queued")
        return int(reply["utterance_id"])

    async def cancel(self) -> None:
        """Barge-in: stop what is playing now and drop what is queued; each gets an
        `utterance_ended` event (cancelled)."""
        await self._live_signaling().send({"type": "cancel"})

    async def send_input(self, text: str) -> None:
        """What the listener typed (or said, transcribed), for the session's agent (in a
        session an app made for one: `welcome["agent"]`)."""
        await self._live_signaling().send({"type": "input", "text": text})

    async def ping(self) -> float:
        """Measure the round-trip time now (heartbeats do it anyway), in seconds."""
        return await self._live_signaling().ping()

    async def switch_transport(
        self, transport: TransportKind, reason: FallbackReason = "other"
    ) -> None:
        """Move the audio to `transport`, keeping the session: playback goes on at the first
        frame not played. `reason` says why, for the server's fallback metrics. Off the
        intended transport the state is `degraded`; back on it, `connected`."""
        signaling = self._live_signaling()
        await self._close_audio()
        await self._report_position(signaling)  # the last frame the old transport played
        self._path = transport
        if transport != self._intended:
            self._reason = reason
        await self._start_audio(signaling)

    async def close(self) -> None:
        """Hang up and end the session (a later connect() starts a new one)."""
        await self._shutdown("closed", None)
        self._forget_session()
        self._path = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def _intended(self) -> TransportKind:
        """The transport the server insists on (welcome.transport), else the one asked for."""
        server = self._welcome.get("transport")
        if server in get_args(TransportKind):
            return cast(TransportKind, server)
        return self._transport_option

    def _live_signaling(self) -> Signaling:
        signaling = self._signaling
        if signaling is None or not signaling.is_open:
            raise ConnectionError(f"VoiceClient is {self.state}, not connected")
        return signaling

    async def _open(self) -> Signaling:
        """One connection: a token, the socket, hello (resuming the session if there is one),
        heartbeats and position reports, the audio."""
        assert self._http is not None
        token = await self._new_token(self._http)
        signaling = await Signaling.open(
            self._http, self.url, self._receive, self._playback.websocket_frame
        )
        try:
            await self._hello(signaling, token)
            self._adopt(signaling)
            await self._start_audio(signaling)
        except BaseException:
            await self._close_connection(signaling)
            raise
        return signaling

    async def _reconnect(self) -> Signaling:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            signaling = await self._open()
        self.reconnects += 1
        return signaling

    async def _new_token(self, http: aiohttp.ClientSession) -> str | None:
        if callable(self._token):
            return await self._token()
        if self._token:
            return self._token
        return await dev_token(http, self.url, self.user_id)

    async def _hello(self, signaling: Signaling, token: str | None) -> None:
        hello: Message = {"type": "hello", "version": PROTOCOL_VERSION}
        if token:
            hello["token"] = token
        if self._welcome:
            resume = {**hello, "resume": self._welcome["resume_token"]}
            resume["last_event"] = self._last_event
            if (position := self._playback.position) is not None:
                resume["position"] = position
            try:
                self._welcomed(await signaling.request(resume, "welcome"))
                return
            except ServerError as exc:
                if exc.code != ErrorCode.SESSION_NOT_FOUND:
                    raise
                log.warning("session_lost", extra={"detail": str(exc)})
                self._emit("error", exc.body)  # what was queued is gone: the app should know
                self._forget_session()
        self._welcomed(await signaling.request(hello, "welcome"))

    def _welcomed(self, welcome: Message) -> None:
        self._welcome = welcome
        if self._path is None or welcome.get("transport") in get_args(TransportKind):
            self._path = self._intended  # a first connection, or a server that allows one

    def _forget_session(self) -> None:
        """Start over in a new session: nothing of the old one applies."""
        self._welcome = {}
        self._last_event = 0
        self._playback.forget_session()
        self._words.clear()
        self._follow_words(None)

    def _adopt(self, signaling: Signaling) -> None:
        """Make `signaling` the connection: heartbeats, position reports."""
        self._signaling = signaling
        self._drained = False
        heartbeat = self._welcome["heartbeat"]
        signaling.start_heartbeat(heartbeat["interval_ms"] / 1000, heartbeat["timeout_ms"] / 1000)
        signaling.spawn(self._report_positions(signaling), "client-position")

    async def _start_audio(self, signaling: Signaling) -> None:
        path = self._path or self._intended
        self._playback.begin(path)
        audio: AudioTransport
        if path == "websocket":
            audio = WebSocketAudio(self._playback, self._codec)
        else:
            audio = WebRTCAudio(
                self._playback,
                self._welcome.get("ice_servers", []),
                self._relay_only,
                on_failed=lambda: self._webrtc_failed(audio, signaling),
            )
        self._audio = audio
        # Later connections on a path the app chose say "forced": the move was counted once.
        reason, self._reason = self._reason, "forced"
        await audio.start(signaling, reason)
        self._up(audio.kind, reason)

    async def _webrtc_failed(self, audio: AudioTransport, signaling: Signaling) -> None:
        if audio is self._audio:
            await signaling.close()  # reconnect from scratch: a new peer connection

    def _up(self, transport: TransportKind, reason: FallbackReason) -> None:
        """Speech flows on `transport`."""
        if transport != self._announced:
            self._announced = transport
            why = None if transport == "webrtc" else reason  # as the browser's: WebRTC needs none
            self._emit("transport", TransportEvent(transport, why))
        state: ClientState = "connected" if transport == self._intended else "degraded"
        self._set_state(StateDetail(state, transport=transport))

    def _receive(self, body: Message) -> None:
        """A message of the server's that answers no request."""
        kind = body.get("type")
        if kind in ("utterance_started", "utterance_ended", "utterance_words"):
            if body["event_id"] > self._last_event:  # resent after a resume: once is enough
                self._last_event = body["event_id"]
                self._words.receive(body)
                if kind != "utterance_words":
                    self._emit("utterance", cast(UtteranceEvent, body))
        elif kind == "sync":
            self._words.receive(body)
        elif kind == "drain":
            self._drained = True
            # Where playback is now, before the server hands the session on: the process
            # that takes it over starts there.
            signaling = self._signaling
            if signaling is not None:
                signaling.spawn(self._report_position(signaling), "client-drain-position")
            seconds = round(body["deadline_ms"] / 1000)
            detail = f"the server is shutting down within {seconds} s; speech may finish"
            self._emit("error", client_error(ErrorCode.SERVER_DRAINING, detail))
        elif kind == "error":
            self._emit("error", cast(ErrorBody, body))

    def _frame_played(self) -> None:
        """A frame played: the word it is in, told if it is another; None if no frame follows
        within WORD_SILENCE_S."""
        if self._silence is not None:
            self._silence.cancel()
        self._silence = asyncio.get_running_loop().call_later(
            WORD_SILENCE_S, self._follow_words, None
        )
        self._follow_words(self._playback.position)

    def _follow_words(self, position: dict[str, int] | None) -> None:
        """Playback is at `position` (None: nothing plays): tell the words reached."""
        if position is None and self._silence is not None:
            self._silence.cancel()
            self._silence = None
        for word in self._words.follow(position):
            self._emit("word", word)

    async def _dropped(self, signaling: Signaling) -> bool:
        """The connection dropped: whether to reconnect."""
        await self._close_connection(signaling)
        if self._closing:
            return False
        code = signaling.close_code
        if code == CLOSE_REPLACED:
            error = ConnectionError("the session was resumed by another connection")
            await self._shutdown("closed", error)
            return False
        if not self._drained:  # after a drain the close was announced (SERVER_DRAINING)
            detail = f"closed: {code}"
            self._emit("error", client_error(ErrorCode.WEBSOCKET_CONNECTION_FAILED, detail))
        return True

    def _attempt_failed(self, error: Exception, attempt: int) -> None:
        # The app made no request that this refusal (AUTHENTICATION_FAILED: a new token is
        # wanted, say) answers: it hears of it here.
        if isinstance(error, ServerError):
            self._emit("error", error.body)

    async def _report_positions(self, signaling: Signaling) -> None:
        interval = self._welcome["position_interval_ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            await self._report_position(signaling)

    async def _report_position(self, signaling: Signaling) -> None:
        position = self._playback.position
        if position is not None and signaling.is_open:
            with contextlib.suppress(ConnectionError):
                await signaling.send({"type": "position", **position})

    async def _close_audio(self) -> None:
        audio, self._audio = self._audio, None
        self._playback.stop()
        if audio is not None:
            await audio.close()

    async def _close_connection(self, signaling: Signaling) -> None:
        if self._signaling is signaling:
            self._signaling = None
            await self._close_audio()
        await signaling.close()

    async def _shutdown(self, state: ClientState, error: BaseException | None) -> None:
        """Release everything the connection holds; `state` is failed or closed."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is asyncio.current_task():
            supervisor = None  # it is the one giving up: it ends by itself
        if supervisor is not None:
            supervisor.cancel()
        if self._signaling is not None:
            await self._close_connection(self._signaling)
        await self._close_audio()  # one a connection that never was had started
        if supervisor is not None:
            await asyncio.gather(supervisor, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._announced = None
        self._follow_words(None)  # nothing plays now
        self._set_state(StateDetail(state, error=error))

    def _set_state(self, detail: StateDetail) -> None:
        if detail == self._state:
            return
        self._state = detail
        self._emit("state", detail)
