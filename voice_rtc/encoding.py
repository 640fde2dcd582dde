"""The process's encoding thread: every session's batches of frames, the urgent ones first.

One thread, not a pool: the process paces its audio on one core, and each thread more would
only contend with the event loop for the GIL (held between libopus calls) while adding
no throughput there; every core is used by running a process per core. Urgent batches (an
utterance's first audio, or a playout about to run dry) go ahead of the rest, so a newcomer's
first words do not wait behind the lookahead of everyone already speaking.

The thread runs at a lower priority than the event loop (Linux: a nicer thread). Where both
share a core, the loop, which must hand out every frame within milliseconds of its deadline,
then takes the core the moment it wakes, and the encoder, seconds of lookahead ahead of
playback, has what the loop leaves: at the same priority they took turns, and the loop's ticks
waited for the encoder's (tens of ms late at the 90th percentile with thirty sessions speaking).
"""

import asyncio
import itertools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
URGENT, ROUTINE = 0, 1
_STOP = -1  # ahead of everything
NICENESS: Final = 10  # added to the encoding thread's: the event loop goes first (see the top)


class EncodingThread:
    def __init__(self, name: str = "opus") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()  # first come, first served within a priority
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # CPU time spent working, so far: how much of a core it takes (its wall time would count
        # the time it gave way to the loop, too).
        self.busy_s = 0.0
        self._thread.start()

    async def run(self, work: Callable[[], T], urgent: bool = False) -> T:
        """`work()` on the thread; its result here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((URGENT if urgent else ROUTINE, next(self._order), (work, loop, future)))
        return await future

    def stop(self) -> None:
        """Stop after the batch in hand; what is queued is dropped (its awaiters are gone)."""
        self._queue.put((_STOP, next(self._order), None))
        self._thread.join(timeout=5)

    def _run(self) -> None:
        _give_way()
        while True:
            priority, _, item = self._queue.get()
            if priority == _STOP:
                return
            work, loop, future = item
            started = time.thread_time()
            try:
                result = work()
            except Exception as exc:  # handed to the awaiter, which decides
                _deliver(loop, future.set_exception, future, exc)
            else:
                _deliver(loop, future.set_result, future, result)
            finally:
                self.busy_s += time.thread_time() - started


def _give_way() -> None:
    """Make the calling thread (only) nicer, where the OS can (Linux: a thread is a task)."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.nice(0) + NICENESS)
    except OSError:
        log.warning("encoder_priority_unchanged", exc_info=True)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[Any], None],
    future: "asyncio.Future[Any]",
    value: Any,
) -> None:
    def settle_unless_cancelled() -> None:
        if not future.done():
            settle(value)

    try:
        loop.call_soon_threadsafe(settle_unless_cancelled)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting
