"""Split text where speech can pause, so synthesis (and first audio) comes a piece at a time."""

import re
from collections.abc import Iterator

_SENTENCE_END = re.compile("(?<=[.!?;:\u2026\u3002\uff01\uff1f])\\s+|\\n+")
_WORD_GAP = re.compile(r"\s+")


def split_sentences(text: str, max_chars: int = 300) -> Iterator[str]:
    """Yield the sentences of `text`, none longer than `max_chars`.

    A sentence over the limit is cut at the last space before it (or hard, if it has none).
    """
    for sentence in _SENTENCE_END.split(text):
        sentence = _WORD_GAP.sub(" ", sentence).strip()
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars + 1)
            if cut <= 0:
                cut = max_chars
            yield sentence[:cut].strip()
            sentence = sentence[cut:].strip()
        if sentence:
            yield sentence
