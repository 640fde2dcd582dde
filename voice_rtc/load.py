"""How loaded this process is, measured, and whether it should take another session.

An event loop that paces audio for everyone is full well before its CPU reads 100%: past that
every listener's frames go late together. So admission is decided on what the process itself
shows: how full its fullest resource is (the loop thread's CPU time over wall time, the cores it
may run on, or the one thread that encodes everyone's speech, each against its own ceiling)
and how late the clock's ticks left (the 90th percentile: an overloaded loop is late tick after
tick, where a garbage collection or a burst is late once), over the last couple of seconds.
The loop's ceiling is the lower: it must keep room for bursts, or every frame goes late. Encoding
may fill more of the cores: it runs at a lower priority than the loop, seconds ahead of
playback, so what it takes from the loop's ticks is only what they leave.
Lateness counts only while this process is busy itself (half a core or more): a machine starved
by others is no reason to turn listeners away.

Sessions admitted since the last measurement count at the cost a speaking stream has (fullness over
the streams that spoke in the window, or a default while too few do): a newcomer is there to
be spoken to, so a burst that connects first and speaks later cannot all slip in before its
speech shows in the measurement. A client refused only for such newcomers is told to come back
once they are measured (a couple of seconds), not the `RETRY_AFTER_S` an over-busy process says:
a crowd of silent listeners then gets in at the pace the measurement allows.
`max_sessions` stays a hard upper bound.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .audio import FRAME_MS
from .clock import TURNS
from .tasks import cancel_and_wait

SAMPLE_S: Final = 0.5
WINDOW_SAMPLES: Final = 4
WINDOW_S: Final = WINDOW_SAMPLES * SAMPLE_S  # what one measurement spans: two seconds
# A speaking stream's share of a core, until measured: its encoding and its share of the loop
# measure 1.1-1.7% of a core (WebRTC), so a little more, to be safe.
DEFAULT_STREAM_COST: Final = 0.02
FRAMES_PER_SECOND: Final = 1000 // FRAME_MS
MIN_MEASURED_SPEAKERS: Final = 5  # streams that spoke in the window, to tell their cost
RETRY_AFTER_S: Final = 5.0  # what a refused client is told to wait: load changes in seconds
MIN_RETRY_AFTER_S: Final = SAMPLE_S  # told while full of newcomers not measured yet
MIN_LATENESS_SAMPLES: Final = 50  # turns of the clock before lateness says anything
LATENESS_QUANTILE: Final = 0.9
BUSY_ENOUGH_TO_BLAME: Final = 0.5  # of a core: lateness below it is someone else's doing


@dataclass(frozen=True)
class Verdict:
    reason: str  # "" when there is room; else why not: "late" or "busy"
    retry_after_s: float = 0.0


ROOM: Final = Verdict("")


class LoadMonitor:
    def __init__(
        self,
        speech_frames: Callable[[], int],
        encoder_time: Callable[[], float],
        cores: float = 1,
        max_loop_utilization: float = 0.75,
        max_cpu_utilization: float = 0.90,
        max_lateness_s: float = 0.010,
        thread_time: Callable[[], float] = time.thread_time,
        process_time: Callable[[], float] = time.process_time,
        wall_time: Callable[[], float] = time.monotonic,
    ) -> None:
        """`speech_frames`: how many frames of speech the process has sent, so far;
        `encoder_time`: CPU time its encoding thread has spent working, so far (seconds);
        `cores`: how many cores it may count on (its share, where several processes run)."""
        self._speech_frames = speech_frames
        self._encoder_time = encoder_time
        self._cores = cores
        self._max_loop_utilization = max_loop_utilization
        self._max_cpu_utilization = max_cpu_utilization
        # a newcomer at the default cost, as a share of the tighter ceiling
        self._default_cost = DEFAULT_STREAM_COST / min(max_loop_utilization, max_cpu_utilization)
        self._max_lateness_s = max_lateness_s
        self._thread_time = thread_time
        self._process_time = process_time
        self._wall_time = wall_time
        # (loop thread CPU, process CPU, encoder busy, wall) seconds, speech frames: each sample
        self._samples: deque[tuple[float, float, float, float, int]] = deque(maxlen=WINDOW_SAMPLES)
        self._lateness: deque[float] = deque(maxlen=int(WINDOW_S * FRAMES_PER_SECOND * TURNS))
        self._admitted: deque[float] = deque()  # when sessions were admitted, recently
        self._task: asyncio.Task[None] | None = None
        self.utilization = 0.0  # of the loop thread
        self.process_utilization = 0.0  # every thread of the process, in cores
        self.encoder_utilization = 0.0  # of the encoding thread
        self.speaking = 0.0  # streams' worth of speech sent over the window
        self.stream_cost = self._default_cost  # of `fullness`, per speaking stream

    @property
    def fullness(self) -> float:
        """How full this process is, 1 at its ceiling: its loop thread's time, the cores it may
        run on, or its encoding thread's time, each over its ceiling, whichever is fullest."""
        return max(
            self.utilization / self._max_loop_utilization,
            self.process_utilization / self._cores / self._max_cpu_utilization,
            self.encoder_utilization / self._max_cpu_utilization,
        )

    def status(self) -> dict[str, float]:
        """What operators see of it (in /ready)."""
        return {
            "fullness_percent": round(self.fullness * 100, 1),
            "cores": round(self._cores, 2),
            "loop_percent": round(self.utilization * 100, 1),
            "process_percent": round(self.process_utilization * 100, 1),
            "encoder_percent": round(self.encoder_utilization * 100, 1),
            "speaking_streams": round(self.speaking, 1),
            "lateness_p90_ms": round(self.lateness_s * 1000, 2),
            "recently_admitted": len(self._admitted),
        }

    def record_lateness(self, seconds: float) -> None:
        """How late a tick's last frame left (the clock reports each tick)."""
        self._lateness.append(seconds)

    @property
    def lateness_s(self) -> float:
        """The ticks' lateness over the window, at its 90th percentile: an overloaded loop is
        late tick after tick, where a garbage collection or a burst is late once."""
        if len(self._lateness) < MIN_LATENESS_SAMPLES:
            return 0.0
        ordered = sorted(self._lateness)
        return ordered[int(LATENESS_QUANTILE * (len(ordered) - 1))]

    def check(self, newcomers: int = 0) -> Verdict:
        """Is there room here (for `newcomers` more sessions)?"""
        late = self.lateness_s > self._max_lateness_s
        if late and self.process_utilization >= BUSY_ENOUGH_TO_BLAME:
            return Verdict("late", RETRY_AFTER_S)
        now = self._wall_time()
        while self._admitted and now - self._admitted[0] > WINDOW_S:
            self._admitted.popleft()
        measured = self.fullness + newcomers * self.stream_cost
        if measured + len(self._admitted) * self.stream_cost <= 1:
            return ROOM
        if measured > 1:
            return Verdict("busy", RETRY_AFTER_S)
        # Full only of sessions too new to be measured: once the oldest of them is (what it
        # costs may be little: silent listeners are cheap), there may be room again.
        measured_at = self._admitted[0] + WINDOW_S + SAMPLE_S
        return Verdict("busy", max(MIN_RETRY_AFTER_S, measured_at - now))

    def admitted(self) -> None:
        """A session started here (after `check` said there was room): count it until the
        measurement sees what it costs."""
        self._admitted.append(self._wall_time())

    def sample(self) -> None:
        """Take one measurement: each resource's busy share, and the speech sent, since the
        window's first sample."""
        self._samples.append(
            (
                self._thread_time(),
                self._process_time(),
                self._encoder_time(),
                self._wall_time(),
                self._speech_frames(),
            )
        )
        if len(self._samples) < 2:
            return
        (loop0, process0, encoder0, wall0, frames0) = self._samples[0]
        (loop1, process1, encoder1, wall1, frames1) = self._samples[-1]
        elapsed = max(wall1 - wall0, 1e-9)
        self.utilization = (loop1 - loop0) / elapsed
        self.process_utilization = (process1 - process0) / elapsed
        self.encoder_utilization = (encoder1 - encoder0) / elapsed
        self.speaking = (frames1 - frames0) / (FRAMES_PER_SECOND * elapsed)
        if self.speaking >= MIN_MEASURED_SPEAKERS:
            # Silent streams' cost is counted in too: an over-estimate, on the safe side.
            self.stream_cost = max(self._default_cost / 4, self.fullness / self.speaking)
        else:
            # Too few speak to tell, so back to the default: a cost read from another moment
            # (a crowd's setup shared among the last few speakers, five times what one costs)
            # would keep turning listeners away from a process with nothing to do.
            self.stream_cost = self._default_cost

    def start(self) -> None:
        """Sample on the loop thread (thread_time measures the thread that calls it)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="load-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)
