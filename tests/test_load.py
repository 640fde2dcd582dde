"""Admission from measured load: the fullest resource (loop, cores, encoder, each against its
ceiling), the cost of a speaking stream, and the clock's lateness."""

import os

from voice_rtc.config import Settings
from voice_rtc.load import DEFAULT_STREAM_COST, RETRY_AFTER_S, SAMPLE_S, LoadMonitor
from voice_rtc.media import Media


class Clocks:
    """The loop thread's CPU, the process's CPU, the encoder's busy time, the wall clock and
    the speech frames sent, moved by the test."""

    def __init__(self, speaking: int = 0) -> None:
        self.loop = self.process = self.encoder = self.wall = 0.0
        self.speaking = speaking  # streams sending speech
        self.frames = 0

    def run(
        self,
        seconds: float,
        loop_share: float,
        process_share: float | None = None,
        encoder_share: float = 0.0,
    ) -> None:
        self.wall += seconds
        self.loop += seconds * loop_share
        self.process += seconds * (loop_share if process_share is None else process_share)
        self.encoder += seconds * encoder_share
        self.frames += round(seconds * 50 * self.speaking)


def monitor(clocks: Clocks) -> LoadMonitor:
    return LoadMonitor(
        lambda: clocks.frames,
        lambda: clocks.encoder,
        max_loop_utilization=0.75,
        max_cpu_utilization=0.90,
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
    clocks = Clocks(speaking=10)
    load = monitor(clocks)
    settle(load, clocks, 0.10)
    assert load.check(newcomers=1).reason == ""
    settle(load, clocks, 0.80)
    verdict = load.check(newcomers=1)
    assert verdict.reason == "busy" and verdict.retry_after_s > 0


def test_a_burst_of_newcomers_is_counted_before_the_measurement_sees_it() -> None:
    clocks = Clocks()
    load = monitor(clocks)  # nobody speaking yet: each newcomer costs the default
    settle(load, clocks, 0.04)
    admitted = 0
    while load.check(newcomers=1).reason == "" and admitted < 10_000:
        load.admitted()
        admitted += 1
    # Room for (75% - 4%) / the default cost, and not one more, although nothing moved yet.
    assert admitted == int((0.75 - 0.04) / DEFAULT_STREAM_COST)


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


def test_newcomers_count_at_what_a_speaking_stream_is_measured_to_cost() -> None:
    clocks = Clocks(speaking=10)
    load = monitor(clocks)
    settle(load, clocks, 0.50)  # 10 speaking streams keep the loop half busy: 5% each
    assert abs(load.stream_cost - 0.05 / 0.75) < 1e-6  # of the loop's 75%
    admitted = 0
    while load.check(newcomers=1).reason == "" and admitted < 100:
        load.admitted()
        admitted += 1
    assert admitted == 5  # (75% - 50%) / 5%: each newcomer is expected to speak


def test_once_too_few_speak_to_tell_newcomers_count_at_the_default_again() -> None:
    clocks = Clocks(speaking=5)
    load = monitor(clocks)
    settle(load, clocks, 0.50)  # five speak while a crowd's setup keeps the loop busy: 10% each
    assert abs(load.stream_cost - 0.10 / 0.75) < 1e-6
    clocks.speaking = 0  # they have finished, and the crowd is in
    settle(load, clocks, 0.05)
    assert load.stream_cost == DEFAULT_STREAM_COST / 0.75
    admitted = 0
    while load.check(newcomers=1).reason == "" and admitted < 100:
        load.admitted()
        admitted += 1
    assert admitted == int((0.75 - 0.05) / DEFAULT_STREAM_COST)  # not (75% - 5%) / 10%


def test_a_saturated_encoder_refuses_newcomers_while_the_loop_is_idle() -> None:
    """Speech is encoded on one thread for everyone: when it is full, speech comes late
    although the loop and the clock look fine."""
    clocks = Clocks(speaking=40)
    load = monitor(clocks)
    settle(load, clocks, 0.15, process_share=0.6, encoder_share=0.95)
    verdict = load.check(newcomers=1)
    assert verdict.reason == "busy"
    assert load.status()["encoder_percent"] == 95.0
    assert load.status()["speaking_streams"] == 40.0


def test_encoding_may_fill_more_of_the_core_than_the_loop_may() -> None:
    """One core, 60 speaking: the loop a quarter busy, the encoder 55%, 80% of the core in all.
    Under the loop's 75% that would be full; encoding runs below the loop, so the cores' ceiling
    is 90% and there is room for (90% - 80%) / (80% / 60) = 7 more."""
    clocks = Clocks(speaking=60)
    load = monitor(clocks)
    settle(load, clocks, 0.25, process_share=0.80, encoder_share=0.55)
    admitted = 0
    while load.check(newcomers=1).reason == "" and admitted < 100:
        load.admitted()
        admitted += 1
    assert admitted == 7
    settle(load, clocks, 0.25, process_share=0.92, encoder_share=0.67)
    assert load.check(newcomers=1).reason == "busy"
    assert load.status()["fullness_percent"] == round(92 / 90 * 100, 1)


def test_a_process_full_only_of_unmeasured_newcomers_says_to_come_back_once_they_are() -> None:
    clocks = Clocks(speaking=10)
    load = monitor(clocks)
    settle(load, clocks, 0.20)
    while load.check(newcomers=1).reason == "":
        load.admitted()
    early = load.check(newcomers=1)
    assert early.reason == "busy" and early.retry_after_s <= 4 * SAMPLE_S + SAMPLE_S
    # The newcomers turned out silent: measured, they cost nothing, and there is room again.
    clocks.run(early.retry_after_s, 0.20)
    load.sample()
    assert load.check(newcomers=1).reason == ""
    # A process busy by measurement says to wait longer: its load changes in seconds.
    settle(load, clocks, 0.80)
    assert load.check(newcomers=1).retry_after_s == RETRY_AFTER_S


async def test_workers_count_on_their_share_of_the_cores_only() -> None:
    """Two workers on this machine's cores: each is full at 90% of half of them, or together
    they would take on nearly twice what the machine has."""
    cores = len(os.sched_getaffinity(0))
    for workers in (1, 2):
        media = Media(Settings(), workers=workers)
        try:
            assert media.load.status()["cores"] == round(cores / workers, 2)
        finally:
            await media.close()
    clocks = Clocks(speaking=50)
    load = LoadMonitor(
        lambda: clocks.frames,
        lambda: clocks.encoder,
        cores=0.5,
        thread_time=lambda: clocks.loop,
        process_time=lambda: clocks.process,
        wall_time=lambda: clocks.wall,
    )
    settle(load, clocks, 0.20, process_share=0.50, encoder_share=0.30)  # a whole half a core
    assert load.check(newcomers=1).reason == "busy"
