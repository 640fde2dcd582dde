"""Errors a VoiceClient raises or reports, described by the table the server serves
(voice_rtc/errors.py), so that both clients and the server speak the same codes."""

from typing import cast

from ..errors import ErrorCode, error_body
from .events import ErrorBody


class ServerError(Exception):
    """The server refused a request: `body` is its `error` message (`code`, a `message` for the
    user, the `action` to take, perhaps `retry_after_s`)."""

    def __init__(self, body: ErrorBody) -> None:
        super().__init__(f"{body.get('code')}: {body.get('detail') or body.get('message')}")
        self.code: str = body.get("code", "")
        self.body = body

    @property
    def retry_after_s(self) -> float:
        """How long the server asked us to wait (a rate limit), or 0."""
        return float(self.body.get("retry_after_s", 0))


def client_error(code: ErrorCode, detail: str) -> ErrorBody:
    """An error this client raises itself (the connection dropped, the server is draining),
    with the table's row for `code`."""
    return cast(ErrorBody, error_body(code, detail))
