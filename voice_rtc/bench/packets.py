"""What a load client keeps of each audio packet, and what the bench makes of it afterwards.

Per packet: when it arrived, its media time (the RTP timestamp, or the WebSocket frame's seq),
its sequence number and its size; appended to flat arrays, nothing else on the hot path. After
the window, `delivery()` turns a session's log into mergeable figures:

- lateness: each frame's nominal arrival is its media time on the session's best offset (the
  smallest arrival-minus-media-time in the window); lateness is how much later it came, and a
  frame is *on time* when that is at most ON_TIME_S. Frames *due* in the window are the 20 ms
  slots of that grid inside it: a frame that never came, or came too late, counts against it.
  A server that falls behind its clock, stalls or bunches frames shows up here, whatever its
  own histogram says.
- jitter: |inter-arrival - media spacing| of consecutive packets (so DTX pauses are no jitter);
  a *gap* is an inter-arrival more than GAP_S longer than its media spacing.
- loss: holes in the sequence numbers (RTP); bytes: payload, and payload plus headers.
"""

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRAME_S = 0.020
MARGIN_S = 1.0  # packets this far outside the window still count for the frames due in it
ON_TIME_S = 0.020  # within a frame of the best the session saw: what a minimal jitter buffer hides
GAP_S = 0.040
HIST_STEP_S = 0.0001  # histograms of lateness and jitter in 0.1 ms bins...
HIST_BINS = 5000  # ...up to 500 ms, and one bin for everything beyond


class PacketLog:
    """Flat arrays, appended to from a packet callback. `rate`: media units per second (48000
    for RTP timestamps of Opus, 50 for WebSocket frame numbers); `media_wrap` and `seq_wrap`:
    where media times and sequence numbers wrap (RTP: 2**32 and 2**16), 0 for never."""

    __slots__ = ("arrivals", "media", "media_wrap", "rate", "seq_wrap", "seqs", "sizes", "wire")

    def __init__(self, rate: float, media_wrap: int = 0, seq_wrap: int = 0) -> None:
        self.rate = rate
        self.media_wrap = media_wrap
        self.seq_wrap = seq_wrap
        self.arrivals = array("d")
        self.media = array("q")
        self.seqs = array("q")
        self.sizes = array("q")  # payload bytes
        self.wire = array("q")  # payload and the headers of its protocol (RTP, or WebSocket)

    def add(self, at: float, media: int, seq: int, size: int, wire: int) -> None:
        self.arrivals.append(at)
        self.media.append(media)
        self.seqs.append(seq)
        self.sizes.append(size)
        self.wire.append(wire)

    def __len__(self) -> int:
        return len(self.arrivals)


def _hist(values: np.ndarray) -> np.ndarray:
    bins = np.minimum((values / HIST_STEP_S).astype(np.int64), HIST_BINS)
    return np.bincount(bins, minlength=HIST_BINS + 1)


