"""Headless Chromium as the listener of replicas behind nginx (the shipped configuration) that
share a real redis-server: the process serving the page is killed, or every replica is restarted
in turn, mid-sentence. The page comes back through nginx to another replica, which takes the
session over, and goes on with the sentence: every word marked in the captions in order, once,
the voice heard again soon (eSpeak NG is deterministic: the new owner goes on at the first frame
the page had not played)."""

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page

from tests.browser import assert_shown_in_order, heard_to_the_end, in_order, poll, speak
from tests.conftest import RunningServer, StartServer
from tests.nginx import Nginx, StartNginx
from tests.nginx import start_nginx_fixture as start_nginx_fixture  # the start_nginx fixture
from tests.test_browser_captions import listen, server_messages, words_of
from tests.test_scale_out import LEASE_S, port_of, rolling_restart, serving

pytestmark = [pytest.mark.browser, pytest.mark.solo, pytest.mark.timeout(120)]

SENTENCE = (
    "Seven quick brown foxes jumped over a sleeping dog, then ran all the way home across the"
    " wide green fields, past the old mill and the river, before the evening rain began to fall"
    " on the quiet town."
)
# For the page: when sound was heard (window.loud, every 10 ms that the newest 5 ms of what
# it received held any), to measure how long it went silent. Each WebRTC connection (one per
# server) brings a stream of its own: the analyser listens to the one in use.
LOUDNESS_RECORDER = """
window.loud = [];
let listened = null;
setInterval(() => {
  if (!window.testAnalyser) return;
  const stream = voiceClient.remoteStream;
  if (stream && stream !== listened) {
    testAnalyser.context.createMediaStreamSource(stream).connect(testAnalyser);
    listened = stream;
  }
  const samples = new Float32Array(testAnalyser.fftSize);
  testAnalyser.getFloatTimeDomainData(samples);
  const newest = samples.subarray(samples.length - testAnalyser.context.sampleRate / 200);
  if (newest.some((s) => Math.abs(s) > 0.02)) loud.push(performance.now());
}, 10);
"""


@pytest.fixture
async def replicas(start_server: StartServer, redis_url: str) -> list[RunningServer]:
    return [await start_server(**espeak_replica(redis_url)) for _ in range(3)]


def espeak_replica(redis_url: str, **settings: object) -> dict[str, Any]:
    return {
        "env": {"VOICE_RTC_REDIS_URL": redis_url},
        "tts": "espeak",
        "session_lease_s": LEASE_S,
        **settings,
    }


@pytest.fixture
async def balancer(replicas: list[RunningServer], start_nginx: StartNginx) -> Nginx:
    return await start_nginx([server.url for server in replicas])


@pytest.fixture
async def listening(page: Page, balancer: Nginx) -> AsyncIterator[list[dict[str, Any]]]:
    """The demo page through nginx, listening over WebRTC; yields the server's messages."""
    messages = server_messages(page)
    await page.add_init_script(LOUDNESS_RECORDER)
    await listen(page, balancer.url, "webrtc")
    yield messages


async def longest_silence_after(page: Page, moment_ms: float, window_ms: float = 8000) -> float:
    """The longest the page heard nothing in the `window_ms` after `moment_ms` (its clock),
    counted from the last sound before it, in seconds."""
    loud: list[float] = await page.evaluate("loud")
    times = [t for t in loud if t <= moment_ms][-1:]
    times += [t for t in loud if moment_ms < t <= moment_ms + window_ms]
    assert len(times) >= 2 and times[-1] > moment_ms, "nothing was heard after it"
    return max(b - a for a, b in itertools.pairwise(times)) / 1000


def assert_every_word_once_in_order(
    told: list[dict[str, Any]], marks: list[dict[str, Any]], messages: list[dict[str, Any]]
) -> None:
    # Each process that took the sentence over timed its words again: the same words.
    words = sorted({w["start"]: w for w in words_of(messages)}.values(), key=lambda w: w["start"])
    assert [w["text"] for w in words] == SENTENCE.split(), words
    assert in_order(told) == list(range(len(words))), told
    assert_shown_in_order(marks, words)


async def started(page: Page, words: int) -> None:
    await poll(lambda: page.evaluate("wordEvents.length"), lambda n: n >= words, timeout=15)


async def test_a_crash_of_the_pages_server_loses_no_word(
    page: Page,
    replicas: list[RunningServer],
    listening: list[dict[str, Any]],
    http: aiohttp.ClientSession,
) -> None:
    await speak(page, SENTENCE)
    await started(page, 6)
    owner = await serving(http, replicas)
    owner.process.kill()  # kill -9: the lease has to lapse before another takes it over
    killed_ms = await page.evaluate("performance.now()")
    told, marks = await heard_to_the_end(page, SENTENCE)
    silent = await longest_silence_after(page, killed_ms)
    print(f"heard again {silent:.2f} s after the kill")
    assert silent < 5.0
    assert_every_word_once_in_order(told, marks, listening)
    assert any(m["socket"] > 0 for m in listening), "the page did not reconnect"
    assert any('"event": "session_taken_over"' in r.log() for r in replicas if r is not owner)


async def test_a_rolling_restart_of_every_replica_loses_no_word(
    page: Page,
    replicas: list[RunningServer],
    listening: list[dict[str, Any]],
    http: aiohttp.ClientSession,
    start_server: StartServer,
    redis_url: str,
) -> None:
    async def restart(old: RunningServer) -> RunningServer:
        return await start_server(**espeak_replica(redis_url, port=port_of(old)))

    await speak(page, SENTENCE)
    await started(page, 3)
    stops = await rolling_restart(replicas, restart, http, between_s=2.5)
    told, marks = await heard_to_the_end(page, SENTENCE)
    page_clock_ms = await page.evaluate("performance.now()") - time.monotonic() * 1000
    silences = [
        round(await longest_silence_after(page, stopped * 1000 + page_clock_ms, 2000), 2)
        for stopped, _exit in stops
    ]
    print(f"longest silence after each restart, s: {silences}")
    # A handoff's gap (under 1 s) may fall in a pause between words.
    assert all(silence < 1.5 for silence in silences), silences
    assert_every_word_once_in_order(told, marks, listening)
