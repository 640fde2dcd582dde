"""Which word the listener hears now, for captions that follow the speech: the browser
library's client/word-timing.js, in Python, piece for piece.

- RtpSeqMap: over WebRTC, the RTP timestamp being played -> the frame's `seq`, from the
  server's `sync` messages (one per stretch of speech: this timestamp carries this seq, and
  each RTP_TICKS_PER_FRAME ticks after it the next).
- WordTimeline: the utterances in play and their words (`utterance_words`: where each word's
  audio begins, in frames); a seq -> the utterance, the frame index within it, the word; and
  which words to tell (`word` events) as playback goes on.
- WordTracker: both, fed the server's messages and the position played (a WebSocket frame's
  seq, or a WebRTC packet's RTP timestamp, as positions are reported).

Both keep little: a few syncs of the current transport, the utterances not yet played out.
"""

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypedDict, cast

from ..protocol import RTP_TICKS_PER_FRAME

RTP_MODULUS: Final = 2**32
MAX_SYNCS: Final = 16  # stretches of speech remembered, per transport
# Utterances held: synthesized ahead (their words come before they start), or started and not
# played out yet (the server sends up to resume_window_ms, 3 s, ahead of playback).
MAX_UTTERANCES: Final = 32


class Sync(TypedDict):
    """A `sync` message: where a stretch of speech begins in RTP time (the fields used)."""

    transport_id: int
    rtp_timestamp: int  # the packet carrying frame `seq`
    seq: int


class TimedWord(TypedDict):
    """One of `utterance_words`' words: `frame` is where its audio begins, from the
    utterance's start; `start` and `end` are character offsets into its text."""

    text: str
    start: int
    end: int
    frame: int


@dataclass(frozen=True, slots=True)
class Word:
    """A word being heard, as `word` events give it (the browser's `Word`)."""

    utterance_id: int
    index: int  # its number within the utterance's words, from 0
    start: int  # character offset into the utterance's text
    end: int  # character offset just after it
    text: str  # the word


@dataclass(slots=True)
class Utterance:
    id: int
    # Its first frame; None until it starts (its words come first: synthesis runs ahead).
    seq: int | None = None
    words: list[TimedWord] = field(default_factory=list)  # in order
    frames: int | None = None  # its length, once ended
    told: int = -1  # the last of its words told (follow()), -1 before the first


class _Sync(NamedTuple):
    transport_id: int
    rtp_timestamp: int
    seq: int


class RtpSeqMap:
    """RTP timestamps -> seqs, for the transport in use."""

    def __init__(self) -> None:
        self._syncs: list[_Sync] = []  # in the order sent, which is RTP order

    def add(self, sync: Sync) -> None:
        entry = _Sync(int(sync["transport_id"]), int(sync["rtp_timestamp"]), int(sync["seq"]))
        # A new transport's syncs replace the old one's: its RTP clock has another origin.
        if self._syncs and self._syncs[0].transport_id != entry.transport_id:
            self._syncs = []
        self._syncs.append(entry)
        if len(self._syncs) > MAX_SYNCS:
            del self._syncs[0]

    def seq_at(self, transport_id: int, rtp_timestamp: int) -> int | None:
        """The seq of the frame the packet with this timestamp carries; None when unknown (no
        sync of this transport yet) or when it carries silence: past a stretch's end, which
        the next stretch's seq bounds."""
        syncs = self._syncs
        if not syncs or syncs[0].transport_id != transport_id:
            return None
        # The latest sync at or before the timestamp: less than half the RTP clock's cycle behind.
        for i in range(len(syncs) - 1, -1, -1):
            ticks = (rtp_timestamp - syncs[i].rtp_timestamp) % RTP_MODULUS
            if ticks >= RTP_MODULUS // 2:
                continue
            seq = syncs[i].seq + ticks // RTP_TICKS_PER_FRAME
            if i + 1 < len(syncs) and seq >= syncs[i + 1].seq:
                return None
            return seq
        return None

    def clear(self) -> None:
        self._syncs = []


