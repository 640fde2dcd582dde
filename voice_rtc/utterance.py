"""One utterance: text that may still be arriving (an LLM's tokens), its frames so far, and
where in its audio each word begins (what turns a played position into the text heard)."""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .audio import FRAME_SAMPLES
from .opus import Packet
from .tts.sentences import complete_sentences

log = logging.getLogger(__name__)

# An utterance left open this long without more text is taken as finished, so that an agent
# that forgets to close it cannot hold up everything queued behind it.
OPEN_IDLE_S = 10.0


def _locate(text: str, words: list[str], cursor: int) -> list[tuple[int, int]]:
    spans = []
    for word in words:
        start = text.find(word, cursor)
        start = cursor if start < 0 else start  # cannot happen: sentences are cut from the text
        spans.append((start, start + len(word)))
        cursor = start + len(word)
    return spans


class UtteranceClosed(Exception):
    """Text for an utterance that is finished (or unknown, or cancelled)."""


class PendingTextFull(Exception):
    """More text waiting for synthesis than an utterance may hold."""


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence to synthesize, and where each of its words (`text.split()`) is in the
    utterance's text."""

    text: str
    spans: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Word:
    start: int  # characters into the utterance's text
    end: int
    sample: int  # where its audio begins, in samples from the utterance's first

    @property
    def frame(self) -> int:
        return self.sample // FRAME_SAMPLES


@dataclass(eq=False)
class Utterance:
    id: int
    text: str  # everything received so far
    final: bool  # no more text will come
    max_pending_chars: int
    frames: deque[Packet] = field(default_factory=deque)  # synthesized, not yet played
    synthesized: bool = False  # synthesis finished (or failed)
    failed: bool = False
    played: int = 0
    in_synthesis: bool = False  # a sentence of it is with the provider now
    samples: int = 0  # of audio made so far (and not taken back)
    words: list[Word] = field(default_factory=list)  # timed so far, in order
    words_published: int = 0  # of them, told to listeners
    # Taken over from another process, from frame `played` on: audio made again before it is
    # dropped (a deterministic voice says it again exactly), words timed before it were told.
    resumed_from: int = 0  # the sample this process's audio of it begins at
    skip_samples: int = 0  # made again, still to drop
    _pending: str = ""  # received, not yet handed to synthesis
    _cursor: int = 0  # where in `text` the next sentence's words are to be found
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._pending = self.text

    @property
    def has_speech(self) -> bool:
        """Anything left to say (or to finish saying): all but an open utterance waiting for
        text that has not come."""
        return self.final or bool(self.frames) or self.in_synthesis or bool(self._pending.strip())

    def _spans(self, sentence: str) -> list[tuple[int, int]]:
        # Sentences are the text re-spaced (runs of whitespace become one space): find each
        # word in the text itself, in order, from where the last sentence ended.
        spans = _locate(self.text, sentence.split(), self._cursor)
        if spans:
            self._cursor = spans[-1][1]
        return spans

    def add_text(self, text: str, final: bool) -> None:
        if self.final:
            raise UtteranceClosed(f"utterance {self.id} is finished")
        if len(self._pending) + len(text) > self.max_pending_chars:
            raise PendingTextFull(f"over {self.max_pending_chars} characters wait to be spoken")
        self.text += text
        self._pending += text
        self.final = final
        self._arrived.set()

    def resume_at(self, frame: int, words: list[Word], deterministic: bool) -> None:
        """Go on from `frame`, which another process's listener had not played yet. A
        deterministic voice speaks it all again and the audio before `frame` is dropped: not a
        frame lost or repeated. Any other voice gives different audio each time: it starts again
        at the word the listener was hearing (repeated, none skipped), its audio at `frame`."""
        self.played = frame
        self.resumed_from = frame * FRAME_SAMPLES
        if deterministic:
            self.skip_samples = self.resumed_from
            return
        heard = [w for w in words if w.frame < frame]
        self.words = heard[:-1]  # the word at the cut is timed again as it is said again
        self.words_published = len(self.words)
        self.samples = self.resumed_from
        if heard:
            self._cursor = heard[-1].start
            self._pending = self.text[heard[-1].start :]

    def heard(self, last_frame: int) -> tuple[str, int]:
        """What a listener who played frames up to `last_frame` heard: the text up to the end
        of the last word begun by then, and how many words that is."""
        begun = [w for w in self.words if w.frame <= last_frame]
        return (self.text[: begun[-1].end], len(begun)) if begun else ("", 0)

    def take_back(self, samples: int) -> None:
        """The newest `samples` of audio were withdrawn: so are the words that began in them."""
        self.samples -= samples
        while self.words and self.words[-1].sample >= self.samples:
            self.words.pop()
        self.words_published = min(self.words_published, len(self.words))

    async def sentences(self) -> AsyncIterator[Sentence]:
        """Each sentence once it is complete, until the utterance is final and all spoken."""
        while True:
            # Clear first and decide on a snapshot: text may arrive while a sentence is out.
            self._arrived.clear()
            final = self.final
            ready, self._pending = complete_sentences(self._pending, final)
            for sentence in ready:
                yield Sentence(sentence, self._spans(sentence))
            if final:
                return
            if not self._arrived.is_set():
                try:
                    await asyncio.wait_for(self._arrived.wait(), OPEN_IDLE_S)
                except TimeoutError:
                    log.info("utterance_idle_closed", extra={"utterance_id": self.id})
                    self.final = True
