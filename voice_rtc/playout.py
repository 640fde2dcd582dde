"""A session's queue of utterances, turned into numbered 20 ms frames, and its playback cursor.

Its synthesis (`synthesis.py`, owned here) makes each queued utterance's frames, encoded (or as
PCM, for a listener taking PCM), a bounded lookahead ahead of playback. The clock pulls with
`next_frame()`, which never waits: `None` means "nothing to play now" (idle, or synthesis has
not caught up).

Frames handed out stay here until the listener acknowledges it has played them, so that after a
transport drops, `rewind()` hands out again exactly what it missed. Once a listener acknowledges,
it may fall at most `resume_window` frames behind: past that the playout holds (silence) instead
of sending audio nobody may hear, so a dead transport costs at most one window of memory.
"""

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from .fec import LinkLoss
from .opus import Codec, Packet
from .session_events import (
    EndReason,
    Heard,
    PlayoutEvent,
    UtteranceEnded,
    UtteranceQueued,
    UtteranceStarted,
)
from .speech import PlayedFrame, Speech, StoredUtterance, StoredWord
from .synthesis import Synthesis
from .tts.base import TTSProvider
from .utterance import Utterance, UtteranceClosed, Word

ENDED_MEMORY = 16  # utterances whose heard text can still be asked for once they have ended
# A decoder that starts in the middle of a stream garbles its first frame or two (Opus keeps
# state between frames). After a rewind the new transport first gets the two frames the
# listener played last: they warm its decoder up, and a listener that knows it played them
# (WebSocket audio carries seqs) decodes them without playing them.
PREROLL_FRAMES = 2


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int  # session-wide, counts every speech frame handed out
    utterance_id: int
    index: int  # position within its utterance
    packet: Packet  # the frame, encoded by the playout's codec, or kept as a PcmFrame
    preroll: bool = False  # played already: sent again to warm a new decoder up


class PlayoutFull(Exception):
    """The utterance queue is at its bound."""


