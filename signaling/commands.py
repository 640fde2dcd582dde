"""What may be asked of a session's speech, by a listener's connection or an agent's wherever it
is connected: speak (whole, or streamed in pieces), cancel, the session's state, and an agent
elsewhere saying it is still there. The same checks whoever asks: text length, the speaker's
rate limits, the queue's bound, an open utterance to append to, no new speech while the server
drains.

An agent's commands are plain messages (`{"type": "speak", ...}`) so that they can be sent to
the process that serves the session (voice_rtc.registry); the answer is the reply message, or
`{"error": {...}}`.
"""

import time
from typing import Any

from voice_rtc.errors import ErrorCode
from voice_rtc.limits import Limits, RateLimited
from voice_rtc.playout import PlayoutFull
from voice_rtc.registry import Command, SessionBusy, SessionRegistry
from voice_rtc.session import Draining, Session
from voice_rtc.store import StoreUnavailable
from voice_rtc.utterance import PendingTextFull, UtteranceClosed

from .events import session_state
from .messages import ProtocolError, Speak, message


async def speak(
    session: Session, msg: Speak, limits: Limits, max_text_chars: int, draining: bool
) -> int:
    """Queue or extend an utterance; its id. Rate limits are the session's user's. A request
    with a string id that was seen already is answered as it was, and not spoken again."""
    if isinstance(msg.id, str) and (done := session.spoken(msg.id)) is not None:
        return done
    utterance_id = await _speak(session, msg, limits, max_text_chars, draining)
    if isinstance(msg.id, str):
        session.remember_spoken(msg.id, utterance_id)
    return utterance_id


async def _speak(
    session: Session, msg: Speak, limits: Limits, max_text_chars: int, draining: bool
) -> int:
    if len(msg.text) > max_text_chars:
        detail = f"{len(msg.text)} characters; the limit is {max_text_chars}"
        raise ProtocolError(ErrorCode.TEXT_TOO_LONG, detail)
    # A piece of text costs a character at least: empty pieces are not free.
    await limits.speak(session.user_id, max(1, len(msg.text)), msg.utterance_id is None)
    if isinstance(msg.id, str) and (done := session.spoken(msg.id)) is not None:
        return done  # the same request, resent while this one waited on the limits
    try:
        if msg.utterance_id is not None:
            session.playout.append(msg.utterance_id, msg.text, msg.final)
            return msg.utterance_id
        if not msg.text.strip() and msg.final:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "speak.text: the text is empty")
        if draining:
            raise ProtocolError(ErrorCode.SERVER_DRAINING, "no new speech while shutting down")
        return session.playout.enqueue(msg.text, msg.final)
    except PlayoutFull as exc:
        raise ProtocolError(ErrorCode.QUEUE_FULL, str(exc)) from None
    except UtteranceClosed as exc:
        raise ProtocolError(ErrorCode.UTTERANCE_CLOSED, str(exc)) from None
    except PendingTextFull as exc:
        raise ProtocolError(ErrorCode.TEXT_TOO_LONG, str(exc)) from None


def cancel(session: Session) -> list[int]:
    """Barge-in: the current utterance stops where it is, the queue empties; their ids."""
    return session.playout.cancel()


class Commands:
    """Runs an agent's commands on sessions served here (registry.command_handler)."""

    def __init__(self, registry: SessionRegistry, limits: Limits, max_text_chars: int) -> None:
        self._registry = registry
        self._limits = limits
        self._max_text_chars = max_text_chars

    async def __call__(self, session: Session, body: Command) -> Command:
        try:
            return await self._run(session, body)
        except ProtocolError as exc:
            return _error(exc.code, exc.detail, exc.extra)
        except RateLimited as exc:
            extra = {"retry_after_s": round(exc.retry_after_s, 1)}
            return _error(ErrorCode.RATE_LIMIT_EXCEEDED, str(exc), extra)

    async def _run(self, session: Session, body: Command) -> Command:
        kind = body.get("type")
        if kind == "speak":
            msg = Speak.model_validate(body)
            draining = self._registry.draining
            utterance_id = await speak(session, msg, self._limits, self._max_text_chars, draining)
            return message("queued", utterance_id=utterance_id)
        if kind == "cancel":
            return message("cancelled", utterance_ids=cancel(session))
        if kind == "state":
            return message("state", **session_state(session))
        if kind == "agent_present":  # an agent on another process, for the next while
            session.remote_agent(str(body["key"]), time.monotonic() + 3 * self._registry.lease_s)
            return message("ok")
        if kind == "agent_gone":
            session.remote_agent(str(body["key"]), None)
            return message("ok")
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"no command {kind!r}")


def _error(code: ErrorCode, detail: str, extra: dict[str, Any]) -> Command:
    return {"error": {"code": code.value, "detail": detail, "extra": extra}}


async def ask(registry: SessionRegistry, session_id: str, body: Command) -> Command:
    """Run a command on the session wherever it is served; its reply, or ProtocolError."""
    try:
        answer = await registry.command(session_id, body)
    except KeyError:
        raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "the session has ended") from None
    except SessionBusy as exc:
        raise ProtocolError(ErrorCode.SERVER_BUSY, str(exc), extra={"retry_after_s": 1.0}) from None
    except Draining as exc:
        raise ProtocolError(ErrorCode.SERVER_DRAINING, str(exc)) from None
    except StoreUnavailable as exc:
        extra = {"retry_after_s": 2.0}
        raise ProtocolError(ErrorCode.SESSION_STORE_UNAVAILABLE, str(exc), extra=extra) from None
    if "error" in answer:
        error = answer["error"]
        raise ProtocolError(ErrorCode(error["code"]), error["detail"], extra=error["extra"])
    return answer