class WordTimeline:
    """The utterances in play and their words; which word a frame is in, and which to tell."""

    def __init__(self, is_cancelled: Callable[[int], bool] = lambda _utterance: False) -> None:
        """`is_cancelled(utterance_id)`: its words are not told (its frames still playing are
        being flushed)."""
        self._is_cancelled = is_cancelled
        self._utterances: dict[int, Utterance] = {}  # by id, in the order first heard of
        self._newest_played = -1  # the newest seq seen playing
        self._current: Word | None = None  # the word told last, or None: none plays

    @property
    def current(self) -> Word | None:
        """The word being heard, as follow() last told."""
        return self._current

    def __len__(self) -> int:
        """How many utterances it holds."""
        return len(self._utterances)

    def started(self, event: Mapping[str, Any]) -> None:
        """`utterance_started` ({utterance_id, seq})."""
        self._utterance(int(event["utterance_id"])).seq = int(event["seq"])

    def add_words(self, event: Mapping[str, Any]) -> None:
        """`utterance_words` ({utterance_id, words}): words newly timed, in order; those known
        already (sent again) are kept once."""
        utterance = self._utterance(int(event["utterance_id"]))
        for word in event["words"]:
            if not utterance.words or word["start"] > utterance.words[-1]["start"]:
                utterance.words.append(word)

    def ended(self, event: Mapping[str, Any]) -> None:
        """`utterance_ended` ({utterance_id, frames})."""
        utterance = self._utterances.get(int(event["utterance_id"]))
        if utterance is None:
            return
        if utterance.seq is None:
            del self._utterances[utterance.id]  # cancelled before it started
        else:
            utterance.frames = int(event["frames"])

    def playing(self, seq: int | None) -> Word | None:
        """Playback is at frame `seq` (None: nothing plays): the word it is in, or None when it
        is in none (silence, an utterance whose words are unknown — a voice without word
        timings —, or before its first word). Forgets the utterances played out: ended, and
        passed. While nothing plays, only those whose last frame was seen playing, for what
        ended may not have played yet (the server sends ahead): the others go when a later
        frame plays, or as the oldest beyond MAX_UTTERANCES."""
        if seq is not None:
            self._newest_played = max(self._newest_played, seq)
        for utterance in list(self._utterances.values()):
            if utterance.frames is None or utterance.seq is None:
                continue
            last = utterance.seq + utterance.frames - 1
            if (self._newest_played >= last) if seq is None else (seq > last):
                del self._utterances[utterance.id]
        if seq is None:
            return None
        found = self._utterance_at(seq)
        if found is None or found.seq is None:
            return None
        return word_of(found, seq - found.seq)

    def follow(self, seq: int | None) -> list[Word | None]:
        """Playback is at frame `seq` (None: nothing plays): the words to tell, in order, if
        the word heard changed (none if not; ending with None when no word plays any more).
        Each word is told once, in order: those playback passed between two looks too, at
        once, before the one playing; and since a new transport replays a frame or two already
        heard, an utterance's words only advance. A word is told again only after a pause (the
        connection dropped inside it)."""
        told: list[Word | None] = []
        if seq is not None:
            for utterance in self._utterances.values():
                if utterance.seq is None or utterance.seq > seq:
                    continue
                if self._is_cancelled(utterance.id):
                    continue  # its frames are being flushed
                # Its words begun by now (or, once it ended, all it played).
                reached = seq - utterance.seq
                if utterance.frames is not None:
                    reached = min(reached, utterance.frames - 1)
                words = utterance.words
                while (
                    utterance.told + 1 < len(words)
                    and words[utterance.told + 1]["frame"] <= reached
                ):
                    utterance.told += 1
                    told.append(self.word(utterance.id, utterance.told))
        word = self.playing(seq)
        if word is not None and self._is_cancelled(word.utterance_id):
            word = None
        if word is not None:
            utterance_of_word = self._utterances.get(word.utterance_id)
            if utterance_of_word is not None and word.index < utterance_of_word.told:
                word = self.word(word.utterance_id, utterance_of_word.told)
        if not told and _same_word(word, self._current):
            return []
        if not told or not _same_word(word, told[-1]):
            told.append(word)
        self._current = word
        return told

    def word(self, utterance_id: int, index: int) -> Word | None:
        """Word `index` of an utterance held, or None."""
        utterance = self._utterances.get(utterance_id)
        if utterance is None or not 0 <= index < len(utterance.words):
            return None
        timed = utterance.words[index]
        return Word(utterance_id, index, timed["start"], timed["end"], timed["text"])

    def clear(self) -> None:
        """A new session: its frames count from 0 again. (The next follow() tells the word is
        over.)"""
        self._utterances.clear()
        self._newest_played = -1

    def _utterance(self, utterance_id: int) -> Utterance:
        """The utterance `utterance_id`, held from now on (the oldest beyond MAX_UTTERANCES
        forgotten)."""
        utterance = self._utterances.get(utterance_id)
        if utterance is None:
            utterance = self._utterances[utterance_id] = Utterance(utterance_id)
            while len(self._utterances) > MAX_UTTERANCES:
                del self._utterances[next(iter(self._utterances))]
        return utterance

    def _utterance_at(self, seq: int) -> Utterance | None:
        """The started utterance frame `seq` is in: the latest to start at or before it,
        unless it ended before it."""
        found: Utterance | None = None
        found_seq = -1
        for utterance in self._utterances.values():
            start = utterance.seq
            if start is None or start > seq or start < found_seq:
                continue
            found, found_seq = utterance, start
        if found is not None and found.frames is not None and seq >= found_seq + found.frames:
            return None
        return found


