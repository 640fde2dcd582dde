"""A session's queue of utterances, turned into numbered 20 ms frames.

One synthesis task (owned here) runs the TTS provider for the queued utterances in order and
re-chunks its output into exact frames, staying at most `max_buffered_frames` ahead of playback.
The pacer pulls with `next_frame()`, which never waits: `None` means "play silence now" (idle,
or synthesis has not caught up).
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from .audio import Reframer
from .tts.base import TTSProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int  # session-wide, counts every speech frame handed out
    utterance_id: int
    index: int  # position within its utterance
    pcm: bytes


class EndReason(StrEnum):
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class UtteranceStarted:
    utterance_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    utterance_id: int
    frames: int
    reason: EndReason


PlayoutEvent = UtteranceStarted | UtteranceEnded


@dataclass(eq=False)
class _Utterance:
    id: int
    text: str
    frames: deque[bytes] = field(default_factory=deque)  # synthesized, not yet played
    synthesized: bool = False  # the provider has finished (or failed)
    failed: bool = False
    played: int = 0


class PlayoutFull(Exception):
    """The utterance queue is at its bound."""


class Playout:
    def __init__(
        self,
        tts: TTSProvider,
        on_event: Callable[[PlayoutEvent], None],
        max_queued: int = 16,
        max_buffered_frames: int = 1500,  # 30 s of audio ahead of playback
    ) -> None:
        self._tts = tts
        self._on_event = on_event
        self._max_queued = max_queued
        self._max_buffered_frames = max_buffered_frames
        self._queue: deque[_Utterance] = deque()
        self._next_id = 1
        self._seq = 0
        self._buffered = 0
        self._room = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.underruns = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue

    def enqueue(self, text: str) -> int:
        """Queue `text` to be spoken; returns its utterance id."""
        if len(self._queue) >= self._max_queued:
            raise PlayoutFull(f"{self._max_queued} utterances are already queued")
        utterance = _Utterance(self._next_id, text)
        self._next_id += 1
        self._queue.append(utterance)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._synthesize_queue(), name="playout-synthesis")
        return utterance.id

    def cancel(self) -> list[int]:
        """Drop the rest of the current utterance and everything queued; returns their ids."""
        self._stop_worker()
        cancelled = list(self._queue)
        self._queue.clear()
        self._buffered = 0
        for utterance in cancelled:
            self._on_event(UtteranceEnded(utterance.id, utterance.played, EndReason.CANCELLED))
        return [u.id for u in cancelled]

    def next_frame(self) -> Frame | None:
        while self._queue:
            head = self._queue[0]
            if head.frames:
                return self._play(head)
            if not head.synthesized:
                if head.played:
                    self.underruns += 1  # mid-utterance: synthesis fell behind playback
                return None
            self._queue.popleft()
            reason = EndReason.FAILED if head.failed else EndReason.DONE
            self._on_event(UtteranceEnded(head.id, head.played, reason))
        return None

    async def close(self) -> None:
        worker = self._stop_worker()
        if worker is not None:
            await asyncio.gather(worker, return_exceptions=True)
        self._queue.clear()

    def _play(self, utterance: _Utterance) -> Frame:
        pcm = utterance.frames.popleft()
        self._buffered -= 1
        self._room.set()
        if utterance.played == 0:
            self._on_event(UtteranceStarted(utterance.id, self._seq))
        frame = Frame(self._seq, utterance.id, utterance.played, pcm)
        self._seq += 1
        utterance.played += 1
        return frame

    def _stop_worker(self) -> asyncio.Task[None] | None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
        return worker

    async def _synthesize_queue(self) -> None:
        while (pending := next((u for u in self._queue if not u.synthesized), None)) is not None:
            await self._synthesize(pending)

    async def _synthesize(self, utterance: _Utterance) -> None:
        reframer = Reframer()
        try:
            async for chunk in self._tts.synthesize(utterance.text):
                for frame in reframer.push(chunk):
                    await self._wait_for_room()
                    self._append(utterance, frame)
        except Exception:
            log.exception("tts_failed", extra={"utterance_id": utterance.id})
            utterance.failed = True  # play what was made; the end event says it failed
        finally:
            utterance.synthesized = True
        for frame in reframer.flush():
            self._append(utterance, frame)

    def _append(self, utterance: _Utterance, frame: bytes) -> None:
        utterance.frames.append(frame)
        self._buffered += 1

    async def _wait_for_room(self) -> None:
        while self._buffered >= self._max_buffered_frames:
            self._room.clear()
            await self._room.wait()
