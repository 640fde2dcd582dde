"""The pacer against a fake clock: no real sleeping, exact arithmetic."""

import asyncio
import collections
import itertools

from voice_rtc.audio import FRAME_NS
from voice_rtc.clock import TURNS, Pacer, Ticker


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


class SteppingClock(FakeClock):
    """A fake clock whose sleeps also let the event loop run (the ticker is a task)."""

    async def sleep_until(self, deadline_ns: int) -> None:
        await super().sleep_until(deadline_ns)
        await asyncio.sleep(0)


class Recorder:
    """A stream that records when each tick reached it."""

    def __init__(self, name: str, log: list[tuple[str, int]], clock: FakeClock) -> None:
        self.name, self.log, self.clock = name, log, clock

    def on_tick(self) -> None:
        self.log.append((self.name, self.clock.now))


class Counter:
    """The last stream: says when the clock has ticked `ticks` times."""

    def __init__(self, ticks: int) -> None:
        self.left = ticks
        self.done = asyncio.Event()

    def on_tick(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def run_ticks(ticker: Ticker, ticks: int) -> None:
    counter = Counter(ticks)
    ticker.add(counter)
    ticker.start()
    await counter.done.wait()
    await ticker.stop()
    ticker.discard(counter)


async def test_one_clock_spreads_its_streams_over_turns_each_on_its_own_20_ms_grid() -> None:
    clock = SteppingClock(0)
    ticker = Ticker(clock)
    log: list[tuple[str, int]] = []
    for name in "abcdefgh":
        ticker.add(Recorder(name, log, clock))
    await run_ticks(ticker, 50)
    # Each joined the turn with the fewest streams; a turn ticks its own in the order they joined.
    assert [name for name, _ in log[:8]] == list("aebfcgdh")
    assert set(collections.Counter(at for _, at in log).values()) == {2}  # two streams a turn
    for name in "abcdefgh":
        times = [at for stream, at in log if stream == name][1:]  # then each is a wake-up
        assert len(times) >= 48
        assert {b - a for a, b in itertools.pairwise(times)} == {FRAME_NS}  # on its grid, no drift
    turns = sorted({at for _, at in log})[1 : 1 + TURNS]
    assert {b - a for a, b in itertools.pairwise(turns)} == {FRAME_NS // TURNS}


async def test_a_stream_that_fails_is_dropped_and_the_others_go_on() -> None:
    clock = SteppingClock(0)
    ticker = Ticker(clock)
    log: list[tuple[str, int]] = []

    class Broken:
        def on_tick(self) -> None:
            raise RuntimeError("a bug in one stream")

    ticker.add(Broken())
    ticker.add(Recorder("ok", log, clock))
    await run_ticks(ticker, 10)
    assert len(ticker) == 1 and len(log) >= 10


class Until:
    """A stream that says when the clock has reached a frame."""

    def __init__(self, ticker: Ticker, frame: int) -> None:
        self.ticker, self.frame = ticker, frame
        self.reached = asyncio.Event()

    def on_tick(self) -> None:
        if self.ticker.frame >= self.frame:
            self.reached.set()


async def until_frame(ticker: Ticker, frame: int) -> None:
    """Let a running clock tick until it reaches `frame`."""
    until = Until(ticker, frame)
    ticker.add(until)
    try:
        async with asyncio.timeout(10):
            await until.reached.wait()
    finally:
        ticker.discard(until)


class Sleeper:
    """A stream that notes the clock's frame each time it is ticked, and may fall asleep."""

    def __init__(self, ticker: Ticker, sleep_frames: int = 0) -> None:
        self.ticker, self.sleep_frames = ticker, sleep_frames
        self.ticked_in: list[int] = []

    def on_tick(self) -> None:
        self.ticked_in.append(self.ticker.frame)
        if self.sleep_frames:
            self.ticker.sleep(self, self.sleep_frames)


async def test_a_sleeping_stream_is_ticked_only_when_its_alarm_rings_or_it_is_woken() -> None:
    clock = SteppingClock(0)
    ticker = Ticker(clock)
    sleeper, awake = Sleeper(ticker, sleep_frames=10), Sleeper(ticker)
    ticker.add(sleeper)
    ticker.add(awake)
    ticker.start()
    await until_frame(ticker, 35)
    assert sleeper.ticked_in == [0, 10, 20, 30]  # on its alarms, in its own turn, no drift
    assert len(awake.ticked_in) >= 35  # the others are ticked as ever
    sleeper.sleep_frames = 0
    woken_in = ticker.frame
    ticker.wake(sleeper)
    await until_frame(ticker, woken_in + 5)
    assert sleeper.ticked_in[4] in (woken_in, woken_in + 1)  # at its turn's next slot
    assert {b - a for a, b in itertools.pairwise(sleeper.ticked_in[4:])} == {1}  # awake again
    sleeper.sleep_frames = 10
    await until_frame(ticker, woken_in + 8)
    ticker.discard(sleeper)  # asleep, then gone: its alarm rings for nobody
    ticked = len(sleeper.ticked_in)
    await until_frame(ticker, woken_in + 30)
    await ticker.stop()
    assert len(sleeper.ticked_in) == ticked and len(ticker) == 1


async def test_an_alarm_in_slots_a_stall_skipped_still_rings() -> None:
    clock = SteppingClock(0)
    ticker = Ticker(clock, max_burst=2)
    sleeper = Sleeper(ticker, sleep_frames=5)
    ticker.add(sleeper)
    ticker.start()
    await until_frame(ticker, 1)
    sleeper.sleep_frames = 0
    clock.now += 2_000_000_000  # two seconds stalled: its alarm's slot is skipped
    await until_frame(ticker, 110)
    await ticker.stop()
    assert sleeper.ticked_in[0] == 0 and sleeper.ticked_in[1] > 5  # it rang late, after it
    assert len(sleeper.ticked_in) > 3  # and the stream ticks on


async def test_a_newcomer_joins_the_turn_with_the_fewest_streams_counting_the_asleep() -> None:
    clock = SteppingClock(0)
    ticker = Ticker(clock)
    log: list[tuple[str, int]] = []
    streams = [Recorder(str(n), log, clock) for n in range(3 * TURNS)]
    for stream in streams:
        ticker.add(stream)  # stream n in turn n % TURNS
    for stream in streams[::TURNS]:
        ticker.sleep(stream, 1000)  # the first turn's three sleep...
    for n in range(TURNS + 1, 3 * TURNS):
        if n % TURNS:
            ticker.discard(streams[n])  # ...and each other turn keeps one, awake
    ticker.add(Recorder("newcomer", log, clock))
    ticker.start()
    await until_frame(ticker, 3)
    await ticker.stop()
    ticked_at = {name: {at for who, at in log if who == name} for name in ("1", "newcomer")}
    assert ticked_at["newcomer"] == ticked_at["1"]  # beside the one awake, not the three asleep
