"""Client telemetry: POST /api/analytics takes batches of events from listeners' browsers.

Errors they met, summaries of their audio stats, jitter-buffer underruns, transport fallbacks and
reconnections feed the metrics and the logs, so operators see what listeners hear. Batches are
validated and size-limited like any other input: a bad one is refused whole, with a code.
"""

import asyncio
import json
import logging
import math
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import metrics
from .auth import Authenticator, AuthError, bearer_token
from .errors import ErrorCode, error_body, validation_error
from .limits import Limits, RateLimited

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS = 100
Transport = Literal["webrtc", "websocket", "captions"]
Count = Annotated[int, Field(ge=0, le=10**9)]
Milliseconds = Annotated[float, Field(ge=0, le=600_000)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    ts: float | None = None  # the client's clock, unix ms


class ErrorEvent(_Event):
    type: Literal["error"]
    code: str = Field(max_length=64)
    message: str | None = Field(default=None, max_length=500)


class StatsEvent(_Event):
    type: Literal["stats"]
    transport: Transport
    rtt_ms: Milliseconds | None = None
    jitter_ms: Milliseconds | None = None
    jitter_buffer_ms: Milliseconds | None = None
    packets_received: Count | None = None
    packets_lost: Count | None = None


class UnderrunEvent(_Event):
    type: Literal["underrun"]
    transport: Transport
    count: int = Field(ge=1, le=10_000)


class FallbackEvent(_Event):
    type: Literal["fallback"]
    to: Transport
    reason: str = Field(max_length=64)


class ReconnectEvent(_Event):
    type: Literal["reconnect"]
    attempt: int = Field(ge=1, le=1000)


Event = Annotated[
    ErrorEvent | StatsEvent | UnderrunEvent | FallbackEvent | ReconnectEvent,
    Field(discriminator="type"),
]


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    session_id: str | None = Field(default=None, max_length=64)  # for the logs only
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


def _refuse(status: int, code: ErrorCode, detail: str) -> web.Response:
    return web.json_response({"type": "error", **error_body(code, detail)}, status=status)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many pieces it comes in, up to `limit` + 1 bytes (so that a
    caller can tell "too large" from "just fits")."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


async def receive(
    request: web.Request, auth: Authenticator, limits: Limits, body_timeout_s: float
) -> web.Response:
    try:
        identity = auth.verify(bearer_token(request.headers.get("Authorization")))
    except AuthError as exc:
        return _refuse(401, ErrorCode.AUTHENTICATION_FAILED, str(exc))
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _refuse(413, ErrorCode.MESSAGE_TOO_LARGE, f"the limit is {MAX_BODY_BYTES} bytes")
    try:
        async with asyncio.timeout(body_timeout_s):
            body = await read_body(request, MAX_BODY_BYTES)
    except TimeoutError:
        return _refuse(408, ErrorCode.INVALID_FIELD, f"the body took over {body_timeout_s:g} s")
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, ErrorCode.MESSAGE_TOO_LARGE, f"the limit is {MAX_BODY_BYTES} bytes")
    try:
        batch = Batch.model_validate_json(body)
    except ValidationError as exc:
        code, detail = validation_error(exc)
        return _refuse(400, code, detail)
    try:
        await limits.telemetry(identity.user_id, len(batch.events))
    except RateLimited as exc:
        response = _refuse(429, ErrorCode.RATE_LIMIT_EXCEEDED, str(exc))
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after_s))
        return response
    for event in batch.events:
        _record(event, batch.session_id)
    return web.json_response({"accepted": len(batch.events)}, status=202)


def _record(event: Event, session_id: str | None) -> None:
    metrics.TELEMETRY_EVENTS.labels(event.type).inc()
    if isinstance(event, ErrorEvent):
        known = event.code in ErrorCode.__members__
        metrics.ERRORS.labels(event.code if known else "OTHER", "client").inc()
    elif isinstance(event, UnderrunEvent):
        metrics.CLIENT_UNDERRUNS.labels(event.transport).inc(event.count)
    # Nested: a field named like a LogRecord attribute ("message") must not clash with it.
    fields = json.loads(event.model_dump_json(exclude_none=True))
    log.info("client_event", extra={"session_id": session_id, "client_event": fields})


def telemetry_routes(
    auth: Authenticator, limits: Limits, body_timeout_s: float
) -> list[web.RouteDef]:
    async def handle(request: web.Request) -> web.Response:
        return await receive(request, auth, limits, body_timeout_s)

    return [web.post("/api/analytics", handle)]