def _unwrapped(values: np.ndarray, wrap: int) -> np.ndarray:
    if wrap == 0 or len(values) < 2:
        return values.astype(np.int64)
    steps = np.diff(values.astype(np.int64))
    steps = np.mod(steps + wrap // 2, wrap) - wrap // 2
    return np.concatenate(([0], np.cumsum(steps))) + int(values[0])


@dataclass
class Delivery:
    """Audio delivered to some sessions during a window: sums, and histograms that merge."""

    sessions: int = 0
    expected: int = 0  # frames due in the window (speaking sessions)
    frames: int = 0  # ...of which arrived (at any time near the window)
    on_time: int = 0  # ...of which on time
    packets: int = 0  # packets that arrived in the window
    lost: int = 0
    gaps: int = 0
    max_gap_s: float = 0.0
    payload_bytes: int = 0
    wire_bytes: int = 0
    media_s: float = 0.0  # audio those packets span (media time), for bytes per second of audio
    lateness_hist: list[int] = field(default_factory=lambda: [0] * (HIST_BINS + 1))
    jitter_hist: list[int] = field(default_factory=lambda: [0] * (HIST_BINS + 1))

    def add(self, other: "Delivery") -> None:
        self.sessions += other.sessions
        self.expected += other.expected
        self.frames += other.frames
        self.packets += other.packets
        self.on_time += other.on_time
        self.lost += other.lost
        self.gaps += other.gaps
        self.max_gap_s = max(self.max_gap_s, other.max_gap_s)
        self.payload_bytes += other.payload_bytes
        self.wire_bytes += other.wire_bytes
        self.media_s += other.media_s
        self.lateness_hist = [
            a + b for a, b in zip(self.lateness_hist, other.lateness_hist, strict=True)
        ]
        self.jitter_hist = [a + b for a, b in zip(self.jitter_hist, other.jitter_hist, strict=True)]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Delivery":
        return cls(**body)


def hist_quantile(hist: list[int], q: float) -> float | None:
    """The q-quantile of a histogram made by `delivery` (upper edge of its bin), in seconds;
    None when empty. A quantile beyond the last bin is reported as its lower edge."""
    counts = np.asarray(hist)
    total = int(counts.sum())
    if total == 0:
        return None
    index = int(np.searchsorted(np.cumsum(counts), q * total, side="left"))
    return min(index + 1, HIST_BINS) * HIST_STEP_S


def delivery(log: PacketLog, start: float, end: float) -> Delivery:
    """One session's audio due in [start, end): the frames whose nominal arrival (media time on
    the session's best offset) falls in the window, and the packets that arrived in it."""
    arrivals = np.frombuffer(log.arrivals, dtype=np.float64)
    near = (arrivals >= start - MARGIN_S) & (arrivals < end + MARGIN_S)
    result = Delivery(sessions=1)
    if not near.any():
        result.expected = round((end - start) / FRAME_S)
        return result
    at = arrivals[near]
    media = _unwrapped(np.frombuffer(log.media, dtype=np.int64)[near], log.media_wrap)
    media_s = (media - media[0]) / log.rate
    inside = (at >= start) & (at < end)
    if not inside.any():  # nothing at all in the window: every frame of it was late
        result.expected = round((end - start) / FRAME_S)
        return result
    nominal = media_s + float((at - media_s)[inside].min())
    origin = float(nominal.min())
    slot = np.rint((nominal - origin) / FRAME_S).astype(np.int64)
    # The grid's slots inside the window (a session may start speaking in it).
    first_slot = math.ceil((max(start, origin) - origin) / FRAME_S)
    end_slot = math.ceil((end - origin) / FRAME_S)
    due = (slot >= first_slot) & (slot < end_slot)
    late = np.maximum(at[due] - nominal[due], 0.0)
    result.expected = max(0, end_slot - first_slot)
    result.frames = len(np.unique(slot[due]))  # a frame sent twice (a replay) counts once
    result.on_time = len(np.unique(slot[due][late <= ON_TIME_S]))
    result.lateness_hist = _hist(late).tolist()
    result.packets = int(inside.sum())
    result.payload_bytes = int(np.frombuffer(log.sizes, dtype=np.int64)[near][inside].sum())
    result.wire_bytes = int(np.frombuffer(log.wire, dtype=np.int64)[near][inside].sum())
    spanned = media_s[inside]
    result.media_s = float(spanned.max() - spanned.min()) + FRAME_S
    if result.packets > 1:
        excess = np.diff(at[inside]) - np.diff(media_s[inside])
        result.jitter_hist = _hist(np.abs(excess)).tolist()
        result.gaps = int((excess > GAP_S).sum())
        result.max_gap_s = float(max(0.0, excess.max()))
        seqs = _unwrapped(np.frombuffer(log.seqs, dtype=np.int64)[near][inside], log.seq_wrap)
        steps = np.diff(np.sort(seqs))
        result.lost = int(np.maximum(steps - 1, 0).sum())
    return result
