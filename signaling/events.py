"""What the server says on each channel: the listener's `welcome`, the agent's, and a session's
events as each of them sees them (the listener: its speech and the words in it, for captions;
the agent: the listener, the queue, and what the listener heard)."""

from typing import Any

from voice_rtc.audio import CHANNELS, FRAME_MS, SAMPLE_RATE
from voice_rtc.config import Settings
from voice_rtc.session import Session
from voice_rtc.session_events import (
    ListenerChanged,
    ListenerInput,
    SessionEnded,
    SessionEvent,
    UtteranceEnded,
    UtteranceHeard,
    UtteranceQueued,
    UtteranceStarted,
    UtteranceWords,
)
from voice_rtc.store import SessionRecord
from voice_rtc.transports.websocket import CODEC_LABELS

from .messages import message
from .protocol import AGENT_PATH, PROTOCOL_VERSION, RECONNECT_BASE_MS, RECONNECT_CAP_MS


def listener_welcome(
    session: Session, settings: Settings, ice_servers: list[dict[str, Any]], resumed: bool
) -> dict[str, Any]:
    """The reply to the listener's hello: the session, and how this server wants it to behave."""
    return message(
        "welcome",
        version=PROTOCOL_VERSION,
        session_id=session.id,
        resume_token=session.resume_token,
        resumed=resumed,
        agent=session.created_by is not None,  # an app's agent speaks here: send it `input`
        ice_servers=ice_servers,
        audio={"sample_rate": SAMPLE_RATE, "channels": CHANNELS, "frame_ms": FRAME_MS},
        codecs=list(CODEC_LABELS),
        transport=settings.transport,
        limits={
            "max_text_chars": settings.max_text_chars,
            "max_message_bytes": settings.max_message_bytes,
            "max_queued_utterances": settings.max_queued_utterances,
        },
        heartbeat=_heartbeat(settings),
        position_interval_ms=settings.position_interval_ms,
        reconnect={
            "base_ms": RECONNECT_BASE_MS,
            "cap_ms": RECONNECT_CAP_MS,
            "max_attempts": settings.reconnect_max_attempts,
        },
        fallback={
            "ice_timeout_ms": settings.ice_timeout_ms,
            "loss_percent": settings.fallback_loss_percent,
            "loss_window_s": settings.fallback_loss_window_s,
        },
        grace_ms=round(settings.session_grace_s * 1000),
    )


def agent_welcome(
    record: SessionRecord, state: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    return message(
        "welcome",
        version=PROTOCOL_VERSION,
        path=AGENT_PATH,
        session_id=record.session_id,
        state={k: v for k, v in state.items() if k != "type"},
        last_event=record.last_event_id,
        limits={
            "max_text_chars": settings.max_text_chars,
            "max_queued_utterances": settings.max_queued_utterances,
        },
        heartbeat=_heartbeat(settings),
        reconnect={"base_ms": RECONNECT_BASE_MS, "cap_ms": RECONNECT_CAP_MS},
    )


def session_state(session: Session) -> dict[str, Any]:
    """A session as an agent (or GET /api/sessions/{id}) sees it now."""
    audio = session.audio
    return {
        "session_id": session.id,
        "user_id": session.user_id,
        "listener": {
            "connected": session.controller is not None,
            "transport": audio.kind if audio else None,
        },
        "agents": session.agents,
        "queued": session.playout.queued,
        "speaking": session.playout.speaking,
        "last_heard": _heard(session.last_heard) if session.last_heard else None,
    }


def _heartbeat(settings: Settings) -> dict[str, int]:
    return {
        "interval_ms": round(settings.heartbeat_interval_s * 1000),
        "timeout_ms": round(settings.heartbeat_timeout_s * 1000),
    }


def _words(event: UtteranceWords) -> list[dict[str, Any]]:
    return [
        {"text": event.text[w.start : w.end], "start": w.start, "end": w.end, "frame": w.frame}
        for w in event.words
    ]


def listener_event(event: SessionEvent) -> dict[str, Any] | None:
    """The event as the listener sees it; None: not the listener's business."""
    if isinstance(event, UtteranceStarted):
        return message(
            "utterance_started", utterance_id=event.utterance_id, seq=event.seq, text=event.text
        )
    if isinstance(event, UtteranceWords):
        # Where each word starts: frame n of the utterance (WebSocket frames carry their index;
        # over WebRTC, `sync` says which frame an RTP timestamp is).
        return message("utterance_words", utterance_id=event.utterance_id, words=_words(event))
    if isinstance(event, UtteranceEnded):
        return _ended(event)
    return None


def agent_event(event: SessionEvent) -> dict[str, Any] | None:
    """The event as an agent sees it; None: not the agent's business."""
    if isinstance(event, ListenerChanged):
        return message("listener", change=event.change, transport=event.transport)
    if isinstance(event, ListenerInput):
        return message("listener_input", text=event.text)
    if isinstance(event, SessionEnded):
        return message("session_ended", reason=event.reason)
    if isinstance(event, UtteranceQueued):
        return message(
            "utterance_queued", utterance_id=event.utterance_id, text=event.text, final=event.final
        )
    if isinstance(event, UtteranceStarted):
        return message("utterance_started", utterance_id=event.utterance_id, text=event.text)
    if isinstance(event, UtteranceEnded):
        return _ended(event)
    if isinstance(event, UtteranceHeard):
        return message("utterance_heard", **_heard(event))
    return None


def _heard(event: UtteranceHeard) -> dict[str, Any]:
    heard = event.heard
    return {
        "utterance_id": heard.utterance_id,
        "reason": event.reason.value,
        "text": heard.text,  # up to the end of the last word begun ("" if `timed` is false)
        "words": heard.words,
        "position_ms": heard.position_ms,
        "complete": heard.complete,  # the listener's reports covered all that was sent
        "timed": heard.timed,  # the voice timed its words (the tone does not)
    }


def _ended(event: UtteranceEnded) -> dict[str, Any]:
    return message(
        "utterance_ended",
        utterance_id=event.utterance_id,
        frames=event.frames,
        reason=event.reason.value,
        text=event.text,
    )
