"""The demo page in headless Chromium: what a listener sees and hears, over WebRTC on loopback."""

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser import (
    analyse_received_audio,
    chromium,
    client_stats,
    echo_console,
    poll,
    speak,
    spectrum_peak,
)
from tests.conftest import RunningServer, StartServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
expect.set_options(timeout=10_000)


async def test_speak_connects_and_plays_the_tone(server: RunningServer, page: Page) -> None:
    await page.goto(server.url)
    await speak(page, "440hz 3s")
    await expect(page.locator("#state")).to_have_text("connected")
    await analyse_received_audio(page)

    stats = await poll(
        lambda: client_stats(page),
        # Statistics not known yet are None (undefined in the page).
        lambda s: (s["packetsReceived"] or 0) > 0 and (s["audioLevel"] or 0) > 0,
        timeout=10,
    )
    assert (stats["packetsReceived"] or 0) > 0, stats
    assert (stats["audioLevel"] or 0) > 0, stats
    assert stats.get("codec") == "audio/opus", stats

    peak = await poll(lambda: spectrum_peak(page), lambda p: p.db > -40, timeout=5)
    assert abs(peak.hz - 440) <= 2 * peak.bin_hz, peak

    # The page's own statistics panel shows the audio arriving.
    await expect(page.locator("#stat-packets-received")).to_have_text(re.compile(r"^[1-9]\d*$"))
    await expect(page.locator("#stat-codec")).to_have_text("audio/opus")


async def test_page_shows_utterances_and_stop_cancels(server: RunningServer, page: Page) -> None:
    events = page.locator("#events li")
    await page.goto(server.url)
    await speak(page, "440hz 500ms")
    await expect(page.locator("#state")).to_have_text("connected")
    await expect(events.filter(has_text="started")).to_have_count(1)
    await expect(events.filter(has_text="ended: done")).to_have_count(1)

    await speak(page, "440hz 20s")
    await expect(events.filter(has_text="started")).to_have_count(2)
    loud = await poll(lambda: client_stats(page), lambda s: (s["audioLevel"] or 0) > 0.1, 5)
    assert (loud["audioLevel"] or 0) > 0.1, loud
    await page.get_by_role("button", name="Stop").click()
    # Well before the 20 s tone would end by itself.
    await expect(events.filter(has_text="ended: cancelled")).to_have_count(1, timeout=5_000)
    quiet = await poll(lambda: client_stats(page), lambda s: s.get("audioLevel", 1) < 0.01, 5)
    assert quiet.get("audioLevel", 1) < 0.01, quiet


async def test_a_refused_request_is_shown_and_speak_still_works(
    start_server: StartServer, page: Page
) -> None:
    server = await start_server(max_text_chars=50)
    alert = page.get_by_role("alert")
    events = page.locator("#events li")
    await page.goto(server.url)
    await speak(page, "This sentence is longer than the fifty characters the server accepts.")
    await expect(alert).to_contain_text("TEXT_TOO_LONG")
    await expect(alert).to_contain_text("longer than can be spoken at once")
    await expect(events).to_have_count(0)

    await speak(page, "440hz 300ms")
    await expect(alert).to_be_hidden()
    await expect(events.filter(has_text="ended: done")).to_have_count(1)


async def test_audio_the_browser_refuses_to_play_is_reported(server: RunningServer) -> None:
    """An app that connects without a user gesture learns why nobody hears anything."""
    async with chromium() as browser:
        page = await browser.new_page()
        echo_console(page)
        # Connect as the page loads, before any click. Playwright runs its evaluations and
        # locator checks as user gestures, which would allow autoplay: touch nothing in the page
        # until the client has reported, and learn that from the console.
        await page.add_init_script(
            """addEventListener('load', () => {
                voiceClient.addEventListener('error', ({ detail }) => console.log(detail.code));
                voiceClient.connect();
            })"""
        )
        async with page.expect_console_message(
            lambda m: m.text == "AUDIO_PLAYBACK_FAILED", timeout=10_000
        ):
            await page.goto(server.url)
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("AUDIO_PLAYBACK_FAILED")
        await expect(alert).to_contain_text("Audio cannot play")
        # The page offers the click the browser is waiting for, and audio comes back.
        await page.get_by_role("button", name="Enable sound").click()
        await expect(alert).to_be_hidden()
        await expect(page.locator("#state-detail")).to_have_text("WebSocket audio")
