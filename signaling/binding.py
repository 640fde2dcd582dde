"""Which session a hello binds its connection to, and whether it may.

A listener's hello: with a token for one session (`sid`, made by an app: POST /api/sessions) it
joins that session, and only that one; with a resume token it comes back to its session (its
own user's only: anyone else's is answered as if there were no such session, so that a stolen
resume token reveals nothing and achieves nothing); otherwise, with a person's own token, it
starts a session of its own. A session another process serves is taken over: audio comes from
the process the listener is connected to. An agent's hello: an agent token binds to its
session; a service credential to a session that service made, wherever it is served.
"""

import logging
from collections.abc import Awaitable
from typing import TypeVar

from voice_rtc import metrics
from voice_rtc.auth import Authenticator, AuthError, Identity, Role
from voice_rtc.errors import ErrorCode
from voice_rtc.limits import Limits
from voice_rtc.registry import SessionBusy, SessionRegistry
from voice_rtc.session import Draining, Session, SessionLimitReached
from voice_rtc.store import SessionRecord, StoreUnavailable

from .messages import AgentHello, Hello, ProtocolError
from .protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)
T = TypeVar("T")


def check_version(version: int) -> None:
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"version {version}; this server speaks {PROTOCOL_VERSION}",
        )


async def bind_listener(
    hello: Hello, auth: Authenticator, limits: Limits, sessions: SessionRegistry, ip: str
) -> tuple[Session, Identity]:
    check_version(hello.version)
    await limits.connect_from(ip)
    try:
        identity = auth.verify(hello.token)
    except AuthError as exc:
        raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, str(exc)) from None
    if identity.role not in (Role.USER, Role.LISTENER):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"a {identity.role} token cannot listen")
    await limits.connect_as(identity.user_id)
    if hello.resume is not None:
        session_id = await _store_call(sessions.find(hello.resume))
        session = await _listeners_session(identity, sessions, session_id, hello.resume)
        metrics.RECONNECTS.labels("resumed" if session else "session_not_found").inc()
        if session is None:
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "no session has that resume token")
        return session, identity
    if identity.role is Role.LISTENER:
        session = await _listeners_session(identity, sessions, identity.session_id, None)
        if session is None:
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "the session has ended, or never was")
        return session, identity
    try:
        return await _store_call(sessions.create(identity.user_id)), identity
    except SessionLimitReached as exc:
        retry = {"retry_after_s": exc.retry_after_s}
        raise ProtocolError(ErrorCode.SERVER_BUSY, str(exc), extra=retry) from None
    except Draining as exc:
        raise ProtocolError(ErrorCode.SERVER_DRAINING, str(exc)) from None


async def _listeners_session(
    identity: Identity, sessions: SessionRegistry, session_id: str | None, resume: str | None
) -> Session | None:
    """The session, served here (taken over if need be), if this listener may have it."""
    if session_id is None:
        return None
    record = await _store_call(sessions.record(session_id))
    if record is None or not _may_listen(identity, record):
        if record is not None:
            log.warning("resume_refused", extra={"session_id": session_id})
        return None
    try:
        return await _store_call(sessions.take_over(session_id, resume))
    except KeyError:
        return None
    except (SessionBusy, SessionLimitReached) as exc:
        retry = {"retry_after_s": 1.0}
        raise ProtocolError(ErrorCode.SERVER_BUSY, str(exc), extra=retry) from None
    except Draining as exc:
        raise ProtocolError(ErrorCode.SERVER_DRAINING, str(exc)) from None


async def _store_call(call: Awaitable[T]) -> T:
    """A step that needs the session store: its being down is the client's clear error."""
    try:
        return await call
    except StoreUnavailable as exc:
        detail = f"{exc}: sessions cannot be found or made now"
        raise ProtocolError(
            ErrorCode.SESSION_STORE_UNAVAILABLE, detail, extra={"retry_after_s": 2.0}
        ) from None


def _may_listen(identity: Identity, record: SessionRecord) -> bool:
    """Its own user's session, and with a session token, that very session."""
    if record.user_id != identity.user_id:
        return False
    return identity.role is not Role.LISTENER or identity.session_id == record.session_id


async def bind_agent(
    hello: AgentHello, auth: Authenticator, sessions: SessionRegistry
) -> tuple[SessionRecord, Identity]:
    check_version(hello.version)
    identity = authorize_agent(auth, hello.token)
    session_id = hello.session_id or identity.session_id
    if session_id is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "hello.session_id: which session to act on")
    return await agent_session(identity, sessions, session_id), identity


def authorize_agent(auth: Authenticator, credential: str | None) -> Identity:
    """An agent token, or a service credential (the API key, or a service token)."""
    try:
        identity = auth.verify_service(credential)
    except AuthError:
        try:
            identity = auth.verify(credential)
        except AuthError as exc:
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, str(exc)) from None
    if identity.role not in (Role.AGENT, Role.SERVICE):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"a {identity.role} token cannot act as an agent")
    return identity


async def agent_session(
    identity: Identity, sessions: SessionRegistry, session_id: str
) -> SessionRecord:
    """The session (served here or elsewhere), if this agent may act on it. One it may not is
    answered as one that does not exist: the ids of other apps' sessions are nobody's
    business."""
    record = await _store_call(sessions.record(session_id))
    if record is None or not identity.may_act_on(record.session_id, record.created_by):
        raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id} for this agent")
    return record
