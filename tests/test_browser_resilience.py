"""Sessions that survive the network, in headless Chromium: what a listener on the demo page
notices when WebRTC cannot connect, when a transport is forced, when the connection drops or
goes silent, when the network loses packets, and when the browser will not play audio."""

import asyncio
import itertools
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser import (
    CHROMIUM_ARGS,
    analyse_websocket_audio,
    chromium,
    client_stats,
    connection_log,
    new_page,
    poll,
    speak,
    spectrum_peak,
    utterances,
)
from tests.conftest import RunningServer, StartServer
from tests.netns import Namespace
from tests.scrape import sample
from tests.tcp_proxy import tcp_proxy
from tests.tokens import JWT_ENV, app_token

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
expect.set_options(timeout=10_000)

_namespaces = itertools.count()


@pytest.fixture
def loopback_only() -> Iterator[str]:
    """A network namespace with nothing but loopback."""
    name = f"vrtc-lo-{os.getpid()}-{next(_namespaces)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


async def hears_440_hz(page: Page) -> None:
    peak = await poll(lambda: spectrum_peak(page), lambda p: p.db > -40, timeout=5)
    assert peak.db > -40, peak
    assert abs(peak.hz - 440) <= 2 * peak.bin_hz, peak


def number(stats: dict[str, Any], name: str) -> float:
    """A statistic, 0 while unknown (undefined in the page, None here)."""
    return float(stats.get(name) or 0)


async def lossy_listeners(server: RunningServer) -> float:
    """Listeners the server codes FEC for, as its receiver reports say they lose packets."""
    async with aiohttp.ClientSession() as http:
        return await sample(http, server, "voice_rtc_lossy_listeners")


async def session_id(page: Page) -> str:
    session: str = await page.evaluate("voiceClient.sessionId")
    return session


async def test_webrtc_that_cannot_connect_falls_back_to_websocket_audio(
    loopback_only: str, start_server: StartServer
) -> None:
    """Chromium without --allow-loopback-in-peer-connection, on a machine with nothing but
    loopback, has no address for an ICE candidate: WebRTC cannot connect, for real."""
    server = await start_server(wrap=["ip", "netns", "exec", loopback_only], ice_timeout_ms=2000)
    no_loopback = [arg for arg in CHROMIUM_ARGS if arg != "--allow-loopback-in-peer-connection"]
    async with chromium(no_loopback, netns=loopback_only) as browser, new_page(browser) as page:
        await page.goto(server.url)
        await speak(page, "440hz 4s")

        await expect(page.locator("#state")).to_have_text("degraded")
        await expect(page.locator("#state-detail")).to_have_text("WebSocket audio")
        await expect(page.locator("#transport")).to_have_text("WebSocket audio")
        await expect(connection_log(page, "ICE not connected after 2000 ms")).to_have_count(1)
        await analyse_websocket_audio(page)
        await hears_440_hz(page)
        # Nothing played over WebRTC: the whole utterance plays over the WebSocket.
        await expect(utterances(page, "ended: done (201 frames)")).to_have_count(1)


