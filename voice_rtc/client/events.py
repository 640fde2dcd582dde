"""What a VoiceClient tells its app: its state, and `transport`, `utterance`, `word` and `error`
events.

Named and shaped as the browser library's (client/voice-client.js, client/types/*.d.ts), so
that an app's two clients speak alike; fields are spelt the Python way (`max_attempts` for
`maxAttempts`). tests/test_client_events.py checks them against the browser's declarations.
What the client makes itself (a state, a transport change) is a frozen dataclass; what the
server sends (utterance events, errors) stays the dict it arrived as, so that fields the server
adds later reach the app unchanged. A `word` event carries a Word (words.py), or None.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Required, TypedDict, get_args, overload

from .words import Word

log = logging.getLogger(__name__)

ClientState = Literal[
    "new", "connecting", "connected", "degraded", "reconnecting", "failed", "closed"
]
# The browser has a third, "captions" (text only, when it may not play audio): a Python client
# always may, so it never goes there.
TransportKind = Literal["webrtc", "websocket"]
# Why speech left WebRTC, as the protocol's `transport` request says.
FallbackReason = Literal[
    "forced", "ice_timeout", "connection_failed", "packet_loss", "unsupported", "other"
]
EventName = Literal["state", "transport", "utterance", "word", "error"]


@dataclass(frozen=True)
class StateDetail:
    """A state and its detail: what `state_detail` says, and what `state` events carry.

    - `new`: connect() not called yet.
    - `connecting`: connect() is starting the session.
    - `connected` {transport}: speech plays on the intended transport: the one the client was
      made with, or the one the server insists on (welcome.transport).
    - `degraded` {transport}: speech plays on another, after switch_transport().
    - `reconnecting` {attempt, max_attempts}: the connection dropped; this is attempt `attempt`
      of `max_attempts`. The session resumes where the listener left off.
    - `failed` {error}: connect() failed, or reconnection gave up. connect() again resumes the
      session if the server still has it.
    - `closed` {error}: close() was called (no error), or another connection took the session
      over (the error says so).
    """

    state: ClientState
    transport: TransportKind | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    error: BaseException | None = None

    def __str__(self) -> str:
        if self.state == "reconnecting":
            return f"reconnecting {self.attempt}/{self.max_attempts}"
        if self.transport is not None:
            return f"{self.state} ({self.transport})"
        return self.state if self.error is None else f"{self.state}: {self.error!r}"


@dataclass(frozen=True)
class TransportEvent:
    """Speech moved to `transport` (and the first time it flows); off WebRTC, `reason` says
    why and `detail` in words."""

    transport: TransportKind
    reason: FallbackReason | None = None
    detail: str | None = None


class UtteranceEvent(TypedDict):
    """An `utterance` event: the server's `utterance_started` or `utterance_ended` message,
    each `event_id` once, across reconnections."""

    type: Literal["utterance_started", "utterance_ended"]
    event_id: int
    utterance_id: int
    text: str
    seq: NotRequired[int]  # started: its first frame
    frames: NotRequired[int]  # ended: frames played
    reason: NotRequired[Literal["done", "cancelled", "failed"]]  # ended: why


class ErrorBody(TypedDict, total=False):
    """An error as the server sends it, or as the client raises it: a code of the shared table
    (voice_rtc/errors.py, GET /api/errors) and that code's row."""

    code: Required[str]  # stable: what a program checks
    message: str  # for a user
    detail: str  # for a developer
    severity: str
    category: str
    recoverable: bool
    action: str  # what a client does: reconnect, retry_later, sign_in, ...
    retry_after_s: float  # with retry_later: how long to wait
    id: str | int  # the request it answers


StateListener = Callable[[StateDetail], object]
TransportListener = Callable[[TransportEvent], object]
UtteranceListener = Callable[[UtteranceEvent], object]
WordListener = Callable[[Word | None], object]
ErrorListener = Callable[[ErrorBody], object]


class EventSource:
    """Listeners by event name, called in the order added, synchronously, as the event happens
    (the browser's EventTarget, in Python). A listener that raises is logged and skipped: an
    app's bug does not stop the client."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[[Any], object]]] = {}

    @overload
    def on(self, event: Literal["state"], listener: StateListener) -> Callable[[], None]: ...
    @overload
    def on(
        self, event: Literal["transport"], listener: TransportListener
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, event: Literal["utterance"], listener: UtteranceListener
    ) -> Callable[[], None]: ...
    @overload
    def on(self, event: Literal["word"], listener: WordListener) -> Callable[[], None]: ...
    @overload
    def on(self, event: Literal["error"], listener: ErrorListener) -> Callable[[], None]: ...
    def on(self, event: EventName, listener: Callable[[Any], object]) -> Callable[[], None]:
        """Call `listener` with each `event` (state, transport, utterance, word, error) from now
        on; returns a function that stops it. Listeners must not block: start a task for slow
        work."""
        if event not in get_args(EventName):
            raise ValueError(f"no such event: {event!r}")
        listeners = self._listeners.setdefault(event, [])
        listeners.append(listener)

        def off() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return off

    @overload
    def _emit(self, event: Literal["state"], detail: StateDetail) -> None: ...
    @overload
    def _emit(self, event: Literal["transport"], detail: TransportEvent) -> None: ...
    @overload
    def _emit(self, event: Literal["utterance"], detail: UtteranceEvent) -> None: ...
    @overload
    def _emit(self, event: Literal["word"], detail: Word | None) -> None: ...
    @overload
    def _emit(self, event: Literal["error"], detail: ErrorBody) -> None: ...
    def _emit(self, event: EventName, detail: object) -> None:
        for listener in list(self._listeners.get(event, ())):
            try:
                listener(detail)
            except Exception:
                log.exception("listener_failed", extra={"client_event": event})
