"""The one table of error codes that the server and its clients share.

Each code has a severity, a category, whether the client can recover, what it should do about
it (`action`) and a message fit to show a user. The table is served at GET /api/errors, so the
browser library maps the same codes to the same recovery. Codes a client raises itself (it could
not connect, could not play audio) are here too, so that both sides speak one language.
"""

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    FATAL = "fatal"


class Category(StrEnum):
    PROTOCOL = "protocol"
    INPUT = "input"
    MEDIA = "media"
    NETWORK = "network"
    CAPACITY = "capacity"
    TTS = "tts"
    AUTH = "auth"
    SERVER = "server"


class Action(StrEnum):
    """What a client does about an error."""

    FIX_REQUEST = "fix_request"  # a bug or bad input: sending it again will fail again
    RETRY = "retry"  # try again now
    RETRY_LATER = "retry_later"  # try again after a while (a `retry_after_s` may say how long)
    RECONNECT = "reconnect"  # reconnect with backoff, resuming the session
    NEW_SESSION = "new_session"  # the session is gone: start a new one
    SWITCH_TRANSPORT = "switch_transport"  # use the other audio transport
    ENABLE_AUDIO = "enable_audio"  # the user must allow audio (a click), or fall back to captions
    SIGN_IN = "sign_in"  # get a fresh token
    UPGRADE = "upgrade"  # this client is too old or too new


@dataclass(frozen=True)
class ErrorInfo:
    severity: Severity
    category: Category
    recoverable: bool
    action: Action
    message: str


class ErrorCode(StrEnum):
    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_FIELD = "INVALID_FIELD"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    HELLO_REQUIRED = "HELLO_REQUIRED"
    ALREADY_STARTED = "ALREADY_STARTED"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    TRANSPORT_NOT_ALLOWED = "TRANSPORT_NOT_ALLOWED"
    INVALID_SDP = "INVALID_SDP"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    UTTERANCE_CLOSED = "UTTERANCE_CLOSED"
    QUEUE_FULL = "QUEUE_FULL"
    SERVER_BUSY = "SERVER_BUSY"
    SESSION_STORE_UNAVAILABLE = "SESSION_STORE_UNAVAILABLE"
    SERVER_DRAINING = "SERVER_DRAINING"
    TTS_SERVICE_UNAVAILABLE = "TTS_SERVICE_UNAVAILABLE"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    FORBIDDEN = "FORBIDDEN"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    WEBSOCKET_CONNECTION_FAILED = "WEBSOCKET_CONNECTION_FAILED"
    AUDIO_PLAYBACK_FAILED = "AUDIO_PLAYBACK_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


def _info(
    severity: Severity, category: Category, action: Action, message: str, recoverable: bool = True
) -> ErrorInfo:
    return ErrorInfo(severity, category, recoverable, action, message)


_W, _E, _F = Severity.WARNING, Severity.ERROR, Severity.FATAL
_P, _I = Category.PROTOCOL, Category.INPUT
_FIX = Action.FIX_REQUEST

