"""The streaming resampler between 22050 Hz frames and Opus's rate (16 kHz), and what a speaking
stream's codec state costs in memory."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from voice_rtc.opus import OPUS_FRAME_SAMPLES, OPUS_RATE
from voice_rtc.resample import Resampler

RATES = [(22050, OPUS_RATE, 441), (OPUS_RATE, 22050, OPUS_FRAME_SAMPLES)]  # and a frame's samples


def tone(frequency: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")


def snr_db(y: np.ndarray, frequency: float, rate: int) -> float:
    """How far `y` is from the best-fitting sine at `frequency`."""
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * frequency * t), np.cos(2 * np.pi * frequency * t)], 1)
    fit = basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    return float(10 * np.log10(np.sum(fit**2) / np.sum((y - fit) ** 2)))


@pytest.mark.parametrize(("from_rate", "to_rate", "frame"), RATES)
def test_a_frame_in_is_a_frame_out_however_the_stream_is_cut(
    from_rate: int, to_rate: int, frame: int
) -> None:
    x = tone(1000, from_rate, 1.0)
    whole = Resampler(from_rate, to_rate).push(x.tobytes())
    assert len(whole) == len(x) * to_rate // from_rate * 2
    pieces = Resampler(from_rate, to_rate)
    cuts = [0, frame, 4 * frame, 5 * frame, 30 * frame, len(x)]
    outs = [pieces.push(x[a:b].tobytes()) for a, b in itertools.pairwise(cuts)]
    assert [len(o) for o in outs[:2]] == [
        frame * to_rate // from_rate * 2,
        3 * frame * 2 * to_rate // from_rate,
    ]
    # Streaming is the same as all at once, but for rounding: float32 products of blocks of
    # different sizes may sum in another order.
    streamed = np.frombuffer(b"".join(outs), "<i2").astype(int)
    assert np.abs(streamed - np.frombuffer(whole, "<i2")).max() <= 1


@pytest.mark.parametrize(("from_rate", "to_rate", "frame"), RATES)
@pytest.mark.parametrize("frequency", [200, 1000, 4000, 6000])  # Opus codes to ~7 kHz
def test_speech_band_tones_come_through_clean_and_at_full_level(
    from_rate: int, to_rate: int, frame: int, frequency: int
) -> None:
    y = np.frombuffer(
        Resampler(from_rate, to_rate).push(tone(frequency, from_rate, 1).tobytes()), "<i2"
    )
    y = y[1000:-1000].astype(np.float64)  # past the filter's start
    assert snr_db(y, frequency, to_rate) > 80  # libswresample's default is ~88 dB here
    assert abs(np.std(y) / (0.5 * 32767 / np.sqrt(2)) - 1) < 0.01


def test_its_delay_is_the_one_it_declares() -> None:
    resampler = Resampler(22050, OPUS_RATE)
    click = np.zeros(4410, dtype="<i2")
    click[441] = 30000
    y = np.frombuffer(resampler.push(click.tobytes()), "<i2")
    peak = int(np.argmax(y))
    assert abs(peak - (441 * OPUS_RATE / 22050 + resampler.delay)) <= 1
    assert resampler.delay * 1000 / OPUS_RATE <= 1  # a millisecond


def test_a_block_that_is_not_whole_periods_is_refused() -> None:
    with pytest.raises(ValueError, match="441-sample periods"):
        Resampler(22050, OPUS_RATE).push(bytes(2 * 100))


STREAMS_HELD = """
import os
from voice_rtc.audio import FRAME_BYTES
from voice_rtc.opus import FrameDecoder, OpusFrameEncoder, OpusSettings

def rss() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

frames = [os.urandom(FRAME_BYTES) for _ in range(25)]
OpusFrameEncoder(OpusSettings()).encode(frames)  # what is made once per process
before, streams = rss(), []
for _ in range(300):
    encoder, decoder = OpusFrameEncoder(OpusSettings()), FrameDecoder()
    for packet in encoder.encode(frames):
        decoder.decode(packet)
    streams.append((encoder, decoder))
print((rss() - before) / len(streams))
"""


def test_a_speaking_streams_codec_state_is_tens_of_kilobytes() -> None:
    """Encoder and decoder, each with its resampler, after a 25-frame batch, in a fresh
    process (resident memory, native allocations included): libopus's own state (31 + 18 KB)
    and little else. PyAV's codec context and libswresample cost ~0.6 MB a stream."""
    run = subprocess.run([sys.executable, "-c", STREAMS_HELD], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < 100_000
