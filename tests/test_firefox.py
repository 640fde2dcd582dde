"""The demo page in Firefox ESR with its default settings, as a listener gets it.

Firefox hides its host addresses behind mDNS names (`<uuid>.local`) by default. On loopback it
then sends no connectivity check at all to a 127.0.0.1 candidate (seen: ICE stays `new`; with
`media.peerconnection.ice.obfuscate_host_addresses` off it connects), so these tests put Firefox
where a listener's browser is, on another host: a network namespace, on one end of a veth pair;
the server's media address is the other end (VOICE_RTC_ICE_HOST_ADDRESSES). The page and the
signaling come through a proxy on the namespace's 127.0.0.1 (a secure context, and the server
stays on loopback, in dev mode). Sound goes to a PulseAudio null sink.

Firefox gathers host candidates on the interface of its default route only (without camera or
microphone permission): the namespace gets one, through the veth, and a filter that lets
nothing out but to the server's end of it, so no packet goes anywhere else.
"""

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser import CAPTIONS_RECORDER, assert_shown_in_order, heard_to_the_end, poll
from tests.conftest import RunningServer, StartServer
from tests.firefox import FirefoxPage, firefox
from tests.netns import Namespace
from tests.ns_proxy import NamespaceProxy, namespace_proxy
from tests.pulse import PulseAudio, pulseaudio

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# Every console message the demo's client raises, and its state changes, for tests that must
# not touch the page (an evaluation is no user gesture here, but a test should not lean on it).
WATCH_CLIENT = """addEventListener('load', () => {
    voiceClient.addEventListener('error', ({ detail }) =>
        console.log(`error ${detail.code} ${detail.action}`));
    voiceClient.addEventListener('state', ({ detail }) => console.log(`state ${detail.state}`));
})"""


@pytest.fixture
def listener_host(netns: Namespace) -> Namespace:
    """`netns` as a listener's machine: a default route, through the veth to the server."""
    run = [*netns.exec_prefix()]
    subprocess.run([*run, "ip", "route", "add", "default", "via", netns.host_ip], check=True)
    ruleset = (
        "table inet egress {\n chain out {\n"
        "  type filter hook output priority 0; policy drop;\n"
        f'  oifname "lo" accept\n  ip daddr {netns.host_ip} accept\n }}\n}}\n'
    )
    subprocess.run([*run, "nft", "-f", "-"], input=ruleset, text=True, check=True)
    return netns


def block_udp(netns: Namespace) -> None:
    """Drop every UDP datagram leaving the namespace: no ICE check gets through."""
    rule = ["nft", "insert", "rule", "inet", "egress", "out", "meta", "l4proto", "udp", "drop"]
    subprocess.run([*netns.exec_prefix(), *rule], check=True)


@pytest.fixture
async def pulse() -> AsyncIterator[PulseAudio]:
    async with pulseaudio() as server:
        yield server


@pytest.fixture
async def served(start_server: StartServer, netns: Namespace) -> RunningServer:
    """A server on 127.0.0.1 whose ICE host candidate is the veth's end out here."""
    return await start_server(ice_host_addresses=netns.host_ip)


@pytest.fixture
async def proxy(served: RunningServer, netns: Namespace) -> AsyncIterator[NamespaceProxy]:
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    async with namespace_proxy(netns.name, "127.0.0.1", port) as proxy:
        yield proxy


@pytest.fixture
async def page(pulse: PulseAudio, listener_host: Namespace) -> AsyncIterator[FirefoxPage]:
    """Firefox in the namespace, with Firefox's default preferences."""
    async with firefox(pulse, netns=listener_host.name) as page:
        await page.init_script(WATCH_CLIENT)
        yield page


async def stats(page: FirefoxPage) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("voiceClient.stats()")
    return result


async def hears_440_hz(pulse: PulseAudio, seconds: float = 1) -> None:
    """The sound device plays the tone."""
    peak = await pulse.record(seconds)
    assert peak.rms > 0.05 and abs(peak.hz - 440) <= 5, peak


def number(stats: dict[str, Any], name: str) -> float:
    return float(stats.get(name) or 0)


async def speak(page: FirefoxPage, text: str) -> None:
    """Type `text` on the demo page and press Speak: a real click, the user's gesture."""
    await page.type("#text", text)
    await page.click("#speak")


