"""Drift-free pacing: frame n is due at t0 + n * period on a monotonic clock.

Deadlines are computed from the frame count in integer nanoseconds, never by adding periods to
the previous wake-up, so sleeping late never shifts the schedule: after a stall the pacer emits
the overdue frames at once (at most `max_burst` extra; beyond that it skips ahead, delaying audio
rather than dropping it, since a skipped slot carries no frame) and is back on the grid.
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from . import metrics
from .audio import FRAME_NS


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
            metrics.PACING_SKIPPED.inc(skip)
            lateness -= skip * self._period_ns
        if lateness > self._late_after_ns:
            self.stats.late += 1
        self.stats.ticks += 1
        self._slot += 1
        return lateness
