"""Split text where speech can pause, so synthesis (and first audio) comes a piece at a time."""

import re
from collections.abc import Iterator

# A stop after a title or a Latin abbreviation ends no sentence ("Dr. Who", "e.g. this").
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "vs", "etc", "e.g", "i.e")
_NOT_AN_END = "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS)
_SENTENCE_END = re.compile(_NOT_AN_END + "(?<=[.!?;:\u2026\u3002\uff01\uff1f])\\s+|\\n+")
_WORD_GAP = re.compile(r"\s+")
MAX_SENTENCE_CHARS = 300


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> Iterator[str]:
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


def complete_sentences(text: str, final: bool) -> tuple[list[str], str]:
    """Split text that is still arriving (an LLM's tokens) into the sentences complete so far
    and the rest, kept for more text. A sentence is complete once whitespace follows its end
    ("3.5" and "Dr. Who" arrive a token at a time); a tail too long to wait on is cut at a word.
    With `final`, everything is complete."""
    if final:
        return list(split_sentences(text)), ""
    boundaries = list(_SENTENCE_END.finditer(text))
    done, rest = (
        (text[: boundaries[-1].end()], text[boundaries[-1].end() :]) if boundaries else ("", text)
    )
    if len(rest) > MAX_SENTENCE_CHARS:
        cut = rest.rfind(" ", 0, MAX_SENTENCE_CHARS + 1)
        if cut > 0:
            done, rest = done + rest[:cut], rest[cut:]
    return list(split_sentences(done)), rest
