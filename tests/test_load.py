"""Admission from measured load: the loop's own busy share and the clock's lateness."""

from voice_rtc.load import DEFAULT_STREAM_COST, SAMPLE_S, LoadMonitor


class Clocks:
    """The loop thread's CPU, the process's CPU and the wall clock, moved by the test."""

    def __init__(self) -> None:
        self.loop = self.process = self.wall = 0.0

    def run(self, seconds: float, loop_share: float, process_share: float | None = None) -> None:
        self.wall += seconds
        self.loop += seconds * loop_share
        self.process += seconds * (loop_share if process_share is None else process_share)


def monitor(clocks: Clocks, streams: int = 0) -> LoadMonitor:
    return LoadMonitor(
        lambda: streams,
        max_utilization=0.75,
        max_lateness_s=0.010,
        thread_time=lambda: clocks.loop,
        process_time=lambda: clocks.process,
        wall_time=lambda: clocks.wall,
    )


def settle(load: LoadMonitor, clocks: Clocks, loop_share: float, **kw: float) -> None:
    for _ in range(5):
        clocks.run(SAMPLE_S, loop_share, **kw)
        load.sample()


def test_an_idle_process_admits_and_a_busy_loop_refuses() -> None:
    clocks = Clocks()
    load = monitor(clocks, streams=100)
    settle(load, clocks, 0.10)
    assert load.check(newcomers=1).reason == ""
    settle(load, clocks, 0.80)
    verdict = load.check(newcomers=1)
    assert verdict.reason == "busy" and verdict.retry_after_s > 0


def test_a_burst_of_newcomers_is_counted_before_the_measurement_sees_it() -> None:
    clocks = Clocks()
    load = monitor(clocks)  # no streams measured yet: each newcomer costs the default
    settle(load, clocks, 0.05)
    admitted = 0
    while load.check(newcomers=1).reason == "" and admitted < 10_000:
        load.admitted()
        admitted += 1
    # Room for (75% - 5%) / the default cost, and not one more, although nothing moved yet.
    assert admitted == int((0.75 - 0.05) / DEFAULT_STREAM_COST)


def test_late_ticks_refuse_newcomers_only_while_this_process_is_busy() -> None:
    clocks = Clocks()
    load = monitor(clocks)
    for _ in range(100):
        load.record_lateness(0.030)
    settle(load, clocks, 0.05)  # late, but we are idle: another process starves the machine
    assert load.check(newcomers=1).reason == ""
    settle(load, clocks, 0.40, process_share=0.6)  # late, and our encoding thread is busy
    assert load.check(newcomers=1).reason == "late"


def test_a_few_late_ticks_at_start_say_nothing() -> None:
    clocks = Clocks()
    load = monitor(clocks)
    settle(load, clocks, 0.9)
    load.record_lateness(0.5)  # the first ticks, while the process started up
    assert load.check(newcomers=0).reason != "late"
