"""The signaling protocol: every message a client may send, validated, and those the server sends.

JSON text messages, each an object with a `type`. Unknown fields are ignored (newer clients may
send more); anything else malformed becomes a `ProtocolError` with a stable code.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voice_rtc.audio import CHANNELS, FRAME_MS, SAMPLE_RATE
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, validation_error
from voice_rtc.playout import PlayoutEvent, UtteranceEnded, UtteranceStarted
from voice_rtc.session import Session
from voice_rtc.transports.websocket import CODEC_LABELS

PROTOCOL_VERSION = 1


RequestId = str | int


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

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
    type: Literal["hello"]
    version: int
    token: str | None = Field(default=None, max_length=4096)  # the user's JWT
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


class Ping(_Message):
    type: Literal["ping"]
    ts: float
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)  # the last one measured


ClientMessage = Annotated[
    Hello | Offer | Speak | Cancel | Ping | PositionReport | Transport,
    Field(discriminator="type"),
]
_client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


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


def parse_client_message(raw: str | bytes) -> ClientMessage:
    try:
        return _client_message.validate_json(raw)
    except ValidationError as exc:
        code, detail = validation_error(exc)
        raise ProtocolError(code, detail, _request_id(raw)) from None


def _request_id(raw: str | bytes) -> RequestId | None:
    """The id of a message that failed validation, if it has a usable one."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value if isinstance(value, str) and len(value) <= 64 else None


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """A server message: `type` first, then its fields."""
    return {"type": type_, **fields}


RECONNECT_BASE_MS = 1000
RECONNECT_CAP_MS = 30000


def welcome_message(
    session: Session, settings: Settings, ice_servers: list[dict[str, Any]], resumed: bool
) -> dict[str, Any]:
    """The reply to hello: the session, and how this server wants its clients to behave."""
    return message(
        "welcome",
        version=PROTOCOL_VERSION,
        session_id=session.id,
        resume_token=session.resume_token,
        resumed=resumed,
        ice_servers=ice_servers,
        audio={"sample_rate": SAMPLE_RATE, "channels": CHANNELS, "frame_ms": FRAME_MS},
        codecs=list(CODEC_LABELS),
        transport=settings.transport,
        limits={
            "max_text_chars": settings.max_text_chars,
            "max_message_bytes": settings.max_message_bytes,
            "max_queued_utterances": settings.max_queued_utterances,
        },
        heartbeat={
            "interval_ms": round(settings.heartbeat_interval_s * 1000),
            "timeout_ms": round(settings.heartbeat_timeout_s * 1000),
        },
        position_interval_ms=settings.position_interval_ms,
        reconnect={
            "base_ms": RECONNECT_BASE_MS,
            "cap_ms": RECONNECT_CAP_MS,
            "max_attempts": settings.reconnect_max_attempts,
        },
        fallback={
            "ice_timeout_ms": settings.ice_timeout_ms,
            "loss_percent": settings.fallback_loss_percent,
            "loss_window_s": settings.fallback_loss_window_s,
        },
        grace_ms=round(settings.session_grace_s * 1000),
    )


def event_message(event: PlayoutEvent) -> dict[str, Any]:
    if isinstance(event, UtteranceStarted):
        return message(
            "utterance_started", utterance_id=event.utterance_id, seq=event.seq, text=event.text
        )
    assert isinstance(event, UtteranceEnded)
    return message(
        "utterance_ended",
        utterance_id=event.utterance_id,
        frames=event.frames,
        reason=event.reason.value,
        text=event.text,
    )
