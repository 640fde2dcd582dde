"""The signaling protocol's messages, for both channels: the listener's (`/ws`) and the agent's
(`/agent`), every message a client may send, validated, and the shape of those the server sends.

JSON text messages, each an object with a `type`. Unknown fields are ignored (newer clients may
send more); anything else malformed becomes a `ProtocolError` with a stable code. The parser
(pydantic's, in Rust) bounds nesting depth itself; numbers must be finite (NaN and Infinity
are not JSON, and an echo of one would not parse in a browser).
"""

from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voice_rtc.errors import ErrorCode, validation_error

RequestId = str | int
SessionId = Annotated[str, Field(min_length=1, max_length=64)]
Token = Annotated[str, Field(max_length=4096)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    # Any message may carry an id; the reply (or error) it causes echoes it, so a client can
    # match replies to requests without relying on their order.
    id: Annotated[str, Field(max_length=64)] | int | None = None


class Position(_Message):
    """What the listener has played on the transport `transport_id` (from `answer` or
    `transport`): `seq` of a WebSocket frame, or the RTP timestamp of the last WebRTC packet
    played (a browser's RTCRtpReceiver.getSynchronizationSources()[0].rtpTimestamp).
    """

    transport_id: int = Field(ge=1)
    seq: int | None = Field(default=None, ge=0)
    rtp_timestamp: int | None = Field(default=None, ge=0, lt=2**32)


class Hello(_Message):
    """The listener's first message. With a token made for one session (`sid`: an app made the
    session, POST /api/sessions), it joins that session; with a person's own token, it starts a
    session of its own; with `resume`, it comes back to the session it had."""

    type: Literal["hello"]
    version: int
    token: Token | None = None  # the listener's JWT
    resume: str | None = Field(default=None, max_length=128)  # a resume token from `welcome`
    position: Position | None = None  # the last thing played before the connection dropped
    last_event: int = Field(default=0, ge=0)  # the last event_id received, when resuming


class PositionReport(Position):
    type: Literal["position"]


class Transport(_Message):
    """Switch this session's audio to the signaling socket (WebRTC switches by `offer`)."""

    type: Literal["transport"]
    mode: Literal["websocket"]
    codec: Literal["opus", "pcm_s16le", "mulaw"] = "pcm_s16le"
    # Why the client left WebRTC, for operators (voice_rtc_transport_fallbacks_total).
    reason: Literal[
        "forced", "ice_timeout", "connection_failed", "packet_loss", "unsupported", "other"
    ] = "other"


class Offer(_Message):
    type: Literal["offer"]
    sdp: str


class Speak(_Message):
    """Text to speak. To stream an agent's text as it is generated: the first piece with
    `final: false` starts an utterance; later pieces name it (`utterance_id`) and the last says
    `final: true`. Pieces are joined as they are (send the spaces)."""

    type: Literal["speak"]
    text: str
    utterance_id: int | None = None
    final: bool = True


class Cancel(_Message):
    type: Literal["cancel"]


class Input(_Message):
    """What the listener typed (or said, transcribed), for the session's agent."""

    type: Literal["input"]
    text: str = Field(max_length=2000)


class Ping(_Message):
    type: Literal["ping"]
    ts: float
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)  # the last one measured


ListenerMessage = Annotated[
    Hello | Offer | Speak | Cancel | Input | Ping | PositionReport | Transport,
    Field(discriminator="type"),
]


class AgentHello(_Message):
    """The agent's first message: its token (an agent token for the session, or the service
    API key or a service token with `session_id`), and the last event it got, when it comes
    back after a drop."""

    type: Literal["hello"]
    version: int
    token: Token | None = None
    session_id: SessionId | None = None
    last_event: int = Field(default=0, ge=0)


class State(_Message):
    """Ask for the session's state now (the listener, the queue, what was heard)."""

    type: Literal["state"]


AgentMessage = Annotated[
    AgentHello | Speak | Cancel | State | Ping,
    Field(discriminator="type"),
]

_listener_message: TypeAdapter[ListenerMessage] = TypeAdapter(ListenerMessage)
_agent_message: TypeAdapter[AgentMessage] = TypeAdapter(AgentMessage)


class ProtocolError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        detail: str,
        request_id: RequestId | None = None,
        extra: dict[str, Any] | None = None,  # more fields for the error, e.g. retry_after_s
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.extra = extra or {}


def parse_listener_message(raw: str | bytes) -> ListenerMessage:
    try:
        return _listener_message.validate_json(raw)
    except ValidationError as exc:
        raise _refusal(exc, raw) from None


def parse_agent_message(raw: str | bytes) -> AgentMessage:
    try:
        return _agent_message.validate_json(raw)
    except ValidationError as exc:
        raise _refusal(exc, raw) from None


def _refusal(exc: ValidationError, raw: str | bytes) -> ProtocolError:
    code, detail = validation_error(exc)
    return ProtocolError(code, detail, _request_id(raw))


def _request_id(raw: str | bytes) -> RequestId | None:
    """The id of a message that failed validation, if it has a usable one. Never raises: the
    parser refuses deep nesting with a ValueError, not a RecursionError."""
    try:
        body = pydantic_core.from_json(raw)
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value if isinstance(value, str) and len(value) <= 64 else None


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """A server message: `type` first, then its fields."""
    return {"type": type_, **fields}
