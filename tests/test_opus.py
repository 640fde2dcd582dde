"""The voice-tuned Opus codec: one packet per frame, speech survives it, silence is cached."""

import asyncio
import os
import sys
import threading
import time

import numpy as np
import pytest

from tests.signal_analysis import dominant_frequency, rms
from voice_rtc.audio import FRAME_BYTES, SILENT_FRAME
from voice_rtc.encoding import NICENESS, EncodingThread
from voice_rtc.opus import FrameDecoder, OpusCodec, OpusFrameEncoder, OpusSettings, silent_packet
from voice_rtc.tts.tone import ToneProvider


async def tone_pcm(text: str) -> bytes:
    return b"".join([chunk async for chunk in ToneProvider().synthesize(text)])


async def tone_frames(text: str) -> list[bytes]:
    pcm = await tone_pcm(text)
    return [
        pcm[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\0") for i in range(0, len(pcm), FRAME_BYTES)
    ]


def decoded(packets: list[bytes]) -> bytes:
    decoder = FrameDecoder()
    return b"".join(decoder.decode(packet) for packet in packets)


async def test_every_frame_becomes_exactly_one_packet_whatever_the_batches() -> None:
    frames = await tone_frames("440hz 1s")
    encoder = OpusFrameEncoder(OpusSettings())
    packets = (
        encoder.encode(frames[:1]) + encoder.encode(frames[1:26]) + encoder.encode(frames[26:])
    )
    assert len(packets) == len(frames) == 50
    assert all(10 < len(p) < 200 for p in packets)  # ~32 kbps: 80 bytes a 20 ms frame
    pcm = decoded(packets)
    assert len(pcm) == len(frames) * FRAME_BYTES  # and back: one 882-byte frame per packet
    assert abs(dominant_frequency(pcm[4410:]) - 440) < 3


async def test_speech_settings_hold_the_bitrate_they_are_given() -> None:
    frames = await tone_frames("framecode 2s")
    for bitrate in (16000, 32000, 64000):
        packets = OpusFrameEncoder(OpusSettings(bitrate=bitrate)).encode(frames)
        bits_per_second = sum(len(p) for p in packets) * 8 / (len(packets) / 50)
        assert 0.6 * bitrate < bits_per_second < 1.3 * bitrate


async def test_encoding_runs_off_the_event_loop_in_batches() -> None:
    frames = await tone_frames("440hz 2s")
    thread = EncodingThread()
    codec = OpusCodec(OpusSettings(), thread)
    stream = codec.new_stream()
    ticks = 0

    async def count_ticks() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    counter = asyncio.ensure_future(count_ticks())
    packets = await codec.encode(stream, frames)
    counter.cancel()
    thread.stop()
    assert len(packets) == 100
    assert ticks > 1  # the loop kept turning while the batch was encoded


async def test_urgent_batches_are_encoded_before_routine_ones() -> None:
    thread = EncodingThread()
    done: list[str] = []
    release = threading.Event()
    blocker = asyncio.ensure_future(thread.run(release.wait))  # the thread is busy...
    routine = [
        asyncio.ensure_future(thread.run(lambda n=n: done.append(f"r{n}"))) for n in range(3)
    ]
    urgent = asyncio.ensure_future(thread.run(lambda: done.append("first audio"), urgent=True))
    await asyncio.sleep(0.05)
    release.set()  # ...then works through its queue
    await asyncio.gather(blocker, urgent, *routine)
    thread.stop()
    assert done == ["first audio", "r0", "r1", "r2"]


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority is Linux's")
async def test_the_encoding_thread_gives_way_to_the_event_loop_and_counts_its_cpu_only() -> None:
    thread = EncodingThread()
    encoder_id = await thread.run(threading.get_native_id)
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert os.getpriority(os.PRIO_PROCESS, encoder_id) == loop_nice + NICENESS
    await thread.run(lambda: time.sleep(0.3))  # waiting is not work...
    waited = thread.busy_s

    def compute(cpu_s: float = 0.2) -> None:
        started = time.thread_time()
        while time.thread_time() - started < cpu_s:
            pass

    await thread.run(compute)  # ...computing is
    thread.stop()
    assert waited < 0.1 and thread.busy_s - waited >= 0.2


def test_the_cached_silent_packet_is_small_and_decodes_to_silence() -> None:
    packet = silent_packet(OpusSettings())
    assert len(packet) < 30
    assert rms(decoded([packet] * 5)) < 10
    assert silent_packet(OpusSettings()) is packet  # made once per setting


async def test_the_codecs_delay_is_what_the_playout_pads_an_utterance_with() -> None:
    frames = await tone_frames("600hz 0.2s")  # 10 whole frames: the tone runs to the last sample
    tail = OpusCodec.delay_samples * 2
    padded = b"".join(frames) + bytes(tail)
    with_tail = [
        padded[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        for i in range(0, len(padded), FRAME_BYTES)
    ]
    pcm = np.frombuffer(decoded(OpusFrameEncoder(OpusSettings()).encode(with_tail)), "<i2")
    # The tone's last 5 ms come out at the start of the extra frame: without it they were lost.
    assert len(with_tail) == 11
    assert rms(pcm[10 * 441 : 10 * 441 + 100].tobytes()) > 5000
    assert rms(pcm[10 * 441 + 200 :].tobytes()) < 1000  # and then silence
    assert OpusCodec.delay_samples < 441  # less than a frame: at most one frame more


def test_silence_in_is_silence_out() -> None:
    packets = OpusFrameEncoder(OpusSettings()).encode([SILENT_FRAME] * 20)
    assert rms(decoded(packets)) < 10
