"""The frame-identifying signal and its decoder: they must see skips and repeats."""

import numpy as np

from tests.framecode import symbols, unwrap
from voice_rtc.audio import FRAME_BYTES
from voice_rtc.tts.tone import ToneProvider


async def framecode_frames(seconds: float) -> list[bytes]:
    pcm = b"".join([c async for c in ToneProvider().synthesize(f"framecode {seconds}s")])
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


async def test_a_clean_playback_reads_back_every_frame_in_order() -> None:
    frames = await framecode_frames(3)
    playback = unwrap(symbols(b"".join(frames)))
    assert playback.frames == list(range(150))
    assert not playback.skipped and not playback.repeats


async def test_skips_and_repeats_are_seen() -> None:
    frames = await framecode_frames(3)
    # Played 0-59, 52-99 (8 repeated), then 105-149 (100-104 skipped), with silence between.
    played = frames[:60] + [bytes(FRAME_BYTES)] * 3 + frames[52:100] + frames[105:]
    playback = unwrap(symbols(b"".join(played)))
    assert playback.repeats == [8]
    assert playback.skipped == [100, 101, 102, 103, 104]
    assert playback.covered == set(range(150)) - {100, 101, 102, 103, 104}


async def test_a_half_frame_at_a_cut_still_counts_as_that_frame() -> None:
    frames = await framecode_frames(1)
    played = [*frames[:20], frames[20][:440], *frames[18:]]  # 220 samples of frame 20
    playback = unwrap(symbols(b"".join(played)))
    assert playback.covered == set(range(50)) and not playback.skipped
    assert playback.repeats == [3]


async def test_a_frame_played_unclearly_is_told_from_one_skipped() -> None:
    frames = await framecode_frames(1)
    noise = (np.random.default_rng(1).normal(0, 8000, 441)).astype("<i2").tobytes()
    # Frame 10 garbled where it belongs (a decoder warming up); frame 30 not played at all.
    played = [*frames[:10], noise, *frames[11:30], *frames[31:]]
    playback = unwrap(symbols(b"".join(played)))
    assert playback.unclear == [10]
    assert playback.skipped == [30]