ERRORS: dict[ErrorCode, ErrorInfo] = {
    ErrorCode.INVALID_JSON: _info(_W, _P, _FIX, "The message was not valid JSON."),
    ErrorCode.UNKNOWN_TYPE: _info(_W, _P, _FIX, "The message type is not known."),
    ErrorCode.MISSING_FIELD: _info(_W, _P, _FIX, "The message is missing a required field."),
    ErrorCode.INVALID_FIELD: _info(_W, _P, _FIX, "A field of the message has a wrong value."),
    ErrorCode.MESSAGE_TOO_LARGE: _info(_W, _I, _FIX, "The message is larger than allowed."),
    ErrorCode.UNSUPPORTED_VERSION: _info(
        _F, _P, Action.UPGRADE, "This app is out of date; reload the page.", recoverable=False
    ),
    ErrorCode.HELLO_REQUIRED: _info(_W, _P, _FIX, "Send hello before anything else."),
    ErrorCode.ALREADY_STARTED: _info(_W, _P, _FIX, "This connection already has a session."),
    ErrorCode.SESSION_NOT_FOUND: _info(
        _W, _P, Action.NEW_SESSION, "Your earlier session has ended; starting a new one."
    ),
    ErrorCode.TRANSPORT_NOT_ALLOWED: _info(
        _W, Category.MEDIA, Action.SWITCH_TRANSPORT, "This server streams audio another way."
    ),
    ErrorCode.INVALID_SDP: _info(
        _E, Category.MEDIA, _FIX, "The audio connection could not be set up."
    ),
    ErrorCode.TEXT_TOO_LONG: _info(_W, _I, _FIX, "The text is longer than can be spoken at once."),
    ErrorCode.UTTERANCE_CLOSED: _info(_W, _I, _FIX, "That speech has already finished."),
    ErrorCode.QUEUE_FULL: _info(
        _W, Category.CAPACITY, Action.RETRY_LATER, "Too much speech is queued; wait a moment."
    ),
    ErrorCode.SERVER_BUSY: _info(
        _E, Category.CAPACITY, Action.RETRY_LATER, "The service is busy; trying again shortly."
    ),
    ErrorCode.SESSION_STORE_UNAVAILABLE: _info(
        _E,
        Category.SERVER,
        Action.RETRY_LATER,
        "The service cannot reach its session store; trying again shortly.",
    ),
    ErrorCode.SERVER_DRAINING: _info(
        _W, Category.CAPACITY, Action.RECONNECT, "The service is restarting; reconnecting."
    ),
    ErrorCode.TTS_SERVICE_UNAVAILABLE: _info(
        _E, Category.TTS, Action.RETRY_LATER, "Speech could not be produced right now."
    ),
    ErrorCode.AUTHENTICATION_FAILED: _info(
        _E, Category.AUTH, Action.SIGN_IN, "Your sign-in is not valid; please sign in again."
    ),
    ErrorCode.FORBIDDEN: _info(
        _E, Category.AUTH, _FIX, "This sign-in may not do that.", recoverable=False
    ),
    ErrorCode.ORIGIN_NOT_ALLOWED: _info(
        _E, Category.AUTH, _FIX, "This page may not use the service.", recoverable=False
    ),
    ErrorCode.RATE_LIMIT_EXCEEDED: _info(
        _W, Category.CAPACITY, Action.RETRY_LATER, "Too many requests; slowing down."
    ),
    ErrorCode.WEBSOCKET_CONNECTION_FAILED: _info(
        _E, Category.NETWORK, Action.RECONNECT, "The connection to the server was lost; retrying."
    ),
    ErrorCode.AUDIO_PLAYBACK_FAILED: _info(
        _W, Category.MEDIA, Action.ENABLE_AUDIO, "Audio cannot play; click to enable sound."
    ),
    ErrorCode.INTERNAL_ERROR: _info(
        _E, Category.SERVER, Action.RETRY, "Something went wrong on the server."
    ),
}


_ROWS: dict[ErrorCode, dict[str, Any]] = {code: asdict(info) for code, info in ERRORS.items()}


def error_body(code: ErrorCode, detail: str = "") -> dict[str, Any]:
    """The JSON an error is sent as: its code, its table row, and what went wrong this time."""
    body: dict[str, Any] = {"code": code.value, **_ROWS[code]}
    if detail:
        body["detail"] = detail
    return body


def error_table() -> dict[str, dict[str, Any]]:
    return {code.value: dict(row) for code, row in _ROWS.items()}


_CODES_BY_PYDANTIC_TYPE = {
    "json_invalid": ErrorCode.INVALID_JSON,
    "json_type": ErrorCode.INVALID_JSON,
    "dict_type": ErrorCode.INVALID_JSON,  # valid JSON, but not an object: not a message
    "model_type": ErrorCode.INVALID_JSON,
    "union_tag_invalid": ErrorCode.UNKNOWN_TYPE,
    "union_tag_not_found": ErrorCode.MISSING_FIELD,
    "missing": ErrorCode.MISSING_FIELD,
}


def validation_error(exc: ValidationError) -> tuple[ErrorCode, str]:
    """The code and a developer's detail for the first thing wrong with a parsed message."""
    first = exc.errors(include_url=False)[0]
    code = _CODES_BY_PYDANTIC_TYPE.get(first["type"], ErrorCode.INVALID_FIELD)
    where = ".".join(str(part) for part in first["loc"])
    return code, f"{where}: {first['msg']}" if where else first["msg"]
