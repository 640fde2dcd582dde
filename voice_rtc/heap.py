"""Handing freed heap memory back to the OS, now and then.

glibc's malloc returns memory to the OS on its own only from the top of its heap. What is freed
below memory still in use stays resident: a crowd that connects at once (every listener's
handshake, its first second of speech made together) leaves tens of megabytes free among the
frames still playing, and a crowd that leaves, its share of them. At 200 listeners taking PCM
that was 20-25 MB, two fifths of their RSS, for as long as the process ran. `malloc_trim(0)`
releases every whole free page wherever it lies (madvise), and the pages come back only if used
again.

It walks the heap's free chunks: a few milliseconds for a heap of 60 MB. It runs on a worker
thread, but the loop's own mallocs wait for the arena lock meanwhile, so it runs seldom.
Without glibc (musl, macOS) there is no `malloc_trim` and nothing runs.
"""

import asyncio
import ctypes
import os
import time
from collections.abc import Callable
from functools import cache

from . import metrics
from .tasks import cancel_and_wait

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the C library the process has
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def can_trim() -> bool:
    return _malloc_trim() is not None


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def trim() -> int:
    """Hand every whole free page of the heap back; returns how far RSS fell, in bytes."""
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return 0
    before = resident_bytes()
    malloc_trim(0)  # 0: keep no slack at the top either
    return max(0, before - resident_bytes())


class HeapTrimmer:
    """Trims every `interval_s` seconds (0: never) while started."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self._interval_s > 0 and can_trim():
            self._task = asyncio.create_task(self._run(), name="heap-trimmer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            started = time.monotonic()
            returned = await asyncio.to_thread(trim)
            metrics.HEAP_TRIM.observe(time.monotonic() - started)
            metrics.HEAP_RETURNED.inc(returned)
