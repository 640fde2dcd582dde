"""Which session a hello binds its connection to, and whether it may.

A listener's hello: with a token for one session (`sid`, made by an app: POST /api/sessions) it
joins that session, and only that one; with a resume token it comes back to its session (its
own user's only: anyone else's is answered as if there were no such session, so that a stolen
resume token reveals nothing and achieves nothing); otherwise, with a person's own token, it
starts a session of its own. An agent's hello: an agent token binds to its session; a service
credential to a session that service made.
"""

import logging

from voice_rtc import metrics
from voice_rtc.auth import Authenticator, AuthError, Identity, Role
from voice_rtc.errors import ErrorCode
from voice_rtc.limits import Limits
from voice_rtc.session import Draining, Session, SessionLimitReached, SessionRegistry

from .messages import AgentHello, Hello, ProtocolError
from .protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)


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
        session = sessions.by_resume_token(hello.resume)
        if session is not None and not _may_listen(identity, session):
            log.warning("resume_refused", extra={"session_id": session.id})
            session = None
        metrics.RECONNECTS.labels("resumed" if session else "session_not_found").inc()
        if session is None:
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "no session has that resume token")
        return session, identity
    if identity.role is Role.LISTENER:
        assert identity.session_id is not None
        session = sessions.get(identity.session_id)
        if session is None or not _may_listen(identity, session):
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "the session has ended, or never was")
        return session, identity
    try:
        return await sessions.create(identity.user_id), identity
    except SessionLimitReached as exc:
        retry = {"retry_after_s": exc.retry_after_s}
        raise ProtocolError(ErrorCode.SERVER_BUSY, str(exc), extra=retry) from None
    except Draining as exc:
        raise ProtocolError(ErrorCode.SERVER_DRAINING, str(exc)) from None


def _may_listen(identity: Identity, session: Session) -> bool:
    """Its own user's session, and with a session token, that very session."""
    if session.user_id != identity.user_id:
        return False
    return identity.role is not Role.LISTENER or identity.session_id == session.id


def bind_agent(
    hello: AgentHello, auth: Authenticator, sessions: SessionRegistry
) -> tuple[Session, Identity]:
    check_version(hello.version)
    identity = authorize_agent(auth, hello.token)
    session_id = hello.session_id or identity.session_id
    if session_id is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "hello.session_id: which session to act on")
    return agent_session(identity, sessions, session_id), identity


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


def agent_session(identity: Identity, sessions: SessionRegistry, session_id: str) -> Session:
    """The session, if this agent may act on it. One it may not is answered as one that does
    not exist: the ids of other apps' sessions are nobody's business."""
    session = sessions.get(session_id)
    if session is None or not identity.may_act_on(session.id, session.created_by):
        raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id} for this agent")
    return session
