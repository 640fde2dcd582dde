"""What happens in a session, as its clients hear of it: the playout's events (an utterance
queued, started, timed, ended) and the session's own (the listener came or went, typed, heard
an utterance; the session ended). Numbered per session, kept, and sent on by the channels."""

from dataclasses import dataclass

from .playout import EndReason, Heard, PlayoutEvent


@dataclass(frozen=True, slots=True)
class ListenerChanged:
    """For agents: the listener `connected`, `resumed` (came back to the session after a
    drop), `disconnected`, or moved its audio (`transport`: webrtc, websocket, or none)."""

    change: str
    transport: str | None = None


@dataclass(frozen=True, slots=True)
class ListenerInput:
    """For agents: what the listener typed (or said, transcribed by its app)."""

    text: str


@dataclass(frozen=True, slots=True)
class UtteranceHeard:
    """For agents, once an utterance has ended (or been cancelled) and the listener's reports
    have caught up with it (or stopped coming): what the listener played of it."""

    heard: Heard
    reason: EndReason


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """For agents: the session is over (it expired, or the server shut down)."""

    reason: str


SessionEvent = PlayoutEvent | ListenerChanged | ListenerInput | UtteranceHeard | SessionEnded