async def test_webrtc_connects_and_plays_with_mdns_host_candidates(
    proxy: NamespaceProxy, page: FirefoxPage, netns: Namespace, pulse: PulseAudio
) -> None:
    await page.goto(proxy.url)
    await speak(page, "440hz 4s")
    await page.wait_for_text("#state", "^connected$")
    playing = await poll(
        lambda: stats(page),
        lambda s: number(s, "packetsReceived") > 50 and number(s, "audioLevel") > 0.1,
        10,
    )
    assert playing["codec"] == "audio/opus", playing
    assert number(playing, "packetsReceived") > 50 and number(playing, "audioLevel") > 0.1, playing
    assert number(playing, "totalAudioEnergy") > 0, playing
    assert number(playing, "packetsLost") == 0, playing
    # Out of the sound device: Firefox refuses the element the speech once the click's handler
    # has returned; the library plays it through its AudioContext instead.
    await hears_440_hz(pulse)

    # Firefox offered mDNS names only (its default), and the server learned the address from
    # its checks: a peer-reflexive candidate.
    offer: str = await page.evaluate("voiceClient.pc.localDescription.sdp")
    candidates = [line for line in offer.splitlines() if line.startswith("a=candidate")]
    assert candidates and all(".local " in line for line in candidates), candidates
    assert netns.ip not in offer
    pair = await page.evaluate(
        """async () => {
            const report = await voiceClient.pc.getStats();
            const pair = [...report.values()].find(
                (s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
            return report.get(pair.remoteCandidateId).address;
        }"""
    )
    assert pair == netns.host_ip
    await page.wait_for_text("#events", r"ended: done \(201 frames\)")


async def test_websocket_audio_plays_when_webrtc_cannot_connect_without_another_click(
    start_server: StartServer, listener_host: Namespace, pulse: PulseAudio
) -> None:
    """Every UDP datagram out of the namespace is dropped: ICE never connects (Firefox gives
    up after ~5 s, before the 6 s ICE timeout). An AudioContext created then would stay
    suspended (seen before the library made it in connect()); the one the library created in
    the click's handler plays the fallback."""
    netns = listener_host
    server = await start_server(ice_host_addresses=netns.host_ip, ice_timeout_ms=6000)
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    block_udp(netns)
    async with (
        namespace_proxy(netns.name, "127.0.0.1", port) as proxy,
        firefox(pulse, netns=netns.name) as page,
    ):
        await page.init_script(WATCH_CLIENT)
        await page.goto(proxy.url)
        await speak(page, "440hz 10s")
        clicked = time.monotonic()
        await page.wait_for_console(lambda m: m == "state degraded", timeout=15)
        assert time.monotonic() - clicked > 2  # long after the click's handler returned
        assert await page.text("#state-detail") == "WebSocket audio"
        log = await page.text("#connection-log")
        assert re.search(r"ICE not connected after 6000 ms|the WebRTC connection failed", log)
        heard = await poll(
            lambda: stats(page),
            lambda s: number(s, "audioLevel") > 0.1 and number(s, "framesPlayed") > 25,
            5,
        )
        assert heard["transport"] == "websocket", heard
        assert number(heard, "audioLevel") > 0.1 and number(heard, "framesPlayed") > 25, heard
        assert not [m for m in page.console if m.startswith("error AUDIO_PLAYBACK_FAILED")]
        await hears_440_hz(pulse)
        await page.evaluate("voiceClient.cancel()")


async def test_a_dropped_connection_resumes_the_session_and_its_speech(
    proxy: NamespaceProxy, page: FirefoxPage, pulse: PulseAudio
) -> None:
    await page.goto(proxy.url)
    await speak(page, "440hz 5s")
    await page.wait_for_text("#state", "^connected$")
    first_session = await page.evaluate("voiceClient.sessionId")
    await poll(lambda: stats(page), lambda s: number(s, "audioLevel") > 0.1, 5)
    await asyncio.sleep(1)

    assert proxy.cut() >= 1
    await page.wait_for_console(lambda m: m == "state reconnecting")
    await page.wait_for_text("#state", "^connected$", timeout=15)
    assert await page.evaluate("voiceClient.sessionId") == first_session
    resumed = await poll(
        lambda: stats(page),
        lambda s: s["transport"] == "webrtc" and number(s, "audioLevel") > 0.1,
        5,
    )
    assert resumed["transport"] == "webrtc" and number(resumed, "audioLevel") > 0.1, resumed
    await hears_440_hz(pulse)
    await page.wait_for_text("#events", r"ended: done \(251 frames\)", timeout=15)


