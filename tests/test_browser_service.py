"""The demo page and the service around its audio, in headless Chromium: telemetry that reaches
the operators (surviving a reload), errors shown with what to do about them, a rate limit the
library honours, a server that drains, and the Content-Security-Policy the page works under."""

import asyncio
import json
import re
import signal
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import new_page, poll, speak, utterances
from tests.conftest import RunningServer, StartServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
expect.set_options(timeout=10_000)

TELEMETRY_KEY = "voice-rtc.telemetry"  # client/telemetry.js


def client_events(server: RunningServer) -> list[dict[str, Any]]:
    """The telemetry events the server has logged so far."""
    lines = [json.loads(line) for line in server.log().splitlines() if '"client_event"' in line]
    return [line["client_event"] for line in lines]


async def stored_telemetry(page: Page) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = await page.evaluate(
        f"JSON.parse(localStorage.getItem('{TELEMETRY_KEY}') ?? '[]')"
    )
    return events


async def test_telemetry_reaches_the_operators_even_across_a_reload(
    server: RunningServer, page: Page
) -> None:
    # The analytics endpoint is unreachable at first: what the page records waits.
    await page.route("**/api/analytics", lambda route: route.abort())
    await page.goto(server.url + "?transport=websocket")
    await speak(page, "440hz 300ms")
    await expect(utterances(page, "ended: done")).to_have_count(1)
    stored = await poll(
        lambda: stored_telemetry(page),
        lambda events: any(e["type"] == "fallback" for e in events),
        5,
    )
    [fallback] = [event for event in stored if event["type"] == "fallback"]
    assert fallback["to"] == "websocket" and fallback["reason"] == "forced", stored
    assert not any(event.get("ts") == fallback["ts"] for event in client_events(server))

    # Reloaded, with the endpoint back: the first connection delivers what the last page kept.
    await page.unroute("**/api/analytics")
    await page.reload()
    await speak(page, "440hz 300ms")
    delivered = await poll(
        lambda: asyncio.sleep(0, client_events(server)),
        lambda events: any(event.get("ts") == fallback["ts"] for event in events),
        10,
    )
    assert fallback in delivered, delivered


async def test_a_rate_limit_is_shown_with_its_wait_and_honoured(
    start_server: StartServer, page: Page
) -> None:
    server = await start_server(limit_speak_per_hour=2)
    speak_requests: list[str] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent",
            lambda payload: speak_requests.append(payload) if '"speak"' in str(payload) else None,
        ),
    )
    alert = page.get_by_role("alert")
    await page.goto(server.url)
    for spoken in (1, 2):
        await speak(page, "440hz 100ms")
        await expect(utterances(page, "ended: done")).to_have_count(spoken)

    await speak(page, "440hz 100ms")
    await expect(alert).to_contain_text("RATE_LIMIT_EXCEEDED")
    await expect(alert).to_contain_text("Too many requests")
    await expect(alert).to_contain_text(re.compile(r"Try again in \d+ s\."))
    assert len(speak_requests) == 3

    # Told to wait, the library does not ask again meanwhile: the page hears why at once.
    async with page.expect_console_message(lambda m: m.text.startswith("RATE_LIMIT_EXCEEDED")):
        await speak(page, "440hz 100ms")
    await expect(alert).to_contain_text(re.compile(r"Try again in \d+ s\."))
    assert len(speak_requests) == 3


async def test_a_draining_server_tells_the_page_and_lets_its_speech_finish(
    start_server: StartServer, page: Page
) -> None:
    server = await start_server(drain_timeout_s=20)
    alert = page.get_by_role("alert")
    await page.goto(server.url)
    await speak(page, "440hz 2s")
    await expect(utterances(page, "started")).to_have_count(1)

    server.process.send_signal(signal.SIGTERM)
    await expect(alert).to_contain_text("SERVER_DRAINING")
    await expect(alert).to_contain_text("The service is restarting")
    await expect(alert).to_contain_text("Reconnecting automatically.")
    await expect(utterances(page, "ended: done (101 frames)")).to_have_count(1)
    assert await asyncio.wait_for(server.process.wait(), 10) == 0
    # Off to find another server; the closing was announced, so no "connection lost" too.
    await expect(page.locator("#state")).to_have_text("reconnecting")
    await expect(alert).to_contain_text("SERVER_DRAINING")


async def test_the_page_works_under_its_content_security_policy(
    server: RunningServer, browser: Browser
) -> None:
    async with new_page(browser) as page:
        await page.add_init_script(
            """window.cspViolations = [];
            addEventListener('securitypolicyviolation', (event) => {
                cspViolations.push(`${event.effectiveDirective} ${event.blockedURI}`);
            });"""
        )
        response = await page.goto(server.url)
        assert response is not None
        assert "default-src 'none'" in response.headers["content-security-policy"]
        # WebRTC: the page's scripts, styles, the signaling socket, the dev token, getStats().
        await speak(page, "440hz 300ms")
        await expect(page.locator("#state")).to_have_text("connected")
        await expect(utterances(page, "ended: done")).to_have_count(1)
        assert await page.evaluate("cspViolations") == []

        # WebSocket audio: the AudioWorklet's module is a script the policy must allow.
        await page.goto(server.url + "?transport=websocket")
        await speak(page, "440hz 300ms")
        await expect(page.locator("#transport")).to_have_text("WebSocket audio")
        await expect(utterances(page, "ended: done")).to_have_count(1)
        assert await page.evaluate("voiceClient.audioOutput !== null")
        assert await page.evaluate("cspViolations") == []

        # The watch works: an inline script, which the policy forbids, is caught.
        await page.evaluate(
            """document.head.append(
                Object.assign(document.createElement('script'), { textContent: '1' })
            )"""
        )
        violations = await poll(lambda: page.evaluate("cspViolations"), bool, 5)
        assert violations == ["script-src-elem inline"], violations
