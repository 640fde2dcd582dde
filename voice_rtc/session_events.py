"""What happens in a session, as its clients hear of it: the playout's events (an utterance
queued, started, timed, ended) and the session's own (the listener came or went, typed, heard
an utterance; the session ended). Numbered per session, kept, and sent on by the channels."""

from dataclasses import dataclass
from enum import StrEnum

from .audio import FRAME_MS
from .utterance import Word


class EndReason(StrEnum):
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class UtteranceQueued:
    utterance_id: int
    text: str  # what came with it (more may follow, unless final)
    final: bool


@dataclass(frozen=True, slots=True)
class UtteranceWords:
    """Words whose place in the audio became known: for captions that follow the voice."""

    utterance_id: int
    text: str  # all of the utterance's text so far (the words are spans of it)
    words: tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class UtteranceStarted:
    utterance_id: int
    seq: int
    text: str  # for captions


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    utterance_id: int
    frames: int
    reason: EndReason
    text: str  # all of it, for captions of text that arrived in pieces


PlayoutEvent = UtteranceQueued | UtteranceStarted | UtteranceWords | UtteranceEnded


@dataclass(frozen=True, slots=True)
class Heard:
    """What the listener played of an utterance, as far as it has reported."""

    utterance_id: int
    text: str  # the utterance's text up to the end of the last word begun
    words: int  # how many words that is
    frames: int  # frames played
    complete: bool  # every frame handed out was reported played
    timed: bool  # the voice timed its words (without, `text` is empty: only the duration is known)

    @property
    def position_ms(self) -> int:
        return self.frames * FRAME_MS


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
