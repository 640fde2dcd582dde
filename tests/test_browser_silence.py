"""Silence that costs nothing, heard from Chromium: with DTX (next to no packets while silent)
and with a cached silent packet every 20 ms, speech that starts after a long silence must start
cleanly (nothing concealed), promptly, and with the jitter buffer still low."""

import time
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser import poll, speak, utterances
from tests.conftest import StartServer

pytestmark = [pytest.mark.browser, pytest.mark.solo, pytest.mark.timeout(90)]
expect.set_options(timeout=10_000)

# Keep every peer connection the page makes, whatever the library does with it.
CAPTURE_PEER_CONNECTIONS = """
    window.testPeers = [];
    const Original = window.RTCPeerConnection;
    window.RTCPeerConnection = function (...args) {
        const pc = new Original(...args);
        window.testPeers.push(pc);
        return pc;
    };
    window.RTCPeerConnection.prototype = Original.prototype;
"""


async def inbound_audio(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] = await page.evaluate(
        """async () => {
            const pc = window.testPeers.at(-1);
            const report = await pc.getStats();
            for (const s of report.values()) {
                if (s.type === 'inbound-rtp' && s.kind === 'audio') return s;
            }
            return {};
        }"""
    )
    return stats


def delta(after: dict[str, Any], before: dict[str, Any], key: str) -> float:
    return float(after.get(key, 0)) - float(before.get(key, 0))


@pytest.mark.parametrize("silence", ["dtx", "packet"])
async def test_speech_after_a_long_silence_starts_cleanly(
    start_server: StartServer, page: Page, silence: str
) -> None:
    server = await start_server(silence=silence)
    await page.add_init_script(CAPTURE_PEER_CONNECTIONS)
    await page.goto(server.url)
    await speak(page, "440hz 300ms")
    await expect(utterances(page, "ended: done")).to_have_count(1)
    quiet = await inbound_audio(page)
    await page.wait_for_timeout(4000)  # a listener waiting for the agent to say something
    before = await inbound_audio(page)
    silent_packets = delta(before, quiet, "packetsReceived")

    spoken_at = time.monotonic()
    await speak(page, "440hz 2s")
    heard = await poll(lambda: inbound_audio(page), lambda s: s.get("audioLevel", 0) > 0.05, 5)
    heard_after = time.monotonic() - spoken_at
    await expect(utterances(page, "ended: done")).to_have_count(2)
    await page.wait_for_timeout(500)
    after = await inbound_audio(page)

    emitted = delta(after, before, "jitterBufferEmittedCount")
    jitter_buffer_ms = 1000 * delta(after, before, "jitterBufferDelay") / emitted
    received = delta(after, before, "totalSamplesReceived")
    glitches = delta(after, before, "concealedSamples") - delta(
        after, before, "silentConcealedSamples"
    )
    print(
        f"silence={silence}: {silent_packets:.0f} packets in 4 s of silence; speech heard after "
        f"{heard_after * 1000:.0f} ms; jitter buffer {jitter_buffer_ms:.0f} ms; "
        f"{glitches:.0f} of {received:.0f} samples concealed while speaking"
    )
    assert heard.get("audioLevel", 0) > 0.05, heard
    assert heard_after < 1.0  # the speak request, a click and the poll included
    assert after.get("packetsLost", 0) == 0, after
    assert jitter_buffer_ms < 100, after
    assert glitches <= 0.01 * received, after
    if silence == "dtx":
        assert silent_packets < 0.2 * 4 * 50  # next to nothing while silent
    else:
        assert silent_packets >= 0.9 * 4 * 50  # a packet every 20 ms
