"""One utterance: text that may still be arriving (an LLM's tokens), and its frames so far."""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .tts.sentences import complete_sentences

log = logging.getLogger(__name__)

# An utterance left open this long without more text is taken as finished, so that an agent
# that forgets to close it cannot hold up everything queued behind it.
OPEN_IDLE_S = 10.0


class UtteranceClosed(Exception):
    """Text for an utterance that is finished (or unknown, or cancelled)."""


class PendingTextFull(Exception):
    """More text waiting for synthesis than an utterance may hold."""


@dataclass(eq=False)
class Utterance:
    id: int
    text: str  # everything received so far
    final: bool  # no more text will come
    max_pending_chars: int
    frames: deque[bytes] = field(default_factory=deque)  # synthesized, not yet played
    synthesized: bool = False  # synthesis finished (or failed)
    failed: bool = False
    played: int = 0
    in_synthesis: bool = False  # a sentence of it is with the provider now
    _pending: str = ""  # received, not yet handed to synthesis
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._pending = self.text

    @property
    def has_speech(self) -> bool:
        """Anything left to say (or to finish saying): all but an open utterance waiting for
        text that has not come."""
        return self.final or bool(self.frames) or self.in_synthesis or bool(self._pending.strip())

    def add_text(self, text: str, final: bool) -> None:
        if self.final:
            raise UtteranceClosed(f"utterance {self.id} is finished")
        if len(self._pending) + len(text) > self.max_pending_chars:
            raise PendingTextFull(f"over {self.max_pending_chars} characters wait to be spoken")
        self.text += text
        self._pending += text
        self.final = final
        self._arrived.set()

    async def sentences(self) -> AsyncIterator[str]:
        """Each sentence once it is complete, until the utterance is final and all spoken."""
        while True:
            # Clear first and decide on a snapshot: text may arrive while a sentence is out.
            self._arrived.clear()
            final = self.final
            ready, self._pending = complete_sentences(self._pending, final)
            for sentence in ready:
                yield sentence
            if final:
                return
            if not self._arrived.is_set():
                try:
                    await asyncio.wait_for(self._arrived.wait(), OPEN_IDLE_S)
                except TimeoutError:
                    log.info("utterance_idle_closed", extra={"utterance_id": self.id})
                    self.final = True
