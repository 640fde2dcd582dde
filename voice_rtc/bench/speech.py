"""What the bench's listeners ask to hear, for the tone voice and for eSpeak NG."""

import math

# About 100 s of eSpeak NG speech at 175 words a minute, under the 2000 characters a speak takes.
PASSAGE = (
    "The benchmark keeps every listener busy with speech for as long as the window lasts. "
    "Each sentence is synthesized by the embedded voice, cut into frames of twenty milliseconds "
    "and sent to the listener at the pace it is played. A listener that hears a frame late "
    "hears a click or a gap, so the server must hand out every frame on time, however many "
    "listeners it serves at once. The load clients count the packets as they arrive, note the "
    "time of each one and compare it with the time the sender stamped on it. From that they "
    "know how late each frame was, how much the arrivals jittered, and whether any were lost "
    "on the way. The server's own histogram says how late its pacer woke up. The two views "
    "agree when the server is the only thing that is busy. When the load clients themselves "
    "fall behind, the report says so, and the figures are not the server's fault. "
)
PASSAGE_S = 100.0
PROBE_TONE = "440hz 300ms"
PROBE_SPEECH = "Hello there."
# About nine seconds of speech for PESQ: long enough to score, short enough to run in seconds.
QUALITY_TEXT = (
    "The quick brown fox jumps over the lazy dog. Please call Stella and ask her to bring "
    "these things with her from the store: six spoons of fresh snow peas and a big toy frog."
)


def load_texts(tts: str, seconds: float) -> list[str]:
    """The utterances a speaking listener queues to speak for at least `seconds`."""
    if tts == "tone":
        return [f"440hz {math.ceil(seconds)}s"]
    return [PASSAGE.strip()] * max(1, math.ceil(seconds / PASSAGE_S))


def probe_text(tts: str) -> str:
    return PROBE_TONE if tts == "tone" else PROBE_SPEECH
