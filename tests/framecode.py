"""Which frames of a `framecode` utterance a listener played, read back from its recording.

Frame k of the utterance is a sine at framecode_hz(k). 10 ms windows every 5 ms are projected on
the 32 frequencies (each a whole number of cycles per window, so they are orthogonal); a window
inside one frame names it clearly, one straddling two frames is ambiguous and skipped. Runs of the
same symbol are one frame. Symbols repeat every 32 frames, so each is unwrapped to the frame
nearest to where playback could be: at most `max_back` frames back (a resume replays) and some
frames forward (a skip, which the caller counts).

A frame that does not read clearly is not necessarily missing: a decoder that starts in the
middle of a stream (after a resume) decodes its first frames with less fidelity. Where the
recording has room for the frames between two clear ones (a jump of two frames 40 ms apart),
they were played, unclearly; where it has none (two frames back to back), they were skipped.
"""

from dataclasses import dataclass, field

import numpy as np

from tests.signal_analysis import samples
from voice_rtc.audio import FRAME_SAMPLES, SAMPLE_RATE
from voice_rtc.tts.tone import FRAMECODE_SYMBOLS, framecode_hz

WINDOW = SAMPLE_RATE // 100  # 220 samples: 10 ms
HOP = WINDOW // 2
_t = np.arange(WINDOW) / SAMPLE_RATE
_BASIS = np.exp(-2j * np.pi * np.outer(framecode_hz(np.arange(FRAMECODE_SYMBOLS)), _t))


@dataclass(frozen=True)
class Heard:
    symbol: int
    start: int  # sample where its first clear window starts
    end: int  # sample where its last clear window ends


def symbols(pcm: bytes | bytearray, min_rms: float = 3000.0, clarity: float = 0.85) -> list[Heard]:
    """The frame symbols heard, one per frame played clearly, with where they were heard."""
    x = samples(pcm)
    starts = np.arange(0, len(x) - WINDOW, HOP)
    if len(starts) == 0:
        return []
    windows = x[starts[:, None] + np.arange(WINDOW)]
    energy = np.abs(windows @ _BASIS.T) ** 2
    total = energy.sum(axis=1)
    rms = np.sqrt((windows**2).mean(axis=1))
    best = energy.argmax(axis=1)
    clear = (rms > min_rms) & (energy.max(axis=1) > clarity * total)
    heard: list[Heard] = []
    previous = -1
    for start, symbol, ok in zip(starts, best, clear, strict=True):
        if not ok:
            previous = -1  # a gap or a boundary: the next clear window may start a new frame
            continue
        if symbol != previous:
            heard.append(Heard(int(symbol), int(start), int(start) + WINDOW))
        else:
            heard[-1] = Heard(int(symbol), heard[-1].start, int(start) + WINDOW)
        previous = symbol
    return heard


@dataclass
class Playback:
    frames: list[int] = field(default_factory=list)  # utterance frame indices, in play order
    skipped: list[int] = field(default_factory=list)  # frames jumped over
    unclear: list[int] = field(default_factory=list)  # played where they belong, not clearly
    repeats: list[int] = field(default_factory=list)  # frames replayed, at each step back

    @property
    def covered(self) -> set[int]:
        return set(self.frames)


def unwrap(heard: list[Heard], max_back: int = 16) -> Playback:
    """Frame indices from symbols, assuming playback never steps back more than `max_back`."""
    playback = Playback()
    previous = furthest = -1
    previous_end = 0
    for item in heard:
        lowest = previous - max_back
        frame = lowest + (item.symbol - lowest) % FRAMECODE_SYMBOLS
        if frame > furthest + 1:
            between = range(furthest + 1, frame)
            # Room for them in the recording? Clear windows lie on one grid of hops, and the
            # last of a frame ends, the first of the next starts, within a hop (5 ms) of their
            # edge: a skip leaves less than a window (10 ms) between two clear neighbours.
            gap = item.start - previous_end
            room = max(1, round(gap / FRAME_SAMPLES)) if previous >= 0 and gap >= WINDOW else 0
            played = min(len(between), max(room, 0)) if frame == previous + len(between) + 1 else 0
            playback.unclear.extend(between[:played])
            playback.skipped.extend(between[played:])
            playback.frames.extend(between[:played])
        elif frame <= previous:  # a step back: from here to `furthest` is heard again
            playback.repeats.append(furthest - frame + 1)
        playback.frames.append(frame)
        previous, furthest = frame, max(furthest, frame)
        previous_end = item.end
    return playback
