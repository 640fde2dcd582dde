"""A session's speech as text, and where its listener is in it: what a process taking the
session over needs to go on (voice_rtc.store keeps it; the playout makes and restores it).

Text, not audio: a process that takes a session over synthesizes again. A deterministic voice
gives the same audio again, so it skips exactly the frames played; any other voice starts again
at the word the listener was hearing.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StoredWord:
    start: int  # characters into the utterance's text
    end: int
    sample: int


@dataclass(frozen=True, slots=True)
class StoredUtterance:
    id: int
    text: str  # all of it so far
    final: bool
    words: list[StoredWord] = field(default_factory=list)  # timed so far (the one playing)


@dataclass(frozen=True, slots=True)
class PlayedFrame:
    """The last frame the listener reported playing."""

    seq: int
    utterance_id: int
    index: int


@dataclass(frozen=True, slots=True)
class Speech:
    """A session's speech: the queue (the first may be playing), the listener's place in it."""

    utterances: list[StoredUtterance]
    played: PlayedFrame | None
    next_utterance_id: int
