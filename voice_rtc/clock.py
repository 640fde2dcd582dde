"""Drift-free pacing: frame n is due at t0 + n * period on a monotonic clock, and the process's
one clock (`Ticker`) that hands every stream its next frame on that grid.

Deadlines are computed from the frame count in integer nanoseconds, never by adding periods to
the previous wake-up, so sleeping late never shifts the schedule: after a stall the pacer emits
the overdue frames at once (at most `max_burst` extra; beyond that it skips ahead, delaying audio
rather than dropping it, since a skipped slot carries no frame) and is back on the grid.

One clock for every session, not a sleeping coroutine per stream: a tick costs one timer however
many listeners there are. It turns every 5 ms, each turn ticking a quarter of the streams (each
stream keeps its turn, so its frames are exactly 20 ms apart): a pass over every stream at once
would make the last one's frame wait for all the others' sends, a millisecond per forty
listeners. A stream with nothing to send for a while (a silent listener: most of them, most of
the time) sleeps off the clock, costing nothing per tick, until its alarm or a wake-up.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from . import metrics
from .audio import FRAME_NS
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

TURNS: Final = 4  # per 20 ms frame: the clock's streams are spread over this many turns


class Clock(Protocol):
    def now_ns(self) -> int: ...

    async def sleep_until(self, deadline_ns: int) -> None: ...


class MonotonicClock:
    """The real clock: time.monotonic_ns and asyncio.sleep."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep_until(self, deadline_ns: int) -> None:
        delay_ns = deadline_ns - time.monotonic_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)


@dataclass
class PacerStats:
    ticks: int = 0
    late: int = 0  # frames emitted more than `late_after_ns` past their deadline
    skipped: int = 0  # grid slots given up after a stall longer than the burst allows


class Pacer:
    def __init__(
        self,
        clock: Clock,
        period_ns: int = FRAME_NS,
        max_burst: int = 5,
        late_after_ns: int = FRAME_NS // 2,
    ) -> None:
        self._clock = clock
        self._period_ns = period_ns
        self._max_burst = max_burst
        self._late_after_ns = late_after_ns
        self._t0_ns: int | None = None
        self._slot = 0
        self.slot = 0  # the one the last tick released (its deadline: `deadline_ns(slot)`)
        self.stats = PacerStats()

    def deadline_ns(self, slot: int) -> int:
        if self._t0_ns is None:
            raise RuntimeError("the pacer has not started")
        return self._t0_ns + slot * self._period_ns

    async def tick(self) -> int:
        """Wait for the next frame's deadline; return how late (ns) the frame is."""
        now = self._clock.now_ns()
        if self._t0_ns is None:
            self._t0_ns = now
        deadline = self.deadline_ns(self._slot)
        if now < deadline:
            await self._clock.sleep_until(deadline)
            now = self._clock.now_ns()
        lateness = now - deadline
        overdue_slots = lateness // self._period_ns
        if overdue_slots > self._max_burst:
            skip = overdue_slots - self._max_burst
            self._slot += skip
            self.stats.skipped += skip
            metrics.COUNTERS.pacing_skipped += skip
            lateness -= skip * self._period_ns
        if lateness > self._late_after_ns:
            self.stats.late += 1
        self.stats.ticks += 1
        self.slot = self._slot
        self._slot += 1
        return lateness


class Stream(Protocol):
    def on_tick(self) -> None:
        """Send this slot's frame now (or nothing). Must not block: it runs inside the tick."""