async def test_the_transport_setting_plays_over_the_websocket_without_webrtc(
    server: RunningServer, page: Page
) -> None:
    await page.add_init_script(
        """window.peerConnections = 0;
        window.RTCPeerConnection = class extends RTCPeerConnection {
            constructor(...args) {
                super(...args);
                window.peerConnections++;
            }
        };"""
    )
    await page.goto(server.url + "?transport=websocket")
    await speak(page, "440hz 20s")
    await expect(page.locator("#state")).to_have_text("connected")
    await expect(page.locator("#transport")).to_have_text("WebSocket audio")
    await analyse_websocket_audio(page)
    await hears_440_hz(page)
    assert await page.evaluate("window.peerConnections") == 0

    # Barge-in: Stop silences the page at once, not after what the jitter buffer holds.
    before, after = await page.evaluate(
        """async () => {
            const probe = new AnalyserNode(testAnalyser.context, { fftSize: 512 });
            voiceClient.audioOutput.connect(probe);
            const peak = () => {
                const samples = new Float32Array(probe.fftSize); // the last 12 ms
                probe.getFloatTimeDomainData(samples);
                return Math.max(...samples.map(Math.abs));
            };
            const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
            await wait(50);
            const held = (await voiceClient.stats()).bufferedAudio;
            const before = peak();
            document.getElementById('stop').click();
            await wait(60);
            return [{ held, peak: before }, peak()];
        }"""
    )
    assert before["held"] >= 0.1 and before["peak"] > 0.3, before  # there was audio to cut
    assert after < 0.01, after
    await expect(utterances(page, "ended: cancelled")).to_have_count(1)

    # The next utterance starts clean.
    await speak(page, "440hz 1s")
    await hears_440_hz(page)
    await expect(utterances(page, "ended: done")).to_have_count(1)


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_dropped_connection_resumes_the_session_and_its_speech(
    start_server: StartServer, page: Page, transport: str
) -> None:
    """The network drops every connection mid-utterance (a proxy between Chromium and the
    server, for the page and the signaling socket, cuts them)."""
    server = await start_server()
    target = urlsplit(server.url)
    async with tcp_proxy(target.hostname or "", target.port or 0) as proxy:
        await page.goto(proxy.url + ("?transport=websocket" if transport == "websocket" else ""))
        await speak(page, "440hz 5s")
        await expect(page.locator("#state")).to_have_text("connected")
        first_session = await session_id(page)
        playing = await poll(lambda: client_stats(page), lambda s: number(s, "audioLevel") > 0.1, 5)
        assert number(playing, "audioLevel") > 0.1, playing
        await asyncio.sleep(1)

        assert proxy.cut() >= 1
        await expect(connection_log(page, "reconnecting: attempt 1 of")).to_have_count(1)
        await expect(page.locator("#state")).to_have_text("connected")
        assert await session_id(page) == first_session
        resumed = await poll(
            lambda: client_stats(page),
            lambda s: number(s, "audioLevel") > 0.1 and s["transport"] == transport,
            5,
        )
        assert number(resumed, "audioLevel") > 0.1 and resumed["transport"] == transport, resumed
        await expect(utterances(page, "ended: done (251 frames)")).to_have_count(1)
        await expect(page.get_by_role("alert")).to_be_hidden()  # "lost; retrying" is over
    assert '"event": "session_resumed"' in server.log()


async def test_a_connection_gone_silent_is_found_by_heartbeats(
    start_server: StartServer, page: Page
) -> None:
    """Nothing gets through any more, not even a close: only unanswered pings tell."""
    server = await start_server(heartbeat_interval_s=0.5, heartbeat_timeout_s=1)
    target = urlsplit(server.url)
    async with tcp_proxy(target.hostname or "", target.port or 0) as proxy:
        await page.goto(proxy.url)
        await speak(page, "440hz 5s")
        await expect(page.locator("#state")).to_have_text("connected")
        first_session = await session_id(page)
        await expect(page.locator("#rtt")).to_have_text(re.compile(r"^\d+\.\d ms$"))

        assert proxy.stall() >= 1
        await expect(connection_log(page, "reconnecting")).to_have_count(1)
        await expect(page.locator("#state")).to_have_text("connected")
        assert await session_id(page) == first_session
        await expect(utterances(page, "ended: done (251 frames)")).to_have_count(1)


