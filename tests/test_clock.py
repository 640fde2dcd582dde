"""The pacer against a fake clock: no real sleeping, exact arithmetic."""

import itertools

from voice_rtc.audio import FRAME_NS
from voice_rtc.clock import Pacer


class FakeClock:
    """Time moves only when someone sleeps (or a test stalls it)."""

    def __init__(self, start_ns: int = 123_456_789) -> None:
        self.now = start_ns

    def now_ns(self) -> int:
        return self.now

    async def sleep_until(self, deadline_ns: int) -> None:
        # A real sleep wakes a little late; the pacer must not let that accumulate.
        self.now = max(self.now, deadline_ns + 137_000)


async def test_no_drift_after_thirty_simulated_minutes() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    await pacer.tick()
    t0 = clock.now
    frames = 30 * 60 * 50
    first_lateness = await pacer.tick()
    for _ in range(frames - 1):
        last_lateness = await pacer.tick()
    # Every wake-up is 137 us late, and it never adds up: the last frame of the half hour is
    # exactly as late as the first, and leaves at t0 + n * 20 ms + 137 us.
    drift = last_lateness - first_lateness
    assert drift == 0
    assert clock.now == t0 + frames * FRAME_NS + 137_000
    assert pacer.stats.ticks == frames + 1
    assert pacer.stats.late == 0 and pacer.stats.skipped == 0


async def test_catches_up_after_a_stall_without_drift_and_counts_late_frames() -> None:
    clock = FakeClock(0)
    pacer = Pacer(clock, max_burst=10, late_after_ns=FRAME_NS // 2)
    for _ in range(100):
        await pacer.tick()
    clock.now += 95_000_000  # the event loop stalls for 95 ms
    sent_at = []
    for _ in range(100):
        await pacer.tick()
        sent_at.append(clock.now)
    # The stall ends at 2.075137 s: frames due at 2.00, 2.02, 2.04 and 2.06 s are overdue.
    stall_end = 99 * FRAME_NS + 137_000 + 95_000_000
    assert sent_at[:5] == [stall_end] * 4 + [104 * FRAME_NS + 137_000]
    assert pacer.stats.late == 4
    # ...and the grid resumes exactly where it was.
    assert sent_at[-1] == 199 * FRAME_NS + 137_000
    assert pacer.stats.skipped == 0


async def test_a_stall_beyond_the_burst_delays_audio_rather_than_flooding() -> None:
    clock = FakeClock(0)
    pacer = Pacer(clock, max_burst=5)
    await pacer.tick()
    clock.now += 1_000_000_000  # one second stalled: 50 frames overdue
    sent_at = []
    for _ in range(20):
        await pacer.tick()
        sent_at.append(clock.now)
    assert sent_at.count(sent_at[0]) == 6  # the late frame and max_burst more, no more
    assert pacer.stats.skipped == 44
    gaps = {b - a for a, b in itertools.pairwise(sent_at[6:])}
    assert gaps == {FRAME_NS}  # then back to one frame per 20 ms on the shifted grid
