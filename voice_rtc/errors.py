"""The one table of error codes that the server and its clients share.

Each code has a severity, a category, whether the client can recover (retry, fix the request,
reconnect) and a message fit to show a user. The table is served at GET /api/errors, so the
browser library maps the same codes to the same recovery actions.
"""

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    FATAL = "fatal"


class Category(StrEnum):
    PROTOCOL = "protocol"
    INPUT = "input"
    MEDIA = "media"
    CAPACITY = "capacity"
    SERVER = "server"


@dataclass(frozen=True)
class ErrorInfo:
    severity: Severity
    category: Category
    recoverable: bool
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
    QUEUE_FULL = "QUEUE_FULL"
    SERVER_BUSY = "SERVER_BUSY"
    INTERNAL_ERROR = "INTERNAL_ERROR"


_W, _E, _F = Severity.WARNING, Severity.ERROR, Severity.FATAL

ERRORS: dict[ErrorCode, ErrorInfo] = {
    ErrorCode.INVALID_JSON: ErrorInfo(
        _W, Category.PROTOCOL, True, "The message was not valid JSON."
    ),
    ErrorCode.UNKNOWN_TYPE: ErrorInfo(
        _W, Category.PROTOCOL, True, "The message type is not known."
    ),
    ErrorCode.MISSING_FIELD: ErrorInfo(
        _W, Category.PROTOCOL, True, "The message is missing a required field."
    ),
    ErrorCode.INVALID_FIELD: ErrorInfo(
        _W, Category.PROTOCOL, True, "A field of the message has a wrong type or value."
    ),
    ErrorCode.MESSAGE_TOO_LARGE: ErrorInfo(
        _W, Category.INPUT, True, "The message is larger than the server accepts."
    ),
    ErrorCode.UNSUPPORTED_VERSION: ErrorInfo(
        _F, Category.PROTOCOL, False, "This client speaks a protocol version the server does not."
    ),
    ErrorCode.HELLO_REQUIRED: ErrorInfo(
        _W, Category.PROTOCOL, True, "Send hello before anything else."
    ),
    ErrorCode.ALREADY_STARTED: ErrorInfo(
        _W, Category.PROTOCOL, True, "This connection already has a session."
    ),
    ErrorCode.SESSION_NOT_FOUND: ErrorInfo(
        _W, Category.PROTOCOL, True, "Your earlier session has ended; starting a new one."
    ),
    ErrorCode.TRANSPORT_NOT_ALLOWED: ErrorInfo(
        _W, Category.MEDIA, True, "This server does not stream audio that way."
    ),
    ErrorCode.INVALID_SDP: ErrorInfo(
        _E, Category.MEDIA, True, "The WebRTC offer could not be used."
    ),
    ErrorCode.TEXT_TOO_LONG: ErrorInfo(
        _W, Category.INPUT, True, "The text is longer than the server speaks at once."
    ),
    ErrorCode.QUEUE_FULL: ErrorInfo(
        _W, Category.CAPACITY, True, "Too much speech is queued; wait for some to finish."
    ),
    ErrorCode.SERVER_BUSY: ErrorInfo(
        _E, Category.CAPACITY, True, "The server is at capacity; try again shortly."
    ),
    ErrorCode.INTERNAL_ERROR: ErrorInfo(
        _E, Category.SERVER, True, "Something went wrong on the server."
    ),
}


def error_body(code: ErrorCode, detail: str = "") -> dict[str, Any]:
    """The JSON an error is sent as: its code, its table row, and what went wrong this time."""
    body: dict[str, Any] = {"code": code.value, **asdict(ERRORS[code])}
    if detail:
        body["detail"] = detail
    return body


def error_table() -> dict[str, dict[str, Any]]:
    return {code.value: asdict(info) for code, info in ERRORS.items()}
