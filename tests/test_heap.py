"""Freed heap memory goes back to the OS: what a burst of frames freed among frames still
playing stays resident otherwise."""

import asyncio
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from voice_rtc import heap

pytestmark = pytest.mark.skipif(not heap.can_trim(), reason="needs glibc's malloc_trim")

MB = 1 << 20

# In a fresh process, so that its heap is this and nothing else: 70 MB of 20 ms PCM frames, of
# which every 16th lives on (the newest too, so the top of the heap stays in use).
_FRAGMENTED_HEAP = """
import gc, json
from voice_rtc import heap
frames = [bytearray(882) for _ in range(80_000)]
kept = [*frames[15::16], frames[-1]]
del frames
gc.collect()
held = heap.resident_bytes()
returned = heap.trim()
print(json.dumps({"held": held, "returned": returned, "after": heap.resident_bytes()}))
"""


def test_frames_freed_among_frames_still_in_use_go_back_to_the_os() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENTED_HEAP], cwd=REPO, capture_output=True, check=True
    )
    measured = json.loads(out.stdout)
    # 65 MB of frames were freed; glibc alone had kept them all resident (held ~100 MB).
    assert measured["returned"] >= 30 * MB, measured
    assert measured["after"] <= measured["held"] - 30 * MB, measured


async def test_a_trimmer_set_to_never_runs_nothing() -> None:
    trimmer = heap.HeapTrimmer(0)
    trimmer.start()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "heap-trimmer"]
    await trimmer.stop()
