"""Headless Chromium as a listener: launching it, and measuring what a page hears."""

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from playwright.async_api import Browser, Locator, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"  # Debian's: `playwright install` cannot download one here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No --autoplay-policy: audio plays as browsers let it, after a user gesture (a click).
    # Without it Chromium gathers no 127.0.0.1 candidate and ICE never starts on loopback.
    "--allow-loopback-in-peer-connection",
]

T = TypeVar("T")

# For the demo page, before its scripts: the client's `word` events (window.wordEvents) and every
# change of the word marked in #captions (window.marks: a word passed between two looks is told
# at once before the next, and never shown), timed; and the moment audio is first heard
# (window.audioStart, once the test attaches window.testAnalyser).
CAPTIONS_RECORDER = """
window.wordEvents = [];
window.marks = [];
window.audioStart = null;
addEventListener('DOMContentLoaded', () => {
  voiceClient.addEventListener('word', ({ detail: word }) => {
    wordEvents.push({ t: performance.now(), index: word?.index ?? null, text: word?.text ?? null });
  });
  const captions = document.getElementById('captions');
  let last;
  new MutationObserver(() => {
    const mark = captions.querySelector('mark');
    const index = mark ? Number(mark.dataset.index) : null;
    if (index === last) return;
    last = index;
    marks.push({ t: performance.now(), index, text: mark?.textContent ?? null });
  }).observe(captions, { childList: true, subtree: true, characterData: true });
  setInterval(() => {
    if (!window.testAnalyser || audioStart !== null) return;
    // The analyser's window, oldest first: its newest 5 ms.
    const samples = new Float32Array(testAnalyser.fftSize);
    testAnalyser.getFloatTimeDomainData(samples);
    const newest = samples.subarray(samples.length - testAnalyser.context.sampleRate / 200);
    if (newest.some((s) => Math.abs(s) > 0.02)) audioStart = performance.now();
  }, 5);
});
"""


def in_order(recorded: list[dict[str, Any]]) -> list[int]:
    """The word numbers in recorded `word` events or marks: silences left out, and a word told
    again after a gap (speech resumes inside the word it stopped in) once."""
    indices = [entry["index"] for entry in recorded if entry["index"] is not None]
    return [index for i, index in enumerate(indices) if i == 0 or index != indices[i - 1]]


def assert_shown_in_order(marks: list[dict[str, Any]], words: list[dict[str, Any]]) -> None:
    """The captions marked the words in order, each once, and none lasting 100 ms or more
    (`words`: the server's, with the frame each begins at) was left out."""
    shown = in_order(marks)
    assert shown == sorted(set(shown)), marks
    lasting = {
        i
        for i in range(len(words))
        if i + 1 == len(words) or words[i + 1]["frame"] - words[i]["frame"] >= 5
    }
    assert lasting <= set(shown), (marks, words)


class Evaluates(Protocol):
    """A page of Chromium's (Playwright) or Firefox's (tests/firefox.py)."""

    async def evaluate(self, source: str, /) -> Any: ...


async def heard_to_the_end(
    page: Evaluates, sentence: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `word` events and marks recorded (CAPTIONS_RECORDER) once the sentence's last word was
    told, and is over."""
    last = len(sentence.split()) - 1
    told: list[dict[str, Any]] = await poll(
        lambda: page.evaluate("wordEvents"),
        lambda told: any(w["index"] == last for w in told) and told[-1]["index"] is None,
        timeout=20,
    )
    marks: list[dict[str, Any]] = await page.evaluate("marks")
    return told, marks


@asynccontextmanager
async def chromium(
    args: list[str] = CHROMIUM_ARGS, netns: str | None = None
) -> AsyncIterator[Browser]:
    """Headless Chromium; with `netns`, inside that network namespace (it sees its interfaces
    only). Playwright drives it over pipes, which `ip netns exec` keeps."""
    with tempfile.TemporaryDirectory() as scratch:
        executable = CHROMIUM
        if netns is not None:
            wrapper = Path(scratch) / "chromium"
            wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {netns} {CHROMIUM} "$@"\n')
            wrapper.chmod(0o755)
            executable = str(wrapper)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable, args=args)
            try:
                yield browser
            finally:
                await browser.close()


@asynccontextmanager
async def new_page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a fresh context, its console echoed into the test's output."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        echo_console(page)
        page.set_default_timeout(10_000)
        yield page
    finally:
        await context.close()


async def speak(page: Page, text: str) -> None:
    """Type `text` on the demo page and press Speak."""
    await page.get_by_label("Text to speak").fill(text)
    await page.get_by_role("button", name="Speak").click()


def utterances(page: Page, text: str) -> Locator:
    """The demo page's utterance log entries containing `text`."""
    return page.locator("#events li").filter(has_text=text)


def connection_log(page: Page, text: str) -> Locator:
    """The demo page's connection log entries containing `text`."""
    return page.locator("#connection-log li").filter(has_text=text)


def echo_console(page: Page) -> None:
    """Print the page's console and uncaught errors; pytest shows them with a failing test."""
    page.on("console", lambda message: print(f"[browser {message.type}] {message.text}"))
    page.on("pageerror", lambda error: print(f"[browser uncaught] {error}"))


async def poll(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float) -> T:
    """Call `probe` until `done` holds for its result or `timeout` seconds pass; the last result.

    The caller asserts on it, so a timeout fails showing the value last seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if done(result) or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(0.1)


async def client_stats(page: Page) -> dict[str, Any]:
    """The page's `voiceClient.stats()`; fields not known yet are absent."""
    stats: dict[str, Any] = await page.evaluate("voiceClient.stats()")
    return stats


@dataclass
class Peak:
    hz: float
    bin_hz: float  # the FFT's resolution
    db: float


async def analyse_received_audio(page: Page) -> None:
    """Feed the stream the page receives into an AnalyserNode (window.testAnalyser)."""
    await page.evaluate(
        """async () => {
            const context = new AudioContext();
            // 8192 points at 44.1 or 48 kHz: bins of 5.4 or 5.9 Hz. Chromium feeds a remote
            // WebRTC stream to WebAudio only while a media element plays it too; the
            // client's audio element does.
            const analyser = new AnalyserNode(context, { fftSize: 8192, smoothingTimeConstant: 0 });
            context.createMediaStreamSource(voiceClient.remoteStream).connect(analyser);
            window.testAnalyser = analyser;
            await context.resume();
        }"""
    )


async def analyse_websocket_audio(page: Page) -> None:
    """Feed what the page plays from the WebSocket (its AudioWorklet's output) into an
    AnalyserNode (window.testAnalyser)."""
    await page.evaluate(
        """() => {
            const output = voiceClient.audioOutput;
            const analyser = new AnalyserNode(output.context, {
                fftSize: 8192, smoothingTimeConstant: 0,
            });
            output.connect(analyser);
            window.testAnalyser = analyser;
        }"""
    )


async def spectrum_peak(page: Page) -> Peak:
    """The loudest bin of the received audio's spectrum right now."""
    peak: dict[str, float] = await page.evaluate(
        """() => {
            const spectrum = new Float32Array(testAnalyser.frequencyBinCount);
            testAnalyser.getFloatFrequencyData(spectrum);
            let loudest = 0;
            for (let i = 1; i < spectrum.length; i++) {
                if (spectrum[i] > spectrum[loudest]) loudest = i;
            }
            const binHz = testAnalyser.context.sampleRate / testAnalyser.fftSize;
            return { hz: loudest * binHz, bin_hz: binHz, db: spectrum[loudest] };
        }"""
    )
    return Peak(**peak)
