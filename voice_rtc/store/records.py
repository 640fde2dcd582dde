"""What a session needs to go on in another process: its identity, its speech as text (queued,
in progress, still arriving, and where its listener is in it: voice_rtc.speech), its recent
events; and the lease under which one process owns it."""

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter

from ..session_events import (
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
from ..speech import Speech


def token_hash(resume_token: str) -> str:
    """Resume tokens are kept hashed: a copy of the store resumes no one's session."""
    return hashlib.sha256(resume_token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    user_id: str
    created_by: str | None
    resume_token_hash: str
    listener_seen: bool = False
    speech: Speech = field(default_factory=lambda: Speech([], None, 1))
    last_event_id: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    """A process's ownership of a session: valid while the store says so. `epoch` grows with
    every claim, so a stale owner's writes are told apart from the new owner's."""

    owner: str
    epoch: int

    @property
    def token(self) -> str:
        return f"{self.owner}/{self.epoch}"


@dataclass
class Changes:
    """What an owner writes since it last wrote (None: unchanged)."""

    speech: Speech | None = None
    listener_seen: bool | None = None
    events: list[tuple[int, SessionEvent]] = field(default_factory=list)
    resume_token_hash: str | None = None  # a new resume token (a session taken over)


# Events cross processes as JSON: a tag naming the class, and its fields.
_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        UtteranceQueued,
        UtteranceStarted,
        UtteranceWords,
        UtteranceEnded,
        ListenerChanged,
        ListenerInput,
        UtteranceHeard,
        SessionEnded,
    )
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(cls) for name, cls in _EVENT_TYPES.items()
}
_SPEECH: TypeAdapter[Speech] = TypeAdapter(Speech)
_RECORD: TypeAdapter[SessionRecord] = TypeAdapter(SessionRecord)


def encode_event(event: SessionEvent) -> dict[str, Any]:
    return {"t": type(event).__name__, "d": asdict(event)}


def decode_event(body: dict[str, Any]) -> SessionEvent:
    event: SessionEvent = _ADAPTERS[body["t"]].validate_python(body["d"])
    return event


def encode_speech(speech: Speech) -> bytes:
    return _SPEECH.dump_json(speech)


def decode_speech(raw: bytes | str) -> Speech:
    return _SPEECH.validate_json(raw)


def encode_record(record: SessionRecord) -> bytes:
    return _RECORD.dump_json(record)


def decode_record(raw: bytes | str) -> SessionRecord:
    return _RECORD.validate_json(raw)
