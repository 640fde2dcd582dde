"""The signaling protocol: every message a client may send, validated, and those the server sends.

JSON text messages, each an object with a `type`. Unknown fields are ignored (newer clients may
send more); anything else malformed becomes a `ProtocolError` with a stable code.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voice_rtc.errors import ErrorCode

PROTOCOL_VERSION = 1


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


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
    resume: str | None = Field(default=None, max_length=128)  # a resume token from `welcome`
    position: Position | None = None  # the last thing played before the connection dropped
    last_event: int = Field(default=0, ge=0)  # the last event_id received, when resuming


class PositionReport(Position):
    type: Literal["position"]


class Transport(_Message):
    """Switch this session's audio to the signaling socket (WebRTC switches by `offer`)."""

    type: Literal["transport"]
    mode: Literal["websocket"]
    codec: Literal["pcm_s16le", "mulaw"] = "pcm_s16le"


class Offer(_Message):
    type: Literal["offer"]
    sdp: str


class Speak(_Message):
    type: Literal["speak"]
    text: str
    ref: str | None = Field(default=None, max_length=64)  # echoed back in `queued`


class Cancel(_Message):
    type: Literal["cancel"]


class Ping(_Message):
    type: Literal["ping"]
    ts: float


ClientMessage = Annotated[
    Hello | Offer | Speak | Cancel | Ping | PositionReport | Transport,
    Field(discriminator="type"),
]
_client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class ProtocolError(Exception):
    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


_CODES_BY_PYDANTIC_TYPE = {
    "json_invalid": ErrorCode.INVALID_JSON,
    "json_type": ErrorCode.INVALID_JSON,
    "dict_type": ErrorCode.INVALID_JSON,  # valid JSON, but not an object: not a message
    "union_tag_invalid": ErrorCode.UNKNOWN_TYPE,
    "union_tag_not_found": ErrorCode.MISSING_FIELD,
    "missing": ErrorCode.MISSING_FIELD,
}


def parse_client_message(raw: str | bytes) -> ClientMessage:
    try:
        return _client_message.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        code = _CODES_BY_PYDANTIC_TYPE.get(first["type"], ErrorCode.INVALID_FIELD)
        where = ".".join(str(part) for part in first["loc"])
        raise ProtocolError(code, f"{where}: {first['msg']}" if where else first["msg"]) from None


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """A server message: `type` first, then its fields."""
    return {"type": type_, **fields}
