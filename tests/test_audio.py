import numpy as np

from voice_rtc.audio import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Reframer,
    frames_for,
    mulaw_decode,
    mulaw_encode,
)


def test_the_format_is_20ms_of_22050hz_mono_s16() -> None:
    assert (SAMPLE_RATE, FRAME_SAMPLES, FRAME_BYTES) == (22050, 441, 882)
    assert frames_for(1.0) == 50
    assert frames_for(0.021) == 2


def test_reframer_cuts_any_chunking_into_exact_frames_and_pads_the_tail() -> None:
    pcm = bytes(range(256)) * 20  # 5120 bytes: 5 whole frames and 710 bytes over
    reframer = Reframer()
    frames = []
    offset = 0
    for size in (1, 881, 3, 1000, 7, 2000, 1228):  # odd sizes split samples across chunks
        frames += reframer.push(pcm[offset : offset + size])
        offset += size
    assert offset == len(pcm)
    frames += reframer.flush()
    assert [len(f) for f in frames] == [FRAME_BYTES] * 6
    assert b"".join(frames)[: len(pcm)] == pcm
    assert frames[-1][710:] == bytes(FRAME_BYTES - 710)
    assert list(reframer.flush()) == []


def test_mulaw_round_trip_is_close_and_halves_the_bytes() -> None:
    t = np.arange(FRAME_SAMPLES)
    wave = (12000 * np.sin(2 * np.pi * 440 * t / SAMPLE_RATE)).astype("<i2")
    encoded = mulaw_encode(wave.tobytes())
    assert len(encoded) == FRAME_SAMPLES
    decoded = np.frombuffer(mulaw_decode(encoded), dtype="<i2")
    # mu-law keeps about 2-3% relative error on loud samples.
    assert np.max(np.abs(decoded.astype(int) - wave)) <= 0.035 * 12000
    assert mulaw_decode(mulaw_encode(bytes(2))) == bytes(2)  # silence stays silence
    extremes = np.array([32767, -32768], dtype="<i2").tobytes()
    assert np.all(np.abs(np.frombuffer(mulaw_decode(mulaw_encode(extremes)), "<i2")) > 31000)