async def test_refused_audio_is_told_and_one_click_plays_it_with_nothing_lost(
    server: RunningServer, pulse: PulseAudio
) -> None:
    """The page connects as it loads, before any gesture: Firefox will not run its audio. The
    speech waits, shown as captions, until the click the error asks for; then all of it plays."""
    async with firefox(pulse) as page:
        await page.init_script(WATCH_CLIENT)
        await page.init_script("addEventListener('load', () => voiceClient.connect())")
        await page.goto(server.url + "?transport=websocket")
        await page.wait_for_console(lambda m: m == "error AUDIO_PLAYBACK_FAILED enable_audio")
        await page.wait_for_text("#state-detail", "^captions only$")
        assert "Audio cannot play" in await page.text("#error")

        await page.evaluate("voiceClient.speak('Hello there, 440hz 1s')")
        await page.wait_for_text("#captions", "^Hello there, 440hz 1s$")
        # The server sent it all (it is shorter than the resume window); none of it played.
        await page.wait_for_text("#events", r"ended: done \(51 frames\)")
        held = await stats(page)
        assert number(held, "framesPlayed") == 0, held

        await page.click("#error-button")  # "Enable sound"
        await page.wait_for_text("#state", "^connected$")
        await page.wait_for_text("#transport", "^WebSocket audio$")
        await hears_440_hz(pulse, seconds=0.5)
        played = await poll(lambda: stats(page), lambda s: number(s, "framesPlayed") >= 51, 5)
        assert number(played, "framesPlayed") == 51, played
        assert number(played, "overflowFrames") == 0 and number(played, "duplicateFrames") == 0


# The words the server places in the audio (`utterance_words`), as the page's signaling gets
# them: puppeteer-core has no hook on a page's WebSockets, so the page's own is wrapped.
CAPTURE_WORDS = """
window.serverWords = [];
window.WebSocket = class extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', ({ data }) => {
      const message = typeof data === 'string' ? JSON.parse(data) : null;
      if (message?.type === 'utterance_words') serverWords.push(...message.words);
    });
  }
};
"""


async def test_captions_mark_each_word_as_it_is_heard_over_webrtc(
    start_server: StartServer, listener_host: Namespace, pulse: PulseAudio
) -> None:
    """Firefox's getSynchronizationSources() and the server's `sync` messages: each word of an
    eSpeak NG sentence is marked in order, when its audio plays."""
    netns = listener_host
    server = await start_server(ice_host_addresses=netns.host_ip, tts="espeak")
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    sentence = "Seven quick brown foxes jumped over a sleeping dog."
    async with (
        namespace_proxy(netns.name, "127.0.0.1", port) as proxy,
        firefox(pulse, netns=netns.name) as page,
    ):
        await page.init_script(CAPTURE_WORDS)
        await page.init_script(CAPTIONS_RECORDER)
        await page.goto(proxy.url)
        # First a word, heard to its end: Firefox may take a second or two to open the sound
        # device, meanwhile the speech waits in its jitter buffer, which then plays it faster
        # and skips some to catch up (seen). The sentence comes once it plays in step.
        await speak(page, "Hello.")
        await page.wait_for_text("#state", "^connected$")
        await page.wait_for_text("#transport", "^WebRTC$")
        await heard_to_the_end(page, "Hello.")
        await page.evaluate("wordEvents.length = marks.length = serverWords.length = 0")
        await speak(page, sentence)
        told, marks = await heard_to_the_end(page, sentence)
        words = await page.evaluate("serverWords")

    assert [w["text"] for w in words] == sentence.split(), words
    told = [w for w in told if w["index"] is not None]
    assert [w["index"] for w in told] == list(range(len(words))), told
    assert_shown_in_order(marks, words)
    for heard, word in zip(told, words, strict=True):
        heard_ms = heard["t"] - told[0]["t"]
        due_ms = (word["frame"] - words[0]["frame"]) * 20
        assert abs(heard_ms - due_ms) <= 300, (heard, word, told)
