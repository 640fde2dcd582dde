"""HTTP for app backends and agents, for the simple cases (the agent channel does it all):

    POST /api/sessions                 make a session for a user (a service credential)
    GET  /api/sessions/{id}            its state
    POST /api/sessions/{id}/speak      {text, utterance_id?, final?} (Idempotency-Key: once)
    POST /api/sessions/{id}/cancel     barge-in

Authorization: Bearer <the service API key, a service token, or the session's agent token>.
Bodies are JSON, validated like the sockets' messages, errors the same table's codes.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voice_rtc.auth import Authenticator, AuthError, Identity, bearer_token
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode, error_body, validation_error
from voice_rtc.limits import Limits, RateLimited
from voice_rtc.registry import SessionRegistry
from voice_rtc.session import Draining, SessionLimitReached
from voice_rtc.store import StoreUnavailable
from voice_rtc.telemetry import read_body

from . import commands
from .binding import agent_session, authorize_agent
from .messages import ProtocolError

MAX_BODY_BYTES = 16 * 1024
STATUS = {
    ErrorCode.AUTHENTICATION_FAILED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.SESSION_NOT_FOUND: 404,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429,
    ErrorCode.SERVER_BUSY: 503,
    ErrorCode.SERVER_DRAINING: 503,
    ErrorCode.SESSION_STORE_UNAVAILABLE: 503,
    ErrorCode.QUEUE_FULL: 409,
    ErrorCode.UTTERANCE_CLOSED: 409,
}


class NewSession(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    user_id: Annotated[str, Field(min_length=1, max_length=128)]


class SpeakBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)
    text: str
    utterance_id: int | None = None
    final: bool = True


Handler = Callable[[web.Request], Awaitable[web.Response]]


def api_routes(
    settings: Settings, sessions: SessionRegistry, auth: Authenticator, limits: Limits
) -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        service = _service(auth, request)
        body = await _body(request, NewSession, settings.http_timeout_s)
        try:
            session = await sessions.create(body.user_id, created_by=service.service)
        except SessionLimitReached as exc:
            raise _error(ErrorCode.SERVER_BUSY, str(exc), retry_after_s=exc.retry_after_s) from None
        except Draining as exc:
            raise _error(ErrorCode.SERVER_DRAINING, str(exc)) from None
        except RateLimited as exc:
            raise _rate_limited(exc) from None
        except StoreUnavailable as exc:
            raise _error(ErrorCode.SESSION_STORE_UNAVAILABLE, str(exc), retry_after_s=2.0) from None
        made: dict[str, Any] = {"session_id": session.id, "user_id": session.user_id}
        if auth.mints:  # with RS256 the app's backend signs these itself (see the README)
            assert service.service is not None
            listener, agent = auth.session_tokens(
                session.id, session.user_id, service.service, settings.session_token_ttl_s
            )
            made |= {
                "listener_token": listener,
                "agent_token": agent,
                "expires_in": settings.session_token_ttl_s,
            }
        return web.json_response(made, status=201)

    async def ask(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        """Run a command on the session in the path, wherever it is served."""
        session_id = await _agents_session(auth, sessions, request)
        try:
            return await commands.ask(sessions, session_id, body)
        except ProtocolError as exc:
            raise _error(exc.code, exc.detail, **exc.extra) from None

    async def state(request: web.Request) -> web.Response:
        answer = await ask(request, {"type": "state"})
        return web.json_response({k: v for k, v in answer.items() if k != "type"})

    async def speak(request: web.Request) -> web.Response:
        body = await _body(request, SpeakBody, settings.http_timeout_s)
        # An Idempotency-Key makes a retried POST (its answer lost) speak once, like a resent
        # message id on the agent channel.
        key = request.headers.get("Idempotency-Key", "")[:64] or None
        command = {"type": "speak", "id": key, **body.model_dump(exclude_none=True)}
        return web.json_response(await ask(request, command), status=202)

    async def cancel(request: web.Request) -> web.Response:
        return web.json_response(await ask(request, {"type": "cancel"}))

    return [
        web.post("/api/sessions", _answering(create)),
        web.get("/api/sessions/{session_id}", _answering(state)),
        web.post("/api/sessions/{session_id}/speak", _answering(speak)),
        web.post("/api/sessions/{session_id}/cancel", _answering(cancel)),
    ]


class _Refusal(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _answering(handler: Handler) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _Refusal as refusal:
            return refusal.response

    return answer


def _error(code: ErrorCode, detail: str, **extra: Any) -> _Refusal:
    body = {"type": "error", **error_body(code, detail), **extra}
    response = web.json_response(body, status=STATUS.get(code, 400))
    if "retry_after_s" in extra:
        response.headers["Retry-After"] = str(max(1, round(extra["retry_after_s"])))
    return _Refusal(response)


def _rate_limited(exc: RateLimited) -> _Refusal:
    return _error(ErrorCode.RATE_LIMIT_EXCEEDED, str(exc), retry_after_s=exc.retry_after_s)


def _service(auth: Authenticator, request: web.Request) -> Identity:
    try:
        return auth.verify_service(bearer_token(request.headers.get("Authorization")))
    except AuthError as exc:
        raise _error(ErrorCode.AUTHENTICATION_FAILED, str(exc)) from None


async def _agents_session(
    auth: Authenticator, sessions: SessionRegistry, request: web.Request
) -> str:
    """The session in the path, if the caller (a service, or the session's agent) may act on it."""
    try:
        identity = authorize_agent(auth, bearer_token(request.headers.get("Authorization")))
        record = await agent_session(identity, sessions, request.match_info["session_id"])
    except ProtocolError as exc:
        raise _error(exc.code, exc.detail, **exc.extra) from None
    return record.session_id


Body = TypeVar("Body", bound=BaseModel)


async def _body(request: web.Request, model: type[Body], timeout_s: float) -> Body:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise _error(ErrorCode.MESSAGE_TOO_LARGE, f"the limit is {MAX_BODY_BYTES} bytes")
    try:
        async with asyncio.timeout(timeout_s):
            raw = await read_body(request, MAX_BODY_BYTES)
    except TimeoutError:
        raise _error(ErrorCode.INVALID_FIELD, f"the body took over {timeout_s:g} s") from None
    if len(raw) > MAX_BODY_BYTES:
        raise _error(ErrorCode.MESSAGE_TOO_LARGE, f"the limit is {MAX_BODY_BYTES} bytes")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        code, detail = validation_error(exc)
        raise _error(code, detail) from None
