"""Structured logs: one JSON object per line.

Call sites log an event name as the message and fields through `extra`:
`log.info("session_started", extra={"session_id": sid})`.
"""

import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Never written out, whatever a call site passes.
_SECRET_FIELDS = frozenset({"token", "resume_token", "secret", "credential", "password", "sdp"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in _SECRET_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiortc and aioice narrate every packet at DEBUG and every ICE check at INFO.
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def failure_fields(exc: BaseException) -> dict[str, str]:
    """An unexpected exception as log fields: its type and where it was raised, and not its
    message, which may quote what a client sent (a token, a transcript)."""
    return {
        "error_type": type(exc).__name__,
        "stack": "".join(traceback.format_tb(exc.__traceback__)),
    }


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as structured events, one per request. Refused requests (4xx, 5xx)
    are throttled per status, for the whole process (aiohttp makes a logger per connection): a
    flood of them writes a few lines and a count."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "duration_ms": round(time * 1000, 1),
            "remote": request.remote,
        }
        if response.status >= 400:
            REFUSED_REQUESTS.info("http_request", str(response.status), **fields)
        else:
            self.logger.info("http_request", extra=fields)


class LogThrottle:
    """For log lines a client can cause at will (one per bad message, per refused socket):
    each kind is written the first `first` times, then only counted, and the count written as
    one `<event>_repeated` line at most every `period_s` (and by `flush`). A flood of input then
    costs the log a few lines, not one per message."""

    def __init__(
        self,
        logger: logging.Logger,
        first: int = 5,
        period_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._first = first
        self._period_s = period_s
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._unwritten: dict[str, int] = {}
        self._last_summary = clock()
        self.context: dict[str, Any] = {}  # fields every line carries (a session id)

    def info(self, event: str, kind: str = "", **fields: Any) -> None:
        key = f"{event}:{kind}"
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        if seen <= self._first:
            self._logger.info(event, extra={**self.context, **fields})
            return
        self._unwritten[key] = self._unwritten.get(key, 0) + 1
        if self._clock() - self._last_summary >= self._period_s:
            self.flush()

    def flush(self) -> None:
        for key, times in self._unwritten.items():
            event, _, kind = key.partition(":")
            self._logger.info(
                f"{event}_repeated", extra={**self.context, "kind": kind, "times": times}
            )
        self._unwritten.clear()
        self._last_summary = self._clock()


REFUSED_REQUESTS = LogThrottle(logging.getLogger("aiohttp.access"))