class Playout:
    def __init__(
        self,
        tts: TTSProvider,
        codec: Codec,
        on_event: Callable[[PlayoutEvent], None],
        max_queued: int = 16,
        lookahead_frames: int = 250,  # 5 s of audio encoded ahead of playback
        pcm_lookahead_frames: int = 50,  # 1 s of it, kept as PCM (44 KB)
        resume_window: int = 150,  # 3 s of audio sent but not yet acknowledged
        max_pending_chars: int = 8000,  # text of an open utterance waiting to be spoken
    ) -> None:
        self._on_event = on_event
        self._max_queued = max_queued
        self._max_pending_chars = max_pending_chars
        self._queue: deque[Utterance] = deque()
        # The listener's link as its receiver reports it: whether speech is coded with FEC.
        self.link = LinkLoss()
        self._synthesis = Synthesis(
            tts, codec, self.link, self._queue, on_event, lookahead_frames, pcm_lookahead_frames
        )
        self._next_id = 1
        self._seq = 0
        self._resume_window = resume_window
        self._unacknowledged: deque[Frame] = deque()  # handed out, not known to be played
        self._cancelled_in_flight: deque[Frame] = deque()  # the same, of cancelled utterances
        self._replay: deque[Frame] = deque()  # to hand out again, after a rewind
        self._played: deque[Frame] = deque(maxlen=PREROLL_FRAMES)  # acknowledged last
        # For what each utterance's listener heard: the last frame played of each, and the
        # utterances that have ended (a few: the heard text is asked for right after).
        self._played_upto: dict[int, int] = {}
        self._ended: OrderedDict[int, Utterance] = OrderedDict()
        self._acknowledging = False  # the current transport reports what the listener played
        self._last_played: PlayedFrame | None = None
        # Counts every change to the speech (text queued or added, an end, a frame played): what
        # the session's owner writes to the store when it has moved on.
        self.version = 0
        self.underruns = 0
        self.held = 0  # ticks of silence because the listener stopped acknowledging

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._replay

    @property
    def speaking(self) -> bool:
        """Is there speech to play, now or soon (not merely an utterance waiting for text)?"""
        return bool(self._replay) or any(u.has_speech for u in self._queue)

    def keep_pcm(self, keep: bool) -> None:
        """Keep frames as PCM (for a listener taking PCM) or encode them (synthesis.py)."""
        self._synthesis.keep_pcm(keep)

    def enqueue(self, text: str, final: bool = True) -> int:
        """Queue `text` to be spoken; returns its utterance id. Unless `final`, more text may
        follow with `append` (an agent streaming an LLM's tokens)."""
        if len(self._queue) >= self._max_queued:
            raise PlayoutFull(f"{self._max_queued} utterances are already queued")
        utterance = Utterance(self._next_id, text, final, self._max_pending_chars)
        self._next_id += 1
        self._queue.append(utterance)
        self.version += 1
        self._on_event(UtteranceQueued(utterance.id, text, final))
        self._synthesis.start()
        return utterance.id

    def append(self, utterance_id: int, text: str, final: bool) -> None:
        """More text for an open utterance; raises UtteranceClosed if it is not open."""
        utterance = next((u for u in self._queue if u.id == utterance_id), None)
        if utterance is None:
            raise UtteranceClosed(f"utterance {utterance_id} is not queued")
        utterance.add_text(text, final)
        self.version += 1

    def cancel(self) -> list[int]:
        """Drop the rest of the current utterance and everything queued; returns their ids."""
        self._synthesis.stop()
        cancelled = list(self._queue)
        self._queue.clear()
        self._synthesis.forget()
        # Frames on their way are not sent again, but the listener may still play them: its
        # reports of them say what it heard of the cancelled utterance.
        self._cancelled_in_flight, self._unacknowledged = self._unacknowledged, deque()
        self._replay.clear()
        self._played.clear()
        for utterance in cancelled:
            self._end(utterance, EndReason.CANCELLED)
        return [u.id for u in cancelled]

    def next_frame(self) -> Frame | None:
        if self._replay:
            return self._remember(self._replay.popleft())
        if self._acknowledging and len(self._unacknowledged) >= self._resume_window:
            self.held += 1
            return None
        frame = self._next_new_frame()
        return None if frame is None else self._remember(frame)

    def acknowledge(self, seq: int, by_current_transport: bool = True) -> None:
        """The listener has played every frame up to and including `seq`."""
        self._acknowledging |= by_current_transport
        while self._unacknowledged and self._unacknowledged[0].seq <= seq:
            frame = self._unacknowledged.popleft()
            if not frame.preroll:
                self._played.append(frame)
                self._note_played(frame)
        while self._replay and self._replay[0].seq <= seq:
            self._replay.popleft()
        cancelled = self._cancelled_in_flight
        while cancelled and cancelled[0].seq <= seq:
            frame = cancelled.popleft()
            if not frame.preroll:
                self._note_played(frame)

    def _note_played(self, frame: Frame) -> None:
        self._played_upto[frame.utterance_id] = frame.index
        self._last_played = PlayedFrame(frame.seq, frame.utterance_id, frame.index)
        self.version += 1

    def speech(self) -> Speech:
        """The speech as text, and where the listener is in it: what another process needs to
        go on with it."""
        utterances = [
            StoredUtterance(
                u.id,
                u.text,
                u.final,
                [StoredWord(w.start, w.end, w.sample) for w in u.words] if u.played else [],
            )
            for u in self._queue
        ]
        return Speech(utterances, self._last_played, self._next_id)

    def restore(self, speech: Speech, deterministic: bool, reported_seq: int | None) -> None:
        """Take up `speech` from another process: the listener goes on at the first frame it
        had not played (see Utterance.resume_at), numbered as that process would have.
        `reported_seq`: the last frame the listener says it played (seqs hold across
        processes), when it is further on than the store knew."""
        played = speech.played
        if played is not None and reported_seq is not None and reported_seq > played.seq:
            # Within the utterance the store last saw played, most likely: frames are numbered
            # on through it. (Past its end, the next utterance repeats a little: none is lost.)
            ahead = min(reported_seq - played.seq, self._resume_window)
            played = PlayedFrame(played.seq + ahead, played.utterance_id, played.index + ahead)
        self._last_played = played
        self._next_id = speech.next_utterance_id
        # Frames it was sent but did not report get the seqs they had: a client that played
        # them already knows them by seq.
        self._seq = played.seq + 1 if played else 0
        for stored in speech.utterances:
            utterance = Utterance(stored.id, stored.text, stored.final, self._max_pending_chars)
            if played is not None and stored.id == played.utterance_id:
                words = [Word(w.start, w.end, w.sample) for w in stored.words]
                utterance.resume_at(played.index + 1, words, deterministic)
            self._queue.append(utterance)
        if self._queue:
            self._synthesis.start()

    def rewind(self) -> int:
        """Hand out again every frame not acknowledged, before anything new; returns how many.

        For a new transport: the hold re-arms only once it acknowledges too, so a listener that
        cannot report positions gets audio (without lossless resume), never endless silence.
        """
        self._replay.extendleft(reversed(self._unacknowledged))
        self._unacknowledged.clear()
        self._acknowledging = False
        replayed = len(self._replay)
        if self._played and self._continues(self._played[-1]):
            self._replay.extendleft(replace(f, preroll=True) for f in reversed(self._played))
        return replayed

    def _continues(self, played: Frame) -> bool:
        """Is the next frame to hand out the one right after `played`, in its utterance?"""
        if self._replay:
            following = self._replay[0]
            return (following.utterance_id, following.index) == (
                played.utterance_id,
                played.index + 1,
            )
        head = self._queue[0] if self._queue else None
        return (
            head is not None and head.id == played.utterance_id and head.played == played.index + 1
        )

    def heard(self, utterance_id: int) -> Heard | None:
        """What the listener has reported playing of this utterance (None: not known here)."""
        utterance = self._ended.get(utterance_id) or next(
            (u for u in self._queue if u.id == utterance_id), None
        )
        if utterance is None:
            return None
        last = self._played_upto.get(utterance_id, -1)
        text, words = utterance.heard(last)
        timed = bool(utterance.words)  # a voice without word timings (the tone): duration only
        return Heard(utterance_id, text, words, last + 1, last + 1 >= utterance.played, timed)

    def _remember(self, frame: Frame) -> Frame:
        self._unacknowledged.append(frame)
        if len(self._unacknowledged) > self._resume_window:
            self._unacknowledged.popleft()  # a listener that never acknowledges: keep a window
        return frame

    def _next_new_frame(self) -> Frame | None:
        while self._queue:
            head = self._queue[0]
            if head.frames:
                return self._play(head)
            if not head.synthesized:
                if head.played:
                    self.underruns += 1  # mid-utterance: synthesis fell behind playback
                return None
            self._queue.popleft()
            self._end(head, EndReason.FAILED if head.failed else EndReason.DONE)
        return None

    async def close(self) -> None:
        worker = self._synthesis.stop()
        if worker is not None:
            await asyncio.gather(worker, return_exceptions=True)
        self._queue.clear()
        self.link.reset()

    def _end(self, utterance: Utterance, reason: EndReason) -> None:
        self.version += 1
        self._ended[utterance.id] = utterance
        utterance.frames.clear()
        while len(self._ended) > ENDED_MEMORY:
            gone, _ = self._ended.popitem(last=False)
            self._played_upto.pop(gone, None)
        self._on_event(UtteranceEnded(utterance.id, utterance.played, reason, utterance.text))

    def _play(self, utterance: Utterance) -> Frame:
        packet = utterance.frames.popleft()
        self._synthesis.took_one()
        if utterance.played == 0:
            self._on_event(UtteranceStarted(utterance.id, self._seq, utterance.text))
        frame = Frame(self._seq, utterance.id, utterance.played, packet)
        self._seq += 1
        utterance.played += 1
        return frame
