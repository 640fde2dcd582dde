"""What either channel may ask of a session's speech: speak (whole, or streamed in pieces) and
cancel. The same checks whoever asks: text length, the speaker's rate limits, the queue's
bound, an open utterance to append to, no new speech while the server drains."""

from voice_rtc.errors import ErrorCode
from voice_rtc.limits import Limits
from voice_rtc.playout import PlayoutFull
from voice_rtc.session import Session
from voice_rtc.utterance import PendingTextFull, UtteranceClosed

from .messages import ProtocolError, Speak


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
