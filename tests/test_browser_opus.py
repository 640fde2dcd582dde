"""The WebSocket fallback's Opus path in real browsers, Chromium and Firefox: the library decodes
it with WebCodecs and plays it, at about a tenth of PCM's bandwidth.

First without the server: messages carrying real 20 ms Opus packets (libopus through PyAV) go
through the library's FrameDecoder and AudioOutput, and the analyser on the output hears the tone
they carry. Then the demo page against the server, which offers Opus: the library chooses it,
and the bytes received per second are counted on the page's WebSocket."""

import asyncio
import base64
import fractions
import struct
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from playwright.async_api import Page

from tests.browser import analyse_websocket_audio, client_stats, poll, spectrum_peak
from tests.conftest import RunningServer
from tests.firefox import FirefoxPage, firefox
from tests.pulse import PulseAudio, pulseaudio

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

OPUS_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz


def opus_messages(hz: float, frames: int, first_seq: int = 1000) -> list[str]:
    """WebSocket audio messages (signaling/PROTOCOL.md: version 1, codec 2 = Opus), base64."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 32000
    t = np.arange(frames * FRAME_SAMPLES) / OPUS_RATE
    pcm = (np.sin(2 * np.pi * hz * t) * 0.5 * 32767).astype(np.int16)
    packets: list[bytes] = []
    for i in range(frames):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES], format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_RATE
        frame.pts = i * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, OPUS_RATE)
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    packets += [bytes(packet) for packet in encoder.encode(None)]
    return [
        base64.b64encode(struct.pack(">BBIII", 1, 2, first_seq + i, 7, i) + packet).decode()
        for i, packet in enumerate(packets[:frames])
    ]


# A button whose click creates the library's AudioOutput (a user gesture), as connect() does.
ADD_BUTTON = """async () => {
    const { AudioOutput } = await import('/client/audio-output.js');
    const button = Object.assign(document.createElement('button'), {
        id: 'play-opus',
        textContent: 'Play Opus',
        onclick: () => {
            window.output = new AudioOutput();
            window.started = window.output.start();
        },
    });
    document.body.prepend(button);
}"""

# Decode the messages with the library and play them; what came out, and what was heard.
PLAY = """async (messages) => {
    const { FrameDecoder, canDecodeOpus } = await import('/client/frame-decoder.js');
    const { readHeader } = await import('/client/audio-frame.js');
    const supported = await canDecodeOpus();
    const playing = await window.started;
    const context = output.output.context;
    const analyser = new AnalyserNode(context, { fftSize: 8192, smoothingTimeConstant: 0 });
    output.output.connect(analyser);
    const decoded = [];
    const decoder = new FrameDecoder((frame) => {
        decoded.push({ seq: frame.seq, utterance: frame.utterance, rate: frame.rate,
                       samples: frame.samples.length });
        output.push(frame);
    });
    for (const text of messages) {
        const message = Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
        decoder.decode(message, readHeader(message));
    }
    await new Promise((resolve) => setTimeout(resolve, 700)); // past the jitter buffer's target
    const spectrum = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(spectrum);
    let loudest = 1;
    for (let i = 1; i < spectrum.length; i++) if (spectrum[i] > spectrum[loudest]) loudest = i;
    const binHz = context.sampleRate / analyser.fftSize;
    await new Promise((resolve) => setTimeout(resolve, 1200)); // the rest plays out
    return { supported, playing, decoded, errors: decoder.errors, peakHz: loudest * binHz,
             peakDb: spectrum[loudest], binHz, stats: output.stats };
}"""


def check(result: dict[str, Any], messages: int) -> None:
    assert result["supported"] and result["playing"], result
    decoded = result["decoded"]
    assert result["errors"] == 0
    assert [frame["seq"] for frame in decoded] == list(range(1000, 1000 + messages))
    assert all(f["rate"] == OPUS_RATE and f["samples"] == FRAME_SAMPLES for f in decoded)
    assert all(frame["utterance"] == 7 for frame in decoded)
    assert result["peakDb"] > -40 and abs(result["peakHz"] - 440) <= 2 * result["binHz"], result
    stats = result["stats"]
    assert stats["framesPlayed"] == messages and stats["overflowFrames"] == 0, stats


async def test_chromium_decodes_and_plays_opus_frames(server: RunningServer, page: Page) -> None:
    messages = opus_messages(440, 75)
    await page.goto(server.url)
    await page.evaluate(ADD_BUTTON)
    await page.click("#play-opus")
    check(await page.evaluate(PLAY, messages), len(messages))


@pytest.fixture
async def pulse() -> AsyncIterator[PulseAudio]:
    async with pulseaudio() as server:
        yield server


@pytest.fixture
async def firefox_page(pulse: PulseAudio) -> AsyncIterator[FirefoxPage]:
    async with firefox(pulse) as page:
        yield page


async def test_firefox_decodes_and_plays_opus_frames(
    server: RunningServer, firefox_page: FirefoxPage
) -> None:
    messages = opus_messages(440, 75)
    await firefox_page.goto(server.url)
    await firefox_page.evaluate(ADD_BUTTON)
    await firefox_page.click("#play-opus")
    check(await firefox_page.evaluate(PLAY, messages), len(messages))


# Counts the bytes of binary messages (WebSocket audio) the page's sockets receive.
COUNT_AUDIO_BYTES = """window.audioBytes = 0;
window.WebSocket = class extends WebSocket {
    constructor(...args) {
        super(...args);
        this.addEventListener('message', ({ data }) => {
            if (typeof data !== 'string') audioBytes += data.byteLength ?? data.size;
        });
    }
};"""


async def bytes_per_second(evaluate: Any, seconds: float = 2) -> float:
    """WebSocket audio received per second, over `seconds` of speech."""
    before = await evaluate("window.audioBytes")
    await asyncio.sleep(seconds)
    return float(await evaluate("window.audioBytes") - before) / seconds


@pytest.mark.parametrize(
    ("codec", "low", "high"),
    [
        ("auto", 3000, 7000),  # Opus at 32 kbit/s: 4 KB/s, and 0.7 KB/s of headers
        ("pcm_s16le", 40000, 50000),  # 22050 Hz s16: 44.1 KB/s
    ],
)
async def test_chromium_fallback_plays_opus_at_a_tenth_of_the_bandwidth(
    server: RunningServer, page: Page, codec: str, low: int, high: int
) -> None:
    await page.add_init_script(COUNT_AUDIO_BYTES)
    await page.goto(server.url + f"?transport=websocket&codec={codec}")
    await page.get_by_label("Text to speak").fill("440hz 6s")
    await page.get_by_role("button", name="Speak").click()
    stats = await poll(lambda: client_stats(page), lambda s: s.get("framesPlayed", 0) > 10, 10)
    assert stats["codec"] == ("opus" if codec == "auto" else codec), stats
    rate = await bytes_per_second(page.evaluate)
    print(f"WebSocket audio: {rate / 1000:.1f} KB/s")
    assert low < rate < high, rate
    await analyse_websocket_audio(page)
    peak = await poll(lambda: spectrum_peak(page), lambda p: p.db > -40, timeout=5)
    assert peak.db > -40 and abs(peak.hz - 440) <= 2 * peak.bin_hz, peak
    stats = await client_stats(page)
    assert stats.get("decodeErrors") == 0 and stats["underruns"] == 0, stats


async def test_firefox_fallback_plays_opus_at_a_tenth_of_the_bandwidth(
    server: RunningServer, firefox_page: FirefoxPage, pulse: PulseAudio
) -> None:
    page = firefox_page
    await page.init_script(COUNT_AUDIO_BYTES)
    await page.goto(server.url + "?transport=websocket")
    await page.type("#text", "440hz 6s")
    await page.click("#speak")
    stats = await poll(
        lambda: page.evaluate("voiceClient.stats()"), lambda s: s.get("framesPlayed", 0) > 10, 10
    )
    assert stats["codec"] == "opus", stats
    rate = await bytes_per_second(page.evaluate)
    print(f"WebSocket audio: {rate / 1000:.1f} KB/s")
    assert 3000 < rate < 7000, rate
    heard = await pulse.record(1)  # out of the sound device
    assert heard.rms > 0.05 and abs(heard.hz - 440) <= 5, heard
    stats = await page.evaluate("voiceClient.stats()")
    assert stats.get("decodeErrors") == 0 and stats["underruns"] == 0, stats