def _same_word(a: Word | None, b: Word | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.utterance_id == b.utterance_id and a.index == b.index


def word_of(utterance: Utterance, index: int) -> Word | None:
    """The word of `utterance` that frame `index` of it is in: the last to begin at or before
    it."""
    after = bisect.bisect_right(utterance.words, index, key=lambda word: word["frame"])
    if after == 0:
        return None
    timed = utterance.words[after - 1]
    return Word(utterance.id, after - 1, timed["start"], timed["end"], timed["text"])


class WordTracker:
    """The word the listener hears now, from the server's messages (`utterance_started`,
    `utterance_words`, `utterance_ended`, `sync`) and the position played: what a VoiceClient
    uses for `word` events and `current_word`."""

    def __init__(self, is_cancelled: Callable[[int], bool] = lambda _utterance: False) -> None:
        self.timeline = WordTimeline(is_cancelled)
        self.syncs = RtpSeqMap()

    @property
    def current(self) -> Word | None:
        """The word being heard, as follow() last told."""
        return self.timeline.current

    def receive(self, message: Mapping[str, Any]) -> None:
        """A message of the server's (each event once: the client drops those sent again);
        those that say nothing of words are ignored."""
        kind = message.get("type")
        if kind == "utterance_started":
            self.timeline.started(message)
        elif kind == "utterance_ended":
            self.timeline.ended(message)
        elif kind == "utterance_words":
            self.timeline.add_words(message)
        elif kind == "sync":
            self.syncs.add(cast(Sync, message))

    def seq_of(self, position: Mapping[str, int] | None) -> int | None:
        """The frame a played position ({transport_id, seq} or {transport_id, rtp_timestamp},
        as positions are reported) is, or None: nothing plays, or not known which."""
        if position is None:
            return None
        if "seq" in position:
            return position["seq"]
        if "rtp_timestamp" in position:
            return self.syncs.seq_at(position["transport_id"], position["rtp_timestamp"])
        return None

    def follow(self, position: Mapping[str, int] | None) -> list[Word | None]:
        """Playback is at `position` (None: nothing plays): the words to tell, as
        WordTimeline.follow()."""
        return self.timeline.follow(self.seq_of(position))

    def clear(self) -> None:
        """A new session: nothing of the old one applies."""
        self.timeline.clear()
        self.syncs.clear()