class Ticker:
    """The process's one 20 ms clock, in `turns` turns. A stream joins the turn with the fewest
    streams and stays in it; each turn calls its streams' `on_tick`, in the order they joined
    (or last woke), then measures how late the last of their frames left. (`max_burst`: in
    frames.)

    A stream may `sleep` for some frames: it is not ticked until then, or until `wake`. Frames
    count on the clock's grid (`frame`) whether or not a stream was ticked in them.
    """

    def __init__(self, clock: Clock | None = None, max_burst: int = 5, turns: int = TURNS) -> None:
        self._clock = clock or MonotonicClock()
        self._pacer = Pacer(self._clock, FRAME_NS // turns, max_burst * turns)
        self._turns: list[dict[int, Stream]] = [{} for _ in range(turns)]
        self._turn_of: dict[int, int] = {}  # stream id -> its turn
        self._members = [0] * turns  # streams in each turn, asleep or not
        self._asleep: dict[int, int] = {}  # stream id -> the slot its alarm rings in
        self._alarms: dict[int, list[Stream]] = {}  # slot -> streams whose alarm rings then
        self._last_slot = -1  # the last slot ticked: alarms of slots a stall skipped ring late
        self._task: asyncio.Task[None] | None = None
        self.on_lateness: Callable[[float], None] = lambda _seconds: None

    def __len__(self) -> int:
        return len(self._turn_of)

    @property
    def frame(self) -> int:
        """The 20 ms frame the clock is in: it counts every frame since the clock started."""
        return self._pacer.slot // len(self._turns)

    def add(self, stream: Stream) -> None:
        if id(stream) not in self._turn_of:
            # By members, not the awake: a turn of sleepers is as full once they wake.
            turn = min(range(len(self._turns)), key=self._members.__getitem__)
            self._members[turn] += 1
            self._turn_of[id(stream)] = turn
            self._turns[turn][id(stream)] = stream

    def discard(self, stream: Stream) -> None:
        turn = self._turn_of.pop(id(stream), None)
        if turn is not None:
            self._members[turn] -= 1
            self._turns[turn].pop(id(stream), None)
        self._asleep.pop(id(stream), None)  # its alarm, if set, rings for nobody

    def sleep(self, stream: Stream, frames: int) -> None:
        """Tick `stream` next `frames` frames from the one it was last ticked in (or at `wake`)."""
        turn = self._turn_of.get(id(stream))
        if turn is None:
            return
        slot = self._pacer.slot
        alarm = slot - (slot - turn) % len(self._turns) + frames * len(self._turns)
        self._turns[turn].pop(id(stream), None)
        self._asleep[id(stream)] = alarm
        self._alarms.setdefault(alarm, []).append(stream)

    def wake(self, stream: Stream) -> None:
        """Tick `stream` again from its turn's next slot on (it may sleep again then)."""
        if self._asleep.pop(id(stream), None) is not None:
            self._turns[self._turn_of[id(stream)]][id(stream)] = stream

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._pacer.tick()
            slot = self._pacer.slot
            self._ring_alarms(slot)
            # By the slot, not a count of wake-ups: a stall skipped past a turn skips it.
            streams = self._turns[slot % len(self._turns)]
            if not streams:
                continue
            for stream in list(streams.values()):
                try:
                    stream.on_tick()
                except Exception:
                    log.exception("stream_tick_failed")
                    self.discard(stream)
            # WebRTC senders run right after this tick's callbacks: a callback queued behind
            # them sees when the last frame of the tick really left.
            loop.call_soon(self._record, self._pacer.deadline_ns(slot))

    def _ring_alarms(self, slot: int) -> None:
        """Wake the streams whose alarm rings in `slot`, or rang in a slot a stall skipped."""
        due: Sequence[int] = range(self._last_slot + 1, slot + 1)
        if len(due) > len(self._alarms):  # a long stall: look at the alarms, not every slot
            due = sorted(alarm for alarm in self._alarms if alarm <= slot)
        for ringing in due:
            for stream in self._alarms.pop(ringing, ()):
                if self._asleep.get(id(stream)) == ringing:  # not woken, gone or re-slept since
                    self.wake(stream)
        self._last_slot = slot

    def _record(self, deadline_ns: int) -> None:
        lateness_s = (self._clock.now_ns() - deadline_ns) / 1e9
        metrics.PACING_LATENESS.observe(lateness_s)
        self.on_lateness(lateness_s)