async def test_a_session_the_server_lost_is_started_anew_and_speech_plays(
    start_server: StartServer, page: Page
) -> None:
    """The server crashed and came back (or the client landed on another replica): resuming
    fails, a new session starts, and its frames, numbered from 0 again, are played, not taken
    for ones already heard."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = await start_server(port=port)
    await page.goto(first.url + "?transport=websocket")
    await speak(page, "440hz 1s")
    await expect(utterances(page, "ended: done")).to_have_count(1)
    first_session = await session_id(page)

    first.process.kill()
    await first.process.wait()
    await expect(page.locator("#state")).to_have_text("reconnecting")
    await start_server(port=port)
    await expect(page.get_by_role("alert")).to_contain_text("SESSION_NOT_FOUND", timeout=20_000)
    await expect(page.locator("#state")).to_have_text("connected")
    assert await session_id(page) != first_session

    await speak(page, "440hz 2s")
    await analyse_websocket_audio(page)
    await hears_440_hz(page)
    await expect(utterances(page, "ended: done")).to_have_count(2)


async def test_loss_keeps_webrtc_until_it_is_too_much_then_the_websocket_takes_over(
    netns: Namespace, start_server: StartServer, page: Page
) -> None:
    """The server in a network namespace: media crosses a veth that drops the share of UDP we
    say; the page and the signaling come through a proxy on 127.0.0.1 (TCP, untouched), which
    also makes the page a secure context, where AudioWorklets exist."""
    server = await start_server(
        env=JWT_ENV,  # beyond loopback: no dev mode
        wrap=netns.exec_prefix(),
        host=netns.ip,
        fallback_loss_percent=20,
        fallback_loss_window_s=2,
    )
    async with tcp_proxy(netns.ip, urlsplit(server.url).port or 0) as proxy:
        netns.set_udp_loss(5)
        await page.goto(proxy.url)
        # The demo's client has no token for this server: an app's client, with one, instead,
        # started as an app starts it, by a click.
        await page.evaluate(
            """async (token) => {
                const { VoiceClient } = await import('/client/voice-client.js');
                const client = (window.voiceClient = new VoiceClient({ token }));
                window.transports = [];
                window.ended = [];
                client.addEventListener('transport', ({ detail }) => transports.push(detail));
                client.addEventListener('utterance', ({ detail }) => {
                    if (detail.type === 'utterance_ended') ended.push(detail);
                });
                const button = Object.assign(document.createElement('button'), {
                    textContent: 'Listen',
                    onclick: () => client.connect().then(() => client.speak('440hz 30s')),
                });
                document.body.prepend(button);
            }""",
            app_token(),
        )
        await page.get_by_role("button", name="Listen").click()
        lossy = await poll(
            lambda: client_stats(page),
            lambda s: number(s, "packetsLost") > 0 and number(s, "packetsReceived") > 200,
            10,
        )
        assert number(lossy, "packetsLost") > 0, lossy
        assert number(lossy, "audioLevel") > 0.1, lossy
        assert lossy["transport"] == "webrtc" and lossy["state"] == "connected", lossy
        # Chromium's receiver reports tell the server of the loss: it codes FEC for it.
        assert await poll(lambda: lossy_listeners(server), lambda n: n == 1, 15) == 1

        netns.set_udp_loss(50)
        moved = await poll(lambda: client_stats(page), lambda s: s["transport"] != "webrtc", 15)
        assert moved["transport"] == "websocket" and moved["state"] == "degraded", moved
        reasons = [t.get("reason") for t in await page.evaluate("transports")]
        assert reasons == [None, "packet_loss"], reasons
        assert await poll(lambda: lossy_listeners(server), lambda n: n == 0, 5) == 0  # TCP
        await analyse_websocket_audio(page)
        await hears_440_hz(page)
        assert await page.evaluate("ended") == []  # the same utterance goes on
        await page.evaluate("voiceClient.cancel()")


async def test_refused_audio_is_held_with_captions_until_one_click_plays_all_of_it(
    server: RunningServer,
) -> None:
    async with chromium() as browser, new_page(browser) as page:
        # Connect as the page loads, before any user gesture (Playwright's evaluations and
        # clicks are gestures): the browser refuses to play the audio.
        await page.add_init_script(
            """addEventListener('load', () => {
                voiceClient.addEventListener('error', ({ detail }) =>
                    console.log(`${detail.code} ${detail.action}`));
                voiceClient.connect();
            })"""
        )
        async with page.expect_console_message(
            lambda m: m.text == "AUDIO_PLAYBACK_FAILED enable_audio"
        ):
            await page.goto(server.url)
        await expect(page.locator("#state-detail")).to_have_text("captions only")

        # Speech is shown as text; its audio waits, none of it played.
        await page.evaluate("voiceClient.speak('Hello there, 440hz 1s')")
        await expect(page.locator("#captions")).to_have_text("Hello there, 440hz 1s")
        await expect(utterances(page, "ended: done (51 frames)")).to_have_count(1)
        assert number(await client_stats(page), "framesPlayed") == 0

        # The click the error asks for: what was held plays, all of it.
        await page.get_by_role("button", name="Enable sound").click()
        await expect(page.locator("#state-detail")).to_have_text("WebSocket audio")
        await analyse_websocket_audio(page)
        await hears_440_hz(page)
        played = await poll(
            lambda: client_stats(page), lambda s: number(s, "framesPlayed") >= 51, 5
        )
        assert number(played, "framesPlayed") == 51, played
        assert number(played, "overflowFrames") == 0 and number(played, "duplicateFrames") == 0
